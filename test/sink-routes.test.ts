import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RouteTestBed, startRouteTestBed } from "./support/route-test-bed.js";
import { TEST_TOKEN, type TestApp } from "./support/test-app.js";
import { expectStoreUnavailable, type ThrottleableStore } from "./support/throttling.js";

// `/v1/sinks` (SPEC §5): every sink on one page, 404s that name the sink asked for, and 503 under a
// throttled store. One app with a webhook sink (a loopback server) and a console sink.

let bed: RouteTestBed;
let throttling: ThrottleableStore;
let app: TestApp;

beforeAll(async () => {
  bed = await startRouteTestBed({
    extraSinks: [{ name: "log", type: "console" }],
    options: { writeLine: () => undefined },
  });
  ({ throttling, app } = bed);
});
afterAll(() => bed.close());

async function call(method: "GET" | "POST", path: string) {
  const response = await app.app.request(path, {
    method,
    headers: { authorization: `Bearer ${TEST_TOKEN}` },
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as unknown };
}

// A sink nothing has been sent to.
const untouched = (name: string, type: string) => ({
  name,
  type,
  state: "healthy",
  consecutive_failures: 0,
  last_success: null,
  last_failure: null,
  next_probe_at: null,
  disabled_reason: null,
  pending: 0,
  oldest_pending_age_s: null,
  public_key: null,
});

describe("GET /v1/sinks", () => {
  it("every configured sink, in configuration order, on one page", async () => {
    expect(await call("GET", "/v1/sinks")).toMatchObject({
      status: 200,
      body: { data: [untouched("hook", "webhook"), untouched("log", "console")], next_cursor: null },
    });
  });
});

describe("a sink no one configured", () => {
  it("reading, disabling, enabling or testing it is a 404 that names it", async () => {
    for (const [method, path] of [
      ["GET", "/v1/sinks/nosuch"],
      ["POST", "/v1/sinks/nosuch/disable"],
      ["POST", "/v1/sinks/nosuch/enable"],
      ["POST", "/v1/sinks/nosuch/test"],
    ] as const) {
      expect(await call(method, path), `${method} ${path}`).toMatchObject({
        status: 404,
        body: { error: { code: "not_found", message: "no sink nosuch" } },
      });
    }
  });
});

describe("the store throttled", () => {
  it("every sink route answers 503 store_unavailable with Retry-After", async () => {
    await throttling.whileThrottled(async () => {
      for (const [method, path] of [
        ["GET", "/v1/sinks"],
        ["GET", "/v1/sinks/hook"],
        ["POST", "/v1/sinks/hook/disable"],
        ["POST", "/v1/sinks/hook/enable"],
        ["POST", "/v1/sinks/hook/test"],
      ] as const) {
        const answer = await call(method, path);
        expectStoreUnavailable(answer, `${method} ${path}`);
      }
    });
  });
});
