import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/config-schema.js";
import { createWebhookSigner } from "../src/domain/webhook-signer.js";
import { buildOpenApiDocument } from "../src/http/openapi-document.js";
import { createLogger } from "../src/observability/logger.js";
import { createStepwatch } from "../src/runtime/create-stepwatch.js";
import { createNodeDynamoHandler } from "../src/runtime/node-dynamo-handler.js";
import { createDynamoClient } from "../src/store/dynamo-client.js";
import { mapConcurrent } from "./support/concurrency.js";
import { makeStep, makeToolCallsStep } from "./support/run-steps.js";
import { createTestApp, TEST_TOKEN, type TestApp } from "./support/test-app.js";
import { startTestStore, TEST_AWS, type TestStore } from "./support/test-store.js";

let store: TestStore;
let app: TestApp;
let seq = 0;
const uid = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${seq++}`;
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  store = await startTestStore();
  app = await createTestApp(store, {
    API_TOKEN: `${TEST_TOKEN} second-token-abcdefghij`,
    MAX_BODY_BYTES: "4096",
  });
});
afterAll(() => store.close());

const json = async (response: Response) => ({
  status: response.status,
  body: (await response.json()) as Record<string, unknown>,
});

/**
 * POSTs bytes with a valid signature and the given content type. Raw bytes are signed with our own
 * signer: the `standardwebhooks` library decodes a Buffer as UTF-8 before signing, so it cannot sign
 * bytes that are not UTF-8.
 */
async function postRaw(payload: Uint8Array | string, contentType: string | null, signWith = app.secret) {
  const id = uid("msg");
  const ts = now();
  const buffer = typeof payload === "string" ? Buffer.from(payload) : Buffer.from(payload);
  const signature =
    typeof payload === "string"
      ? new Webhook(signWith).sign(id, new Date(ts * 1000), payload)
      : (await (await createWebhookSigner(signWith)).sign(id, ts, payload))["webhook-signature"];
  const headers: Record<string, string> = {
    "webhook-id": id,
    "webhook-timestamp": String(ts),
    "webhook-signature": signature,
  };
  if (contentType) headers["content-type"] = contentType;
  return app.app.request("/v1/webhooks/run-steps", { method: "POST", headers, body: buffer });
}

describe("ingest responses (SPEC §3)", () => {
  it("200 for a bare step, a stream event and an OpenAI-webhook event", async () => {
    const id = uid("step");
    expect(await json(await app.send(makeStep({ id })))).toEqual({
      status: 200,
      body: { step_id: id, status: "in_progress", outcome: "created" },
    });
    const stream = { event: "thread.run.step.completed", data: makeStep({ id, status: "completed" }) };
    expect((await json(await app.send(stream))).body.outcome).toBe("updated");
    const hook = {
      id: "evt_1",
      object: "event",
      type: "thread.run.step.completed",
      created_at: now(),
      data: makeStep({ id, status: "completed" }),
    };
    expect((await json(await app.send(hook))).body.outcome).toBe("unchanged");
  });

  it("400 invalid_json for a signed body that is not JSON, or not UTF-8", async () => {
    for (const payload of ["{not json", new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])]) {
      expect(await json(await postRaw(payload, "application/json"))).toEqual({
        status: 400,
        body: {
          error: {
            code: "invalid_json",
            message: "body is not valid UTF-8 JSON",
            quarantine_id: expect.stringMatching(/^q_[0-9a-f]{26}$/),
          },
        },
      });
    }
  });

  it("422 invalid_payload with each issue's path", async () => {
    const { status, body } = await json(
      await app.send(makeStep({ status: "completed", completed_at: null, type: "tool_calls" })),
    );
    expect(status).toBe(422);
    expect(body).toEqual({
      error: {
        code: "invalid_payload",
        message: "not a valid run step event",
        issues: expect.arrayContaining([
          { path: "step_details.type", message: 'must equal the step\'s type "tool_calls"' },
          { path: "completed_at", message: 'is required when status is "completed"' },
        ]),
        quarantine_id: expect.stringMatching(/^q_[0-9a-f]{26}$/),
      },
    });
  });

  it("401 invalid_signature: wrong secret, missing headers, stale or future timestamp — before the body is parsed", async () => {
    const other = `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;
    const wrong = await json(await postRaw("{not even json", "application/json", other));
    expect(wrong).toEqual({
      status: 401,
      body: { error: { code: "invalid_signature", message: "no signature matches" } },
    });

    const missing = await app.app.request("/v1/webhooks/run-steps", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(makeStep()),
    });
    expect((await json(missing)).body).toMatchObject({ error: { code: "invalid_signature" } });

    for (const timestamp of [now() - 301, now() + 400]) {
      const response = await app.send(makeStep(), { timestamp });
      expect((await json(response)).status).toBe(401);
    }
  });

  it("413 payload_too_large by Content-Length and while streaming a body without one", async () => {
    const big = JSON.stringify(makeStep({ padding: "x".repeat(5000) }));
    expect(await json(await app.send(big))).toEqual({
      status: 413,
      body: { error: { code: "payload_too_large", message: "body must be at most 4096 bytes" } },
    });
    const chunks = [big.slice(0, 3000), big.slice(3000)];
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
        controller.close();
      },
    });
    // Signed, so that the headers pass and the body is what is refused (unsigned, it is a 401 from
    // the headers alone, before a byte is read).
    const timestamp = Math.floor(Date.now() / 1000);
    const signature = new Webhook(app.secret).sign("msg_streamed_big", new Date(timestamp * 1000), big);
    const response = await app.app.request("/v1/webhooks/run-steps", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "transfer-encoding": "chunked",
        "webhook-id": "msg_streamed_big",
        "webhook-timestamp": String(timestamp),
        "webhook-signature": signature,
      },
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect(response.status).toBe(413);
  });

  it("415 unsupported_media_type for anything but JSON in UTF-8", async () => {
    for (const type of [
      "text/plain",
      null,
      "application/x-www-form-urlencoded",
      "application/json; charset=utf-16",
    ]) {
      const { status, body } = await json(await postRaw(JSON.stringify(makeStep()), type));
      expect(status).toBe(415);
      expect(body).toMatchObject({ error: { code: "unsupported_media_type" } });
    }
    for (const type of ["application/json; charset=UTF-8", "application/vnd.relay+json"]) {
      expect((await postRaw(JSON.stringify(makeStep({ id: uid("step") })), type)).status).toBe(200);
    }
  });

  it("200 ignored for deltas, which are not stored", async () => {
    const id = uid("step");
    const delta = { id, object: "thread.run.step.delta", delta: { step_details: { type: "tool_calls" } } };
    expect((await json(await app.send({ event: "thread.run.step.delta", data: delta }))).body).toEqual({
      step_id: id,
      status: null,
      outcome: "ignored",
    });
    expect((await app.get(`/v1/run-steps/${id}`)).status).toBe(404);
  });
});

