import { CreateTableCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import openApiDocument from "../public/openapi.json" with { type: "json" };
import { createSignatureVerifier } from "../src/domain/signature-verifier.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { createApp } from "../src/http/create-app.js";
import { consoleRoutes } from "../src/http/routes/console-routes.js";
import { createLogger } from "../src/observability/logger.js";
import { consoleFilesIn } from "../src/runtime/console-files.js";
import { createPromMetrics } from "../src/runtime/prom-metrics.js";
import { DynamoQuarantineStore } from "../src/store/dynamo-quarantine-store.js";
import { DynamoStepStore } from "../src/store/dynamo-step-store.js";
import { RunStepIngest } from "../src/usecases/run-step-ingest.js";
import { createTestApp, TEST_TOKEN } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// What createApp answers outside its routes (unknown paths, failures it did not expect, a store it
// cannot reach) and which optional parts it mounts. Each app is built inside its test: what it
// mounts is decided when it is built.

let store: TestStore;
const CONSOLE_DIR = new URL("../public/console/", import.meta.url);
const auth = { authorization: `Bearer ${TEST_TOKEN}` };
type Line = Record<string, unknown>;
const requestLines = (lines: readonly string[]) =>
  lines.map((line) => JSON.parse(line) as Line).filter((line) => line.msg === "request");

beforeAll(async () => {
  store = await startTestStore();
});
afterAll(async () => {
  await store?.close();
});

describe("answers outside the routes", () => {
  it("a path or method with no route is 404 not_found naming both, with the request id", async () => {
    const app = await createTestApp(store);
    for (const [method, path] of [
      ["GET", "/v1/nope"],
      ["DELETE", "/healthz"],
      ["GET", "/v1/webhooks/run-steps"],
    ] as const) {
      const response = await app.app.request(path, { method, headers: { "x-request-id": "req-404" } });
      expect(response.status).toBe(404);
      expect(response.headers.get("x-request-id")).toBe("req-404");
      expect(await response.json()).toEqual({
        error: { code: "not_found", message: `no route for ${method} ${path}` },
      });
    }
  });

  it("a store failure that is no 'try later' (a table of another shape) is 500 internal_error: the log line says what, the body never", async () => {
    const table = "stepwatch-other-shape";
    await store.client.send(
      new CreateTableCommand({
        TableName: table,
        AttributeDefinitions: [{ AttributeName: "id", AttributeType: "S" }],
        KeySchema: [{ AttributeName: "id", KeyType: "HASH" }],
        BillingMode: "PAY_PER_REQUEST",
      }),
    );
    const lines: string[] = [];
    const app = await createTestApp(store, { DYNAMODB_TABLE: table }, { logLines: lines });
    // Straight to the app: a 500 is documented nowhere, and the conformance check would refuse it.
    const response = await app.app.fetch(
      new Request("http://localhost/v1/run-steps/step_any", { headers: auth }),
    );
    expect(response.status).toBe(500);
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({ error: { code: "internal_error", message: "internal error" } });
    expect(text).not.toMatch(/Validation|schema|at /);
    expect(requestLines(lines)).toMatchObject([
      {
        level: "error",
        status: 500,
        request_id: response.headers.get("x-request-id"),
        error_code: "internal_error",
        error: expect.stringMatching(/^ValidationException: .*key/i),
      },
    ]);
  });

  it("a missing table is 503 store_unavailable with Retry-After; the log line names DynamoDB's own error", async () => {
    const lines: string[] = [];
    const app = await createTestApp(
      store,
      { DYNAMODB_TABLE: "stepwatch-no-such-table" },
      { logLines: lines },
    );
    const response = await app.get("/v1/run-steps/step_any");
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("5");
    expect(await response.json()).toEqual({
      error: { code: "store_unavailable", message: "the store is throttled or unreachable; retry later" },
    });
    // The cause, not the wrapper: what an operator searches DynamoDB's documentation for.
    expect(requestLines(lines)).toMatchObject([
      {
        level: "error",
        status: 503,
        error_code: "store_unavailable",
        store_error: expect.stringMatching(/^ResourceNotFoundException: /),
      },
    ]);
  });
});

describe("optional parts, mounted only when given", () => {
  it("without delivery operations (an ingest-only app), the operator routes and /metrics are 404s; the rest is served", async () => {
    const logger = createLogger("error", () => undefined);
    const steps = new DynamoStepStore({ client: store.client, tableName: store.tableName, retentionDays: 0 });
    const app = createApp({
      store: steps,
      verifier: await createSignatureVerifier([generateWebhookSecret()], 300),
      logger,
      ingest: new RunStepIngest({
        store: steps,
        quarantine: new DynamoQuarantineStore({ client: store.client, tableName: store.tableName }),
        logger,
        quarantineDays: 14,
      }),
      metrics: createPromMetrics(),
      apiTokens: [TEST_TOKEN],
      maxBodyBytes: 262_144,
    });
    for (const path of ["/v1/deliveries?state=dead", "/v1/sinks", "/v1/sinks/hook", "/metrics"]) {
      const response = await app.request(path, { headers: auth });
      expect(response.status, path).toBe(404);
      expect(await response.json(), path).toMatchObject({ error: { code: "not_found" } });
    }
    expect((await app.request("/v1/runs/run_none", { headers: auth })).status).toBe(404);
    expect((await app.request("/v1/quarantine", { headers: auth })).status).toBe(200);
    expect((await app.request("/readyz")).status).toBe(200);
  });

  it("the operator console is served when its routes are given, a 404 otherwise", async () => {
    const withConsole = await createTestApp(
      store,
      {},
      { consoleRoutes: consoleRoutes(consoleFilesIn(CONSOLE_DIR)) },
    );
    const page = await withConsole.app.request("/console/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");

    const without = await createTestApp(store);
    const missing = await without.app.request("/console/");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({
      error: { code: "not_found", message: "no route for GET /console/" },
    });
  });

  it("/openapi.json is served when the document is given (Node, Lambda), a 404 otherwise (the Worker's assets serve it)", async () => {
    const withDocument = await createTestApp(store);
    const served = await withDocument.app.request("/openapi.json");
    expect(served.status).toBe(200);
    expect(await served.json()).toEqual(openApiDocument);

    const without = await createTestApp(store, {}, { openApiDocument: undefined });
    const missing = await without.app.request("/openapi.json");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: "not_found" } });
  });
});
