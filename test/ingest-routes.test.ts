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

/** A body that never ends: counts what is pulled from it, and fails after `failAfter` chunks if given. */
function endlessBody(failAfter?: number) {
  const reads = { count: 0 };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      reads.count++;
      if (failAfter !== undefined && reads.count > failAfter) controller.error(new Error("aborted"));
      else controller.enqueue(new TextEncoder().encode("{"));
    },
  });
  return { stream, reads };
}

// `unread`: through app.fetch, past the OpenAPI conformance check of app.request, for an answer no
// client is left to read (the 499 of an upload that broke off is for the log, not the API).
async function postStream(
  stream: ReadableStream<Uint8Array>,
  headers: Record<string, string>,
  unread = false,
) {
  const init = {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: stream,
    duplex: "half",
  } as RequestInit;
  const response = unread
    ? await app.app.fetch(new Request("http://localhost/v1/webhooks/run-steps", init))
    : await app.app.request("/v1/webhooks/run-steps", init);
  return { status: response.status, headers: response.headers, text: await response.text() };
}

describe("decided from the signature headers, before the body is read", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const fresh = () => ({ "webhook-id": "msg_early", "webhook-timestamp": String(now()) });
  const cases: Array<[string, () => Record<string, string>, string]> = [
    ["no headers", () => ({}), "missing webhook-id, webhook-timestamp or webhook-signature header"],
    ["no signature", () => fresh(), "missing webhook-id, webhook-timestamp or webhook-signature header"],
    [
      "a malformed timestamp",
      () => ({ ...fresh(), "webhook-timestamp": "1e9", "webhook-signature": "v1,AAAA" }),
      "webhook-timestamp must be an integer number of Unix seconds",
    ],
    [
      "a stale timestamp",
      () => ({ ...fresh(), "webhook-timestamp": String(now() - 301), "webhook-signature": "v1,AAAA" }),
      "webhook-timestamp is too old",
    ],
    [
      "a future timestamp",
      () => ({ ...fresh(), "webhook-timestamp": String(now() + 301), "webhook-signature": "v1,AAAA" }),
      "webhook-timestamp is too far in the future",
    ],
    [
      "only a scheme no key is configured for (v1a, with a whsec_ secret)",
      () => ({ ...fresh(), "webhook-signature": "v1a,AAAA v2,AAAA" }),
      "webhook-signature has no v1 signature",
    ],
    [
      "an id over 256 characters",
      () => ({ ...fresh(), "webhook-id": "m".repeat(257), "webhook-signature": "v1,AAAA" }),
      "webhook-id is too long",
    ],
  ];
  it.each(cases)(
    "401 for %s, with Connection: close and not a byte of the body read",
    async (_, headers, reason) => {
      for (const framing of [{ "content-length": "4000" }, { "transfer-encoding": "chunked" }]) {
        const { stream, reads } = endlessBody();
        const answer = await postStream(stream, { ...headers(), ...framing });
        expect(answer.status).toBe(401);
        expect(JSON.parse(answer.text)).toEqual({ error: { code: "invalid_signature", message: reason } });
        expect(answer.headers.get("connection")).toBe("close");
        // A ReadableStream pulls once ahead of any reader to fill its queue; a reader would pull more.
        expect(reads.count).toBeLessThanOrEqual(1);
        await stream.cancel();
      }
    },
  );

  it("headers that pass go on to the body, whose signature still decides", async () => {
    const body = JSON.stringify(makeStep({ id: "step_forged" }));
    const answer = await post(body, { "webhook-signature": `v1,${Buffer.alloc(32).toString("base64")}` });
    expect(answer).toMatchObject({
      status: 401,
      body: { error: { code: "invalid_signature", message: "no signature matches" } },
    });
  });
});

describe("an upload that breaks off", () => {
  it("is answered and logged as aborted (499, warn), never a 500, whether its length was declared or streamed", async () => {
    const signature = {
      ...{ "webhook-id": "msg_cut", "webhook-timestamp": String(Math.floor(Date.now() / 1000)) },
    };
    for (const [i, framing] of [{ "content-length": "4000" }, { "transfer-encoding": "chunked" }].entries()) {
      const { stream } = endlessBody(2);
      const requestId = `ingest-aborted-${i}`;
      const answer = await postStream(
        stream,
        {
          ...signature,
          "webhook-signature": "v1,AAAA",
          "x-request-id": requestId,
          ...framing,
        },
        true,
      );
      expect(answer.status).toBe(499);
      expect(answer.headers.get("connection")).toBe("close");
      const line = lines.map((l) => JSON.parse(l)).find((l) => l.request_id === requestId);
      expect(line).toMatchObject({
        level: "warn",
        msg: "request",
        status: 499,
        error_code: "request_aborted",
        reason: "Error: aborted",
      });
    }
    expect(lines.filter((l) => l.includes('"level":"error"'))).toEqual([]);
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
      // Streamed: a failure once the body is whole is the store's (503), not an aborted upload.
      expectStoreUnavailable(
        await post(JSON.stringify(makeStep({ id: "step_throttled_chunked" })), {
          "transfer-encoding": "chunked",
        }),
      );
    });
  });
});