describe("state rules (SPEC §4)", () => {
  it("names every outcome and keeps the right snapshot", async () => {
    const id = uid("step");
    const t = now();
    const send = async (overrides: Record<string, unknown>, timestamp: number) =>
      (await json(await app.send(makeStep({ id, ...overrides }), { timestamp }))).body.outcome;

    expect(await send({ metadata: { v: "1" } }, t - 20)).toBe("created");
    expect(await send({ metadata: { v: "2" } }, t - 10)).toBe("updated");
    expect(await send({ metadata: { v: "older" } }, t - 15)).toBe("stale");
    expect(await send({ metadata: { v: "same-time" } }, t - 10)).toBe("stale");
    expect(await send({ status: "completed", metadata: { v: "done" } }, t - 30)).toBe("updated");
    expect(await send({ status: "completed", metadata: { v: "again" } }, t)).toBe("unchanged");
    expect(await send({ status: "failed", metadata: { v: "conflict" } }, t)).toBe("conflict");
    expect(await send({ metadata: { v: "late" } }, t)).toBe("stale");

    const stored = (await json(await app.get(`/v1/run-steps/${id}`))).body;
    expect(stored).toMatchObject({ status: "completed", metadata: { v: "done" }, conflicts: 1 });
  });

  it("25 concurrent deliveries of one terminal event: exactly one created", async () => {
    const step = makeStep({ id: uid("step"), status: "completed" });
    const outcomes = await Promise.all(
      Array.from({ length: 25 }, async () => (await json(await app.send(step))).body.outcome),
    );
    expect(outcomes.filter((o) => o === "created")).toHaveLength(1);
    expect(outcomes.filter((o) => o === "unchanged")).toHaveLength(24);
  });

  it("25 concurrent deliveries of a terminal event over an in_progress step: exactly one updated", async () => {
    const id = uid("step");
    await app.send(makeStep({ id }));
    const step = makeStep({ id, status: "failed" });
    const outcomes = await Promise.all(
      Array.from({ length: 25 }, async () => (await json(await app.send(step))).body.outcome),
    );
    expect(outcomes.filter((o) => o === "updated")).toHaveLength(1);
    expect(outcomes.filter((o) => o === "unchanged")).toHaveLength(24);
  });

  it("25 concurrent conflicting terminal events: one wins, every other is unchanged or conflict, the winner stays", async () => {
    const id = uid("step");
    const statuses = ["completed", "failed", "cancelled", "expired"];
    const outcomes = await Promise.all(
      Array.from({ length: 25 }, async (_, i) => {
        const status = statuses[i % 4] as string;
        return { status, outcome: (await json(await app.send(makeStep({ id, status })))).body.outcome };
      }),
    );
    const winners = outcomes.filter((o) => o.outcome === "created");
    expect(winners).toHaveLength(1);
    const stored = (await json(await app.get(`/v1/run-steps/${id}`))).body;
    expect(stored.status).toBe(winners[0]?.status);
    for (const o of outcomes) {
      if (o.outcome !== "created")
        expect(o.outcome).toBe(o.status === stored.status ? "unchanged" : "conflict");
    }
    expect(stored.conflicts).toBe(outcomes.filter((o) => o.outcome === "conflict").length);
  });
});

