import type { ExecutionContext } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedQuarantined } from "./support/quarantine.js";
import { type RouteTestBed, startRouteTestBed } from "./support/route-test-bed.js";
import { makeStep } from "./support/run-steps.js";
import type { SinkServer } from "./support/sink-server.js";
import { TEST_TOKEN, type TestApp } from "./support/test-app.js";
import type { TestStore } from "./support/test-store.js";
import { expectStoreUnavailable, type ThrottleableStore } from "./support/throttling.js";
import { workersContext } from "./support/workers-context.js";

// `/v1/quarantine` (SPEC §5, README "Quarantine"): the answers for ids it does not have or has
// replayed, what a replay hands the runtime to finish after its answer, what it logs, and 503 under
// a throttled store. Records are seeded as an older release kept them (bodies today's rules accept).

let bed: RouteTestBed;
let store: TestStore;
let throttling: ThrottleableStore;
let sink: SinkServer;
let app: TestApp;
const lines: string[] = [];
let seq = 0;

beforeAll(async () => {
  bed = await startRouteTestBed({ options: { logLines: lines, logLevel: "info" } });
  ({ store, throttling, sink, app } = bed);
});
afterAll(() => bed.close());

async function call(
  method: "GET" | "POST" | "DELETE",
  path: string,
  requestId?: string,
  ctx?: ExecutionContext,
) {
  const headers: Record<string, string> = { authorization: `Bearer ${TEST_TOKEN}` };
  if (requestId) headers["x-request-id"] = requestId;
  const response = await app.app.request(path, { method, headers }, undefined, ctx);
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === "" ? null : JSON.parse(text) };
}

const seed = (body: unknown) =>
  seedQuarantined(store, JSON.stringify(body), {
    webhookId: `msg_${seq++}`,
    timestamp: Math.floor(Date.now() / 1000),
  });

const notFound = (id: string) => ({ error: { code: "not_found", message: `no quarantined request ${id}` } });
const logged = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);

describe("ids the quarantine does not have, or has replayed", () => {
  it("reading, replaying or deleting an unknown id is a 404 that names it", async () => {
    const id = `q_${"0".repeat(26)}`;
    expect(await call("GET", `/v1/quarantine/${id}`)).toMatchObject({ status: 404, body: notFound(id) });
    expect(await call("POST", `/v1/quarantine/${id}/replay`)).toMatchObject({
      status: 404,
      body: notFound(id),
    });
    expect(await call("DELETE", `/v1/quarantine/${id}`)).toMatchObject({ status: 404, body: notFound(id) });
  });

  it("a second replay is a 409 already_replayed that names the record", async () => {
    const id = await seed(makeStep({ id: "step_twice" }));
    expect((await call("POST", `/v1/quarantine/${id}/replay`)).status).toBe(200);
    expect(await call("POST", `/v1/quarantine/${id}/replay`)).toMatchObject({
      status: 409,
      body: { error: { code: "already_replayed", message: `${id} was already replayed` } },
    });
  });
});

describe("POST /v1/quarantine/{id}/replay", () => {
  it("a terminal step: its notifications are handed to waitUntil, logged with the replay's request id", async () => {
    const step = makeStep({ id: "step_replayed", run_id: "run_replayed", status: "completed" });
    const id = await seed(step);
    const { ctx, tasks } = workersContext();
    const answer = await call("POST", `/v1/quarantine/${id}/replay`, "op-replay-1", ctx);
    expect(answer).toMatchObject({
      status: 200,
      body: { quarantine_id: id, step_id: "step_replayed", status: "completed", outcome: "created" },
    });
    // The runtime is told to wait for the notification, which the sink has once that work is done.
    expect(tasks).toHaveLength(1);
    await Promise.all(tasks);
    expect(sink.received.map((r) => JSON.parse(r.body).data.id)).toContain("step_replayed");

    expect(logged()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          msg: "request",
          request_id: "op-replay-1",
          status: 200,
          quarantine_id: id,
          step_id: "step_replayed",
          outcome: "created",
        }),
        expect.objectContaining({
          msg: "delivery attempt",
          request_id: "op-replay-1",
          step_id: "step_replayed",
        }),
      ]),
    );
  });

  it("an in_progress step notifies no one: nothing is handed to waitUntil", async () => {
    const id = await seed(makeStep({ id: "step_progress" }));
    const { ctx, tasks } = workersContext();
    expect(await call("POST", `/v1/quarantine/${id}/replay`, undefined, ctx)).toMatchObject({
      status: 200,
      body: { quarantine_id: id, step_id: "step_progress", status: "in_progress", outcome: "created" },
    });
    expect(tasks).toEqual([]);
  });

  it("a delta is acknowledged and ignored, like at ingest: the record says so", async () => {
    const delta = {
      id: "step_delta",
      object: "thread.run.step.delta",
      delta: { step_details: { type: "tool_calls" } },
    };
    const id = await seed(delta);
    const { ctx, tasks } = workersContext();
    expect(await call("POST", `/v1/quarantine/${id}/replay`, undefined, ctx)).toEqual({
      status: 200,
      headers: expect.anything(),
      body: { quarantine_id: id, step_id: "step_delta", status: null, outcome: "ignored" },
    });
    expect(tasks).toEqual([]);
    expect(await call("GET", `/v1/quarantine/${id}`)).toMatchObject({
      status: 200,
      body: { state: "replayed", replay: { step_id: "step_delta", outcome: "ignored" } },
    });
    expect((await call("GET", "/v1/run-steps/step_delta")).status).toBe(404);
  });
});

describe("the store throttled", () => {
  it("every quarantine route answers 503 store_unavailable with Retry-After", async () => {
    const id = await seed(makeStep({ id: "step_throttled" }));
    await throttling.whileThrottled(async () => {
      for (const [method, path] of [
        ["GET", "/v1/quarantine"],
        ["GET", `/v1/quarantine/${id}`],
        ["POST", `/v1/quarantine/${id}/replay`],
        ["DELETE", `/v1/quarantine/${id}`],
      ] as const) {
        const answer = await call(method, path);
        expectStoreUnavailable(answer, `${method} ${path}`);
      }
    });
  });
});
