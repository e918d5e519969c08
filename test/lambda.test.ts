import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { LambdaContext } from "hono/aws-lambda";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { bundleLambda, LAMBDA_BUNDLE_FILE, REPO_ROOT } from "../infra/lambda-bundle.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { CONSOLE_FILES, CONSOLE_HEADERS } from "../src/http/routes/console-routes.js";
import type * as LambdaEntry from "../src/runtime/lambda.js";
import { makeStep } from "./support/run-steps.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";
import { TEST_TOKEN } from "./support/test-app.js";
import { startTestStore, TEST_AWS, type TestStore } from "./support/test-store.js";

// The handlers are imported from the bundle infra/ deploys (esbuild output of src/runtime/lambda.ts),
// not from the sources: what runs here is what runs on Lambda.
let entry: typeof LambdaEntry;
let bundleDir: string;
let store: TestStore;
let sink: SinkServer;
const secret = generateWebhookSecret();
const sinkSecret = generateWebhookSecret();
let seq = 0;
const uid = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${seq++}`;

const context = {
  callbackWaitsForEmptyEventLoop: true,
  functionName: "stepwatch-http",
  functionVersion: "$LATEST",
  invokedFunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:stepwatch-http",
  memoryLimitInMB: "512",
  awsRequestId: "c6af9ac6-7b61-11e6-9a41-93e812345678",
  logGroupName: "/aws/lambda/stepwatch-http",
  logStreamName: "2026/11/25/[$LATEST]abcdef",
  getRemainingTimeInMillis: () => 30_000,
} satisfies LambdaContext;

// A Lambda Function URL event (payload format 2.0), as AWS sends it.
function functionUrlEvent(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: { text: string; base64?: boolean },
) {
  const domainName = "abcdefghij.lambda-url.us-east-1.on.aws";
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: path,
    rawQueryString: "",
    headers: { host: domainName, "x-forwarded-proto": "https", ...headers },
    requestContext: {
      accountId: "anonymous",
      apiId: "abcdefghij",
      // API Gateway v2 sends these two; a Function URL without IAM auth leaves them out.
      authentication: null,
      authorizer: {},
      domainName,
      domainPrefix: "abcdefghij",
      http: { method, path, protocol: "HTTP/1.1", sourceIp: "203.0.113.7", userAgent: "relay/1.0" },
      requestId: uid("req"),
      routeKey: "$default",
      stage: "$default",
      time: "25/Nov/2026:17:00:00 +0000",
      timeEpoch: Date.now(),
    },
    body: body ? (body.base64 ? Buffer.from(body.text).toString("base64") : body.text) : null,
    isBase64Encoded: body?.base64 ?? false,
  };
}

function signedEvent(step: unknown, options: { signWith?: string; base64?: boolean } = {}) {
  const payload = JSON.stringify(step);
  const id = uid("msg");
  const now = new Date();
  return functionUrlEvent(
    "POST",
    "/v1/webhooks/run-steps",
    {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
      "webhook-signature": new Webhook(options.signWith ?? secret).sign(id, now, payload),
    },
    { text: payload, ...(options.base64 ? { base64: true } : {}) },
  );
}

const invoke = (event: ReturnType<typeof functionUrlEvent>) => entry.handler(event, context);
const read = (path: string) =>
  invoke(functionUrlEvent("GET", path, { authorization: `Bearer ${TEST_TOKEN}` }));
const stepOf = async (id: string) =>
  JSON.parse((await read(`/v1/run-steps/${id}`)).body) as {
    deliveries: Array<{ state: string; attempts: number; next_attempt_at: number | null }>;
  };
const requestsFor = (stepId: string) => sink.received.filter((r) => r.body.includes(`"${stepId}"`));

beforeAll(async () => {
  bundleDir = mkdtempSync(join(tmpdir(), "stepwatch-lambda-"));
  bundleLambda(bundleDir);
  [store, sink] = await Promise.all([startTestStore("stepwatch-lambda"), startSinkServer()]);
  // What Lambda's environment holds: the function's settings plus the role's region and credentials.
  const env: Record<string, string> = {
    WEBHOOK_SECRET: secret,
    API_TOKEN: TEST_TOKEN,
    DYNAMODB_TABLE: store.tableName,
    DYNAMODB_ENDPOINT: store.endpoint,
    ...TEST_AWS,
    AWS_SESSION_TOKEN: "session-token",
    NOTIFY_SINKS: JSON.stringify([
      { name: "hook", type: "webhook", url: `${sink.url}/hook`, secret: sinkSecret },
    ]),
    NOTIFY_RETRY_SCHEDULE: "0.5",
    NOTIFY_TIMEOUT_MS: "2000",
    LOG_LEVEL: "error",
  };
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
  entry = (await import(pathToFileURL(join(bundleDir, LAMBDA_BUNDLE_FILE)).href)) as typeof LambdaEntry;
});

afterAll(async () => {
  vi.unstubAllEnvs();
  await Promise.all([store?.close(), sink?.close()]);
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
});

describe("the Lambda handler behind a Function URL", () => {
  it("stores a signed event and serves the same step from the read API", async () => {
    const step = makeStep({ id: uid("step_l"), run_id: uid("run_l") });
    const ingest = await invoke(signedEvent(step));
    expect(ingest.statusCode).toBe(200);
    expect(JSON.parse(ingest.body)).toEqual({ step_id: step.id, status: "in_progress", outcome: "created" });

    const stored = await read(`/v1/run-steps/${step.id}`);
    expect(stored.statusCode).toBe(200);
    expect(stored.headers?.["content-type"]).toMatch(/^application\/json/);
    expect(JSON.parse(stored.body)).toMatchObject({ ...step, deliveries: [] });
  });

  it("serves the operator console from the files bundled next to the handler", async () => {
    for (const [name, type] of Object.entries(CONSOLE_FILES)) {
      const response = await invoke(functionUrlEvent("GET", `/console/${name}`, {}));
      expect(response.statusCode, name).toBe(200);
      expect(response.headers).toMatchObject({ ...CONSOLE_HEADERS, "content-type": type });
      const body = response.isBase64Encoded ? Buffer.from(response.body, "base64").toString() : response.body;
      expect(body).toBe(readFileSync(join(REPO_ROOT, "public/console", name), "utf8"));
    }
    const page = await invoke(functionUrlEvent("GET", "/console/", {}));
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("<title>stepwatch console</title>");
    expect((await invoke(functionUrlEvent("GET", "/console/..%2Findex.mjs", {}))).statusCode).toBe(404);
  });

  it("verifies the signature over the exact bytes of a base64-encoded body", async () => {
    const step = makeStep({ id: uid("step_b64"), metadata: { note: "naïve – ünïcödé" } });
    const ingest = await invoke(signedEvent(step, { base64: true }));
    expect(ingest.statusCode).toBe(200);
    expect(JSON.parse((await read(`/v1/run-steps/${step.id}`)).body)).toMatchObject({
      metadata: { note: "naïve – ünïcödé" },
    });
  });

  it("refuses a bad signature with 401 and stores nothing", async () => {
    const step = makeStep({ id: uid("step_bad") });
    const response = await invoke(signedEvent(step, { signWith: generateWebhookSecret() }));
    expect(response.statusCode).toBe(401);
    expect(JSON.parse(response.body)).toMatchObject({ error: { code: "invalid_signature" } });
    expect((await read(`/v1/run-steps/${step.id}`)).statusCode).toBe(404);
  });

  it("has attempted the notification before returning, since Lambda freezes after that", async () => {
    const step = makeStep({ id: uid("step_done"), status: "completed" });
    const response = await invoke(signedEvent(step));
    expect(JSON.parse(response.body)).toMatchObject({ outcome: "created" });
    // No waiting: the handler's promise resolved only after the attempt was made and recorded.
    expect(requestsFor(step.id as string)).toHaveLength(1);
    expect((await stepOf(step.id as string)).deliveries).toMatchObject([{ state: "delivered", attempts: 1 }]);
  });
});

describe("the Lambda sweep handler (EventBridge schedule)", () => {
  it("delivers a retry that has fallen due", async () => {
    sink.script({ status: 500, body: "down" });
    const step = makeStep({ id: uid("step_retry"), status: "expired" });
    expect((await invoke(signedEvent(step))).statusCode).toBe(200);
    expect(requestsFor(step.id as string)).toHaveLength(1);

    await eventually(async () => {
      const [delivery] = (await stepOf(step.id as string)).deliveries;
      return delivery?.next_attempt_at !== null &&
        delivery?.next_attempt_at !== undefined &&
        delivery.next_attempt_at <= Date.now() / 1000
        ? delivery
        : undefined;
    });
    const report = await entry.scheduled();
    expect(report).toMatchObject({ attempts: 1, delivered: 1, retrying: 0, dead: 0 });
    expect(requestsFor(step.id as string)).toHaveLength(2);
    expect((await stepOf(step.id as string)).deliveries).toMatchObject([{ state: "delivered", attempts: 2 }]);
  });
});

describe("the Lambda entry's configuration", () => {
  it("answers 500 without details, and logs the variable to fix, when configuration is invalid", async () => {
    const errors: unknown[] = [];
    const spy = vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => {
      errors.push(...args);
    });
    try {
      const handlers = entry.createLambdaHandlers({ ...TEST_AWS, WEBHOOK_SECRET: "not-a-secret" });
      const response = await handlers.handler(functionUrlEvent("GET", "/healthz", {}), context);
      expect(response.statusCode).toBe(500);
      expect(JSON.parse(response.body)).toMatchObject({ error: { code: "internal_error" } });
      expect(response.body).not.toContain("not-a-secret");
      expect(errors).toHaveLength(1);
      expect(String(errors[0])).toMatch(/^Invalid configuration: WEBHOOK_SECRET /);
      await expect(handlers.scheduled()).rejects.toThrow(/^Invalid configuration: WEBHOOK_SECRET /);
    } finally {
      spy.mockRestore();
    }
  });
});