describe("read API (SPEC §5)", () => {
  it("returns the stored step exactly as received, unknown and deeply nested fields included", async () => {
    let deep: unknown = "bottom";
    for (let i = 0; i < 100; i++) deep = [deep];
    const step = makeToolCallsStep({
      id: uid("step"),
      status: "completed",
      future_field: { deep, n: 1.25, s: "ü✓" },
    });
    const raw = `{"__proto__":{"x":1},${JSON.stringify(step).slice(1)}`;
    expect((await app.send(raw)).status).toBe(200);
    const { status, body } = await json(await app.get(`/v1/run-steps/${step.id}`));
    expect(status).toBe(200);
    const { received_at, updated_at, conflicts, deliveries, ...document } = body;
    expect(JSON.stringify(document)).toBe(raw);
    expect(received_at).toBeTypeOf("number");
    expect(updated_at).toBeGreaterThanOrEqual(received_at as number);
    expect(conflicts).toBe(0);
    expect(deliveries).toEqual([]);
  });

  it("lists a run's steps in created_at order, page by page", async () => {
    const run = uid("run");
    const createdAts = [50, 10, 40, 20, 70, 30, 60];
    await mapConcurrent(createdAts, 7, (createdAt) =>
      app.send(
        makeStep({ id: `step_${run}_${createdAt}`, run_id: run, created_at: 1_764_000_000 + createdAt }),
      ),
    );
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const page = (await json(await app.get(`/v1/runs/${run}/steps?limit=3${query}`))).body as {
        data: Array<{ id: string }>;
        next_cursor: string | null;
      };
      expect(page.data.length).toBeLessThanOrEqual(3);
      seen.push(...page.data.map((s) => s.id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual([...createdAts].sort((a, b) => a - b).map((c) => `step_${run}_${c}`));
    expect(pages).toBeGreaterThanOrEqual(3);
  });

  it("refuses bad list parameters and foreign cursors with 400", async () => {
    for (const query of [
      "limit=0",
      "limit=101",
      "limit=abc",
      "cursor=%25%25",
      `cursor=${btoa('["other","x","y"]')}`,
    ]) {
      const { status, body } = await json(await app.get(`/v1/runs/run_x/steps?${query}`));
      expect(status, query).toBe(400);
      expect(body).toMatchObject({ error: { code: "invalid_request" } });
    }
    const empty = await json(await app.get("/v1/runs/run_nothing_here/steps"));
    expect(empty).toEqual({ status: 200, body: { data: [], next_cursor: null } });
  });

  it("rolls a run up counting each step once however often and concurrently it arrived", async () => {
    const run = uid("run");
    const steps = [
      makeStep({ id: `${run}_a`, run_id: run, status: "completed", created_at: 1_764_000_100 }),
      makeStep({ id: `${run}_b`, run_id: run, status: "failed", created_at: 1_764_000_050 }),
      makeStep({ id: `${run}_c`, run_id: run, status: "in_progress", created_at: 1_764_000_200 }),
      makeStep({ id: `${run}_d`, run_id: run, status: "expired", created_at: 1_764_000_300 }),
    ];
    await Promise.all(steps.flatMap((s) => [app.send(s), app.send(s), app.send(s), app.send(s)]));
    const { status, body } = await json(await app.get(`/v1/runs/${run}`));
    expect(status).toBe(200);
    expect(body).toMatchObject({
      run_id: run,
      thread_id: "thread_abc123",
      assistant_id: "asst_abc123",
      steps: { total: 4, in_progress: 1, completed: 1, failed: 1, cancelled: 0, expired: 1 },
      usage: { prompt_tokens: 369, completion_tokens: 1368, total_tokens: 1737 },
      first_created_at: 1_764_000_050,
    });
    expect(body.last_updated_at).toBeTypeOf("number");
  });

  it("401 unauthorized without a valid bearer token; any configured token works", async () => {
    for (const headers of [
      {},
      { authorization: "Bearer wrong-token-0000000000" },
      { authorization: "Basic dXNlcjpwYXNz" },
      { authorization: "Bearer" },
    ]) {
      const { status, body } = await json(await app.app.request("/v1/runs/run_1", { headers }));
      expect(status).toBe(401);
      expect(body).toMatchObject({ error: { code: "unauthorized" } });
    }
    expect((await app.get("/v1/runs/run_none", "second-token-abcdefghij")).status).toBe(404);
  });

  it("refuses everything when no token is configured", async () => {
    const closed = await createTestApp(store, { API_TOKEN: "" });
    expect((await closed.get("/v1/runs/run_1", "")).status).toBe(401);
    expect((await closed.get("/v1/runs/run_1", TEST_TOKEN)).status).toBe(401);
  });

  it("404 not_found for unknown steps, runs and routes", async () => {
    for (const path of ["/v1/run-steps/step_missing", "/v1/runs/run_missing", "/v1/nothing"]) {
      const { status, body } = await json(await app.get(path));
      expect(status).toBe(404);
      expect(body).toMatchObject({ error: { code: "not_found" } });
    }
  });

  it("health, readiness and the OpenAPI document", async () => {
    expect(await json(await app.app.request("/healthz"))).toEqual({ status: 200, body: { status: "ok" } });
    expect(await json(await app.app.request("/readyz"))).toEqual({ status: 200, body: { status: "ready" } });
    const doc = (await json(await app.app.request("/openapi.json"))).body as {
      paths: Record<string, unknown>;
      components: { schemas: Record<string, { properties?: Record<string, unknown>; required?: string[] }> };
    };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/v1/webhooks/run-steps", "/v1/runs/{run_id}/steps"]),
    );
    const runStep = doc.components.schemas.RunStep;
    expect(runStep?.required).toEqual(
      expect.arrayContaining(["id", "object", "status", "step_details", "usage"]),
    );
    expect(Object.keys(runStep?.properties ?? {})).toHaveLength(16);
    // The served file is what the schemas generate: `npm run openapi` after changing either.
    expect(doc).toEqual(JSON.parse(JSON.stringify(await buildOpenApiDocument())));
  });
});

describe("the store unavailable", () => {
  it("503 store_unavailable with Retry-After while it is down, 200 once it is back", async () => {
    const step = makeStep({ id: uid("step") });
    await store.stop();
    try {
      const down = await app.send(step);
      expect(down.status).toBe(503);
      expect(down.headers.get("retry-after")).toBe("5");
      expect(await down.json()).toEqual({
        error: { code: "store_unavailable", message: "the store is throttled or unreachable; retry later" },
      });
      expect((await app.app.request("/readyz")).status).toBe(503);
      expect((await app.get(`/v1/run-steps/${step.id}`)).status).toBe(503);
    } finally {
      await store.restart();
    }
    expect((await json(await app.send(step))).body.outcome).toBe("created");
  });
});

describe("a store that accepts connections but never answers", () => {
  it("is reported as 503 in seconds, not after the SDK's default retries", async () => {
    const sockets = new Set<import("node:net").Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", () => resolve()));
    const port = (silent.address() as AddressInfo).port;
    const client = createDynamoClient(
      { ...TEST_AWS, DYNAMODB_ENDPOINT: `http://127.0.0.1:${port}` },
      createNodeDynamoHandler(),
    );
    try {
      const config = parseConfig({
        WEBHOOK_SECRET: app.secret,
        ...TEST_AWS,
        DYNAMODB_ENDPOINT: `http://127.0.0.1:${port}`,
      });
      const lines: string[] = [];
      const hung = await createStepwatch(
        config,
        client,
        createLogger("error", (line) => lines.push(line)),
      );
      const body = JSON.stringify(makeStep({ id: uid("step") }));
      const ts = now();
      const response = await hung.app.request("/v1/webhooks/run-steps", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "webhook-id": "msg_hung",
          "webhook-timestamp": String(ts),
          "webhook-signature": new Webhook(app.secret).sign("msg_hung", new Date(ts * 1000), body),
        },
        body,
      });
      expect(response.status).toBe(503);
      expect(response.headers.get("retry-after")).toBe("5");
      // An operator sees it: one error line, with the request id and why, never a secret.
      expect(lines.map((line) => JSON.parse(line))).toMatchObject([
        {
          level: "error",
          msg: "request",
          request_id: response.headers.get("x-request-id"),
          status: 503,
          error_code: "store_unavailable",
          store_error: expect.stringContaining("TimeoutError"),
        },
      ]);
    } finally {
      client.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  }, 20_000);
});
