import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deliver, deliveryOf } from "./support/deliveries.js";
import { type RouteTestBed, startRouteTestBed } from "./support/route-test-bed.js";
import type { SinkServer } from "./support/sink-server.js";
import { TEST_TOKEN, type TestApp } from "./support/test-app.js";
import { expectStoreUnavailable, type ThrottleableStore } from "./support/throttling.js";

// `/v1/deliveries` (SPEC §5, §6; README "Operator actions"): what each route answers to a request it
// cannot act on, in the API's one error shape, and what it tells the operator's log. One app with
// one webhook sink on a real dynalite, whose client can be throttled.

let bed: RouteTestBed;
let throttling: ThrottleableStore;
let sink: SinkServer;
let app: TestApp;
const lines: string[] = [];

beforeAll(async () => {
  bed = await startRouteTestBed({ options: { logLines: lines, logLevel: "info" } });
  ({ throttling, sink, app } = bed);
});
afterAll(() => bed.close());

interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

async function call(
  method: "GET" | "POST",
  path: string,
  init: { body?: BodyInit; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const response = await app.app.request(path, {
    method,
    headers: { authorization: `Bearer ${TEST_TOKEN}`, ...init.headers },
    ...(init.body === undefined ? {} : { body: init.body }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === "" ? null : JSON.parse(text) };
}

const bulk = (body: unknown, contentType = "application/json") =>
  call("POST", "/v1/deliveries/retry", {
    body: JSON.stringify(body),
    headers: { "content-type": contentType },
  });

const error = (code: string, message: string) => ({ error: { code, message } });

// Log lines as objects.
const logged = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);

describe("GET /v1/deliveries", () => {
  it("a sink filter naming no configured sink is a 404 that names it", async () => {
    expect(await call("GET", "/v1/deliveries?state=dead&sink=nosuch")).toMatchObject({
      status: 404,
      body: error("not_found", "no sink nosuch"),
    });
    expect(await call("GET", "/v1/deliveries?state=dead&sink=hook")).toMatchObject({
      status: 200,
      body: { data: [], next_cursor: null },
    });
  });
});

describe("POST /v1/deliveries/retry: the body", () => {
  it("415 unsupported_media_type unless the body is declared JSON (a missing content type too)", async () => {
    const body = JSON.stringify({ sink: "hook" });
    const refused = error("unsupported_media_type", "content-type must be application/json");
    expect(await bulk({ sink: "hook" }, "text/plain")).toMatchObject({ status: 415, body: refused });
    expect(await bulk({ sink: "hook" }, "application/jsonp")).toMatchObject({ status: 415, body: refused });
    // Bytes, not a string: fetch gives a string body a text/plain content type of its own.
    const bare = await call("POST", "/v1/deliveries/retry", { body: new TextEncoder().encode(body) });
    expect(bare).toMatchObject({ status: 415, body: refused });
  });

  it("accepts JSON media types with parameters, whitespace around them, and +json suffixes", async () => {
    for (const type of [
      "application/json",
      "Application/JSON;charset=utf-8",
      "application/json ; charset=utf-8",
      "application/vnd.ops+json",
    ]) {
      expect(await bulk({ sink: "hook" }, type)).toMatchObject({
        status: 200,
        body: { queued: 0, more: false },
      });
    }
  });

  it("400 invalid_json for a body that is not JSON, in the API's error shape", async () => {
    for (const body of ['{"sink":', "", "sink=hook"]) {
      expect(
        await call("POST", "/v1/deliveries/retry", { body, headers: { "content-type": "application/json" } }),
      ).toMatchObject({
        status: 400,
        body: error("invalid_json", "body must be a JSON object: { sink, since?, until?, limit? }"),
      });
    }
  });

  it("a sink no one configured is a 404 that names it", async () => {
    expect(await bulk({ sink: "nosuch" })).toMatchObject({
      status: 404,
      body: error("not_found", "no sink nosuch"),
    });
  });

  it("since after until is a 400; one second for both is a range, and either end alone is too", async () => {
    const at = Math.floor(Date.now() / 1000);
    expect(await bulk({ sink: "hook", since: at + 1, until: at })).toMatchObject({
      status: 400,
      body: error("invalid_request", "since must not be after until"),
    });
    for (const range of [{ since: at, until: at }, { since: at }, { until: at }]) {
      expect(await bulk({ sink: "hook", ...range })).toMatchObject({
        status: 200,
        body: { queued: 0, more: false },
      });
    }
  });
});

describe("POST /v1/deliveries/{id}/retry and /resend", () => {
  it("an unknown delivery is a 404 that names it", async () => {
    for (const action of ["retry", "resend"]) {
      expect(await call("POST", `/v1/deliveries/nope:hook/${action}`)).toMatchObject({
        status: 404,
        body: error("not_found", "no delivery nope:hook"),
      });
    }
  });

  it("the attempt each makes is logged with the operator's request id", async () => {
    sink.script({ status: 400, body: "refused" });
    await deliver(app, "step_logged");
    expect(await deliveryOf(app, "step_logged", "hook")).toMatchObject({ state: "dead" });

    const attempts = (requestId: string) =>
      logged().filter((line) => line.msg === "delivery attempt" && line.request_id === requestId);
    const retried = await call("POST", "/v1/deliveries/step_logged:hook/retry", {
      headers: { "x-request-id": "op-retry-1" },
    });
    expect(retried).toMatchObject({ status: 200, body: { state: "delivered", attempts: 2 } });
    expect(attempts("op-retry-1")).toMatchObject([{ step_id: "step_logged", sink: "hook", attempt: 2 }]);

    const resent = await call("POST", "/v1/deliveries/step_logged:hook/resend", {
      headers: { "x-request-id": "op-resend-1" },
    });
    expect(resent).toMatchObject({ status: 200, body: { state: "delivered", attempts: 3 } });
    expect(attempts("op-resend-1")).toMatchObject([{ step_id: "step_logged", sink: "hook", attempt: 3 }]);
  });
});

describe("the store throttled", () => {
  it("every deliveries route answers 503 store_unavailable with Retry-After", async () => {
    await throttling.whileThrottled(async () => {
      for (const [method, path, body] of [
        ["GET", "/v1/deliveries?state=pending", undefined],
        ["POST", "/v1/deliveries/retry", JSON.stringify({ sink: "hook" })],
        ["POST", "/v1/deliveries/step_x:hook/retry", undefined],
        ["POST", "/v1/deliveries/step_x:hook/resend", undefined],
      ] as const) {
        const answer = await call(method, path, {
          ...(body === undefined ? {} : { body, headers: { "content-type": "application/json" } }),
        });
        expectStoreUnavailable(answer, `${method} ${path}`);
      }
    });
  });
});
