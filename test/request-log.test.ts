import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AnsweredRequest, logFields, requestLog } from "../src/http/request-log.js";
import { createLogger } from "../src/observability/logger.js";
import { makeStep } from "./support/run-steps.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, TEST_TOKEN, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
let sink: SinkServer;
let app: TestApp;
const lines: string[] = [];
const sinkSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
let seq = 0;
const uid = () => `step_log_${Date.now().toString(36)}_${seq++}`;

type Line = Record<string, unknown>;
const parsed = () => lines.map((line) => JSON.parse(line) as Line);
const requestLines = () => parsed().filter((l) => l.msg === "request");
const lastRequest = () => requestLines().at(-1) as Line;

beforeAll(async () => {
  [store, sink] = await Promise.all([startTestStore(), startSinkServer()]);
  app = await createTestApp(
    store,
    {
      NOTIFY_SINKS: JSON.stringify([
        { name: "hook", type: "webhook", url: `${sink.url}/?token=URL-SECRET`, secret: sinkSecret },
      ]),
    },
    { logLines: lines },
  );
});
afterAll(async () => {
  await app.drain();
  await Promise.all([store.close(), sink.close()]);
});

describe("the request log", () => {
  it("writes one line per request: request id, method, route pattern, status, latency, and what ingest did", async () => {
    const step = makeStep({ id: uid() });
    const before = requestLines().length;
    const response = await app.send(step);
    expect(response.status).toBe(200);
    expect(requestLines()).toHaveLength(before + 1);
    const line = lastRequest();
    expect(line).toMatchObject({
      level: "info",
      msg: "request",
      method: "POST",
      route: "/v1/webhooks/run-steps",
      status: 200,
      step_id: step.id,
      run_id: "run_abc123",
      step_status: "in_progress",
      outcome: "created",
    });
    expect(line.latency_ms).toBeTypeOf("number");
    expect(line.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.headers.get("x-request-id")).toBe(line.request_id);
  });

  it("takes a valid X-Request-Id from the caller and replaces one that is not", async () => {
    const given = await app.app.request("/v1/runs/run_missing", {
      headers: { authorization: `Bearer ${TEST_TOKEN}`, "x-request-id": "req-123.abc:def_9" },
    });
    expect(given.headers.get("x-request-id")).toBe("req-123.abc:def_9");
    expect(lastRequest()).toMatchObject({
      request_id: "req-123.abc:def_9",
      route: "/v1/runs/:run_id",
      status: 404,
      level: "warn",
      error_code: "not_found",
    });
    for (const bad of ["has space", "x".repeat(129), "tab\tinside", "é", ""]) {
      const response = await app.app.request("/healthz", { headers: { "x-request-id": bad } });
      const id = response.headers.get("x-request-id");
      expect(id).not.toBe(bad);
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it("names which check refused a request, never the secret or token", async () => {
    await app.send(makeStep({ id: uid() }), { secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" });
    expect(lastRequest()).toMatchObject({ status: 401, error_code: "invalid_signature", level: "warn" });
    expect(lastRequest().reason).toBeTypeOf("string");

    await app.app.request("/v1/deliveries?state=dead");
    expect(lastRequest()).toMatchObject({
      status: 401,
      error_code: "unauthorized",
      reason: "missing bearer token",
    });
    await app.get("/v1/deliveries?state=dead", "wrong-token-0123456789");
    expect(lastRequest()).toMatchObject({ status: 401, reason: "invalid bearer token" });
    await app.app.request("/v1/deliveries?state=dead", { headers: { authorization: "Basic abc" } });
    expect(lastRequest()).toMatchObject({ status: 401, reason: "malformed Authorization header" });

    const all = lines.join("\n");
    for (const secret of [app.secret, TEST_TOKEN, "wrong-token-0123456789", sinkSecret, "URL-SECRET"]) {
      expect(all).not.toContain(secret);
    }
  });

  it("an auth refusal's reason is the message the caller was answered, however the header is shaped", async () => {
    const cases: ReadonlyArray<readonly [string | undefined, string]> = [
      [undefined, "missing bearer token"],
      ["Bearer wrong-token-0123456789", "invalid bearer token"],
      ["bearer wrong-token-0123456789", "invalid bearer token"],
      ["Bearer   wrong-token-0123456789", "invalid bearer token"],
      ["Bearer wrong-token=", "invalid bearer token"],
      ["Basic abc", "malformed Authorization header"],
      ["xBearer wrong-token", "malformed Authorization header"],
      ["Bearer wrong token", "malformed Authorization header"],
      // Outside the token characters RFC 6750 allows, or not separated by a space: malformed.
      ["Bearer wrong!token", "malformed Authorization header"],
      ["Bearer\twrong-token", "malformed Authorization header"],
      ["Bearer", "malformed Authorization header"],
    ];
    for (const [header, message] of cases) {
      const response = await app.app.request("/v1/deliveries?state=dead", {
        headers: header === undefined ? {} : { authorization: header },
      });
      const body = (await response.json()) as { error: { code: string; message: string } };
      expect({ header, status: response.status, body }).toEqual({
        header,
        status: 401,
        body: { error: { code: "unauthorized", message } },
      });
      expect(lastRequest(), String(header)).toMatchObject({
        status: 401,
        error_code: "unauthorized",
        reason: message,
      });
    }
  });

  it("logs each answer at the level its status calls for: 5xx error, 4xx (from 400) warn, probes debug, else info", async () => {
    const lines: { level: string; status: number }[] = [];
    const bare = new Hono();
    bare.use(
      requestLog(
        createLogger("debug", (line) => lines.push(JSON.parse(line) as { level: string; status: number })),
        Date.now,
        () => undefined,
      ),
    );
    bare.get("/healthz", (c) => c.text("ok"));
    bare.get("/status/:code", (c) => c.body(null, Number(c.req.param("code")) as 200));
    for (const path of [
      "/status/200",
      "/status/399",
      "/status/400",
      "/status/499",
      "/status/500",
      "/healthz",
    ]) {
      await bare.request(path);
    }
    expect(lines.map(({ level, status }) => `${status} ${level}`)).toEqual([
      "200 info",
      "399 info",
      "400 warn",
      "499 warn",
      "500 error",
      "200 debug",
    ]);
  });

  it("hands whoever counts requests the fields the handler added, none when it added none", async () => {
    const answered: AnsweredRequest[] = [];
    const bare = new Hono();
    bare.use(
      requestLog(
        createLogger("error", () => undefined),
        Date.now,
        (a) => answered.push(a),
      ),
    );
    bare.get("/plain", (c) => c.text("plain"));
    bare.get("/noted", (c) => {
      logFields(c, { outcome: "noted" });
      logFields(c, { step_id: "step_1" });
      return c.text("noted");
    });
    await bare.request("/plain");
    await bare.request("/noted");
    expect(answered.map(({ route, status, fields }) => ({ route, status, fields }))).toEqual([
      { route: "/plain", status: 200, fields: {} },
      { route: "/noted", status: 200, fields: { outcome: "noted", step_id: "step_1" } },
    ]);
  });

  it("a refused body: its error code, quarantine id and how many issues (none for invalid JSON)", async () => {
    const invalid = await app.send("{not json");
    const invalidId = ((await invalid.json()) as { error: { quarantine_id: string } }).error.quarantine_id;
    const invalidLine = lastRequest();
    expect(invalidLine).toMatchObject({ status: 400, error_code: "invalid_json", quarantine_id: invalidId });
    expect(invalidLine).not.toHaveProperty("issues");

    const refused = await app.send(makeStep({ id: uid(), created_at: "soon", status: 7 }));
    const body = (await refused.json()) as { error: { quarantine_id: string; issues: unknown[] } };
    expect(body.error.issues).toHaveLength(2);
    expect(lastRequest()).toMatchObject({
      status: 422,
      error_code: "invalid_payload",
      quarantine_id: body.error.quarantine_id,
      issues: 2,
    });
  });

  it("carries the request id into the notification attempts the request causes", async () => {
    const step = makeStep({ id: uid(), status: "completed" });
    const response = await app.send(step);
    const requestId = response.headers.get("x-request-id");
    const attempt = await eventually(async () =>
      parsed().find((l) => l.msg === "delivery attempt" && l.step_id === step.id),
    );
    expect(attempt).toMatchObject({ request_id: requestId, sink: "hook", outcome: "delivered" });
  });

  it("logs health probes at debug, so they do not drown the rest", async () => {
    await app.app.request("/healthz");
    expect(lastRequest()).toMatchObject({ route: "/healthz", status: 200, level: "debug" });
  });

  it("honours LOG_LEVEL: at warn, answered requests are not written, refusals are", async () => {
    const quiet: string[] = [];
    const warnApp = await createTestApp(store, {}, { logLines: quiet, logLevel: "warn" });
    await warnApp.send(makeStep({ id: uid() }));
    expect(quiet).toEqual([]);
    await warnApp.send(makeStep({ id: uid() }), { secret: sinkSecret });
    expect(quiet.map((l) => JSON.parse(l) as Line)).toMatchObject([{ level: "warn", status: 401 }]);
  });
});
