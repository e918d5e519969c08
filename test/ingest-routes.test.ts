import type { ExecutionContext } from "hono";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RouteTestBed, startRouteTestBed } from "./support/route-test-bed.js";
import { makeStep } from "./support/run-steps.js";
import type { SinkServer } from "./support/sink-server.js";
import type { TestApp } from "./support/test-app.js";
import { expectStoreUnavailable, type ThrottleableStore } from "./support/throttling.js";
import { workersContext } from "./support/workers-context.js";

// `POST /v1/webhooks/run-steps` (SPEC §3, README "Ingest"): the media type and size decided from the
// headers, what the route logs for a delta, what it hands a Workers runtime to finish after the
// answer, and 503 under a throttled store. One app with a webhook sink on a real dynalite.

const MAX_BODY_BYTES = 4096;

let bed: RouteTestBed;
let throttling: ThrottleableStore;
let sink: SinkServer;
let app: TestApp;
const lines: string[] = [];
let seq = 0;

beforeAll(async () => {
  bed = await startRouteTestBed({
    env: { MAX_BODY_BYTES: String(MAX_BODY_BYTES) },
    options: { logLines: lines, logLevel: "info" },
  });
  ({ throttling, sink, app } = bed);
});
afterAll(() => bed.close());

/** POSTs `body` signed with the app's secret, with these headers on top of the signature's. */
async function post(body: string, headers: Record<string, string> = {}, ctx?: ExecutionContext) {
  const id = `msg_${seq++}`;
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = new Webhook(app.secret).sign(id, new Date(timestamp * 1000), body);
  const response = await app.app.request(
    "/v1/webhooks/run-steps",
    {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "webhook-id": id,
        "webhook-timestamp": String(timestamp),
        "webhook-signature": signature,
        ...headers,
      },
      body,
    },
    undefined,
    ctx,
  );
  return { status: response.status, headers: response.headers, body: (await response.json()) as unknown };
}

const tooLarge = {
  status: 413,
  body: { error: { code: "payload_too_large", message: `body must be at most ${MAX_BODY_BYTES} bytes` } },
};

describe("decided from the headers", () => {
  it("415 for a body not declared JSON in UTF-8, saying what is accepted", async () => {
    const answer = await post(JSON.stringify(makeStep({ id: "step_typed" })), {
      "content-type": "text/plain",
    });
    expect(answer).toMatchObject({
      status: 415,
      body: {
        error: { code: "unsupported_media_type", message: "content-type must be application/json (UTF-8)" },
      },
    });
    expect(answer.headers.get("connection")).toBe("close");
  });

  it("413 for a Content-Length that is not a plain decimal count of bytes, before the body is read", async () => {
    const body = JSON.stringify(makeStep({ id: "step_length" }));
    for (const length of ["-1", "1e3", "0x10", "12abc", "1234567890123456"]) {
      const answer = await post(body, { "content-length": length });
      expect(answer, length).toMatchObject(tooLarge);
      expect(answer.headers.get("connection")).toBe("close");
    }
    expect((await post(body, { "content-length": String(Buffer.byteLength(body)) })).status).toBe(200);
  });

  it("a chunked body is limited as it streams, whatever Content-Length claims (Transfer-Encoding wins)", async () => {
    const big = JSON.stringify(makeStep({ id: "step_chunked", metadata: { padding: "x".repeat(500) } }));
    const padded = `${big.slice(0, -1)},"extra":"${"y".repeat(MAX_BODY_BYTES)}"}`;
    expect(await post(padded, { "content-length": "100", "transfer-encoding": "chunked" })).toMatchObject(
      tooLarge,
    );
  });
});

describe("what the route tells the runtime and the log", () => {
  it("a delta's log line names its step and the ignored outcome", async () => {
    const delta = {
      id: "step_delta",
      object: "thread.run.step.delta",
      delta: { step_details: { type: "tool_calls" } },
    };
    const answer = await post(JSON.stringify(delta), { "x-request-id": "ingest-delta-1" });
    expect(answer).toMatchObject({
      status: 200,
      body: { step_id: "step_delta", status: null, outcome: "ignored" },
    });
    const line = lines.map((l) => JSON.parse(l)).find((l) => l.request_id === "ingest-delta-1");
    expect(line).toMatchObject({ msg: "request", status: 200, step_id: "step_delta", outcome: "ignored" });
  });

  it("a terminal step's notifications are handed to waitUntil; an in_progress step hands nothing", async () => {
    const terminal = workersContext();
    const done = await post(
      JSON.stringify(makeStep({ id: "step_notifies", status: "completed" })),
      {},
      terminal.ctx,
    );
    expect(done).toMatchObject({ status: 200, body: { outcome: "created" } });
    expect(terminal.tasks).toHaveLength(1);
    await Promise.all(terminal.tasks);
    expect(sink.received.map((r) => JSON.parse(r.body).data.id)).toContain("step_notifies");

    const open = workersContext();
    expect(await post(JSON.stringify(makeStep({ id: "step_open" })), {}, open.ctx)).toMatchObject({
      status: 200,
      body: { outcome: "created" },
    });
    expect(open.tasks).toEqual([]);
  });
});

describe("the store throttled", () => {
  it("503 store_unavailable with Retry-After: the sender retries", async () => {
    await throttling.whileThrottled(async () => {
      expectStoreUnavailable(await post(JSON.stringify(makeStep({ id: "step_throttled" }))));
    });
  });
});
