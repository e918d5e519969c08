import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { LambdaContext } from "hono/aws-lambda";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { bundleLambda, LAMBDA_BUNDLE_FILE, REPO_ROOT } from "../infra/lambda-bundle.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { CONSOLE_FILES, CONSOLE_HEADERS } from "../src/http/routes/console-routes.js";
import { BACKLOG_METRICS } from "../src/observability/backlog-metrics.js";
import type * as LambdaEntry from "../src/runtime/lambda.js";
import { failedResponse } from "./fixtures/openai-objects.js";
import { type FakeOpenAi, startFakeOpenAi } from "./support/fake-openai.js";
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
let api: FakeOpenAi;
const secret = generateWebhookSecret();
const sinkSecret = generateWebhookSecret();
const openAiSecret = generateWebhookSecret();
const OPENAI_KEY = "sk-lambda-test-0123456789";
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

function signedEvent(step: unknown, options: { signWith?: string; base64?: boolean; path?: string } = {}) {
  const payload = JSON.stringify(step);
  const id = uid("msg");
  const now = new Date();
  return functionUrlEvent(
    "POST",
    options.path ?? "/v1/webhooks/run-steps",
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

// The environment every handler here runs with (without the secrets, for the extension's tests).
let baseEnv: Record<string, string>;

beforeAll(async () => {
  bundleDir = mkdtempSync(join(tmpdir(), "stepwatch-lambda-"));
  bundleLambda(bundleDir);
  [store, sink, api] = await Promise.all([
    startTestStore("stepwatch-lambda"),
    startSinkServer(),
    startFakeOpenAi({ apiKey: OPENAI_KEY }),
  ]);
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
  baseEnv = env;
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
  entry = (await import(pathToFileURL(join(bundleDir, LAMBDA_BUNDLE_FILE)).href)) as typeof LambdaEntry;
});

afterAll(async () => {
  vi.unstubAllEnvs();
  await Promise.all([store?.close(), sink?.close(), api?.close()]);
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

  it("uses Lambda's request id as the request's id, in the answer and the JSON request line", async () => {
    const lines: string[] = [];
    const handlers = entry.createLambdaHandlers(
      { ...baseEnv, LOG_LEVEL: "info" },
      { writeLine: (l) => lines.push(l) },
    );
    const step = makeStep({ id: uid("step_rid") });
    const answer = await handlers.handler(signedEvent(step), context);
    expect(answer.statusCode).toBe(200);
    expect(answer.headers?.["x-request-id"]).toBe(context.awsRequestId);
    const request = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "request");
    expect(request).toMatchObject({ level: "info", request_id: context.awsRequestId, status: 200 });
    // A caller's own X-Request-Id still wins.
    const own = await handlers.handler(
      functionUrlEvent("GET", "/healthz", { "x-request-id": "caller-chosen-1" }),
      context,
    );
    expect(own.headers?.["x-request-id"]).toBe("caller-chosen-1");
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

/** A failed response under a fresh id, served by the stand-in, and OpenAI's thin event for it, signed. */
function failedOnOpenAi() {
  const response = { ...failedResponse, id: uid("resp_l") };
  api.responses.set(response.id, response);
  const thin = {
    id: uid("evt_l"),
    object: "event",
    created_at: Math.floor(Date.now() / 1000),
    type: "response.failed",
    data: { id: response.id },
  };
  const event = signedEvent(thin, { signWith: openAiSecret, path: "/v1/webhooks/openai" });
  return { response, event, thin };
}

describe("OpenAI's platform webhooks on Lambda (SPEC §9)", () => {
  // The settings the stack gives each function with OpenAI on: the HTTP one both secrets, the
  // sweeper the API key alone (infra/stepwatch-stack.ts).
  const httpEnv = () => ({
    ...baseEnv,
    OPENAI_WEBHOOK_SECRET: openAiSecret,
    OPENAI_API_KEY: OPENAI_KEY,
    OPENAI_BASE_URL: api.url,
  });
  const sweeperEnv = () => {
    const { WEBHOOK_SECRET: _w, API_TOKEN: _a, ...rest } = baseEnv;
    return { ...rest, OPENAI_API_KEY: OPENAI_KEY, OPENAI_BASE_URL: api.url };
  };
  const notificationsOf = (responseId: string) =>
    sink.received.filter((r) => r.path === "/hook" && r.body.includes(`"${responseId}"`));

  it("has hydrated a thin event and sent its notification before returning, since Lambda freezes after that", async () => {
    const handlers = entry.createLambdaHandlers(httpEnv());
    const { response, event, thin } = failedOnOpenAi();
    const answer = await handlers.handler(event, context);
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({
      event_id: thin.id,
      type: "response.failed",
      outcome: "accepted",
    });
    // No waiting: the handler resolved only after the fetch, the store and the attempt.
    expect(api.count(`/v1/responses/${response.id}`)).toBe(1);
    const [notification] = notificationsOf(response.id);
    expect(
      new Webhook(sinkSecret).verify(notification?.body ?? "", {
        "webhook-id": String(notification?.headers["webhook-id"]),
        "webhook-timestamp": String(notification?.headers["webhook-timestamp"]),
        "webhook-signature": String(notification?.headers["webhook-signature"]),
      }),
    ).toMatchObject({ type: "response.failed", data: response });
    const stored = await handlers.handler(
      functionUrlEvent("GET", `/v1/responses/${response.id}`, { authorization: `Bearer ${TEST_TOKEN}` }),
      context,
    );
    expect(stored.statusCode).toBe(200);
    expect(JSON.parse(stored.body)).toMatchObject({
      ...response,
      events: [{ id: thin.id, hydration: "hydrated", attempts: 1 }],
      deliveries: [{ sink: "hook", state: "delivered", attempts: 1 }],
    });
  });

  it("the sweep entry, given the sinks and the API key alone (no webhook secret), retries a hydration the API failed", async () => {
    const http = entry.createLambdaHandlers(httpEnv());
    const sweeper = entry.createLambdaHandlers(sweeperEnv());
    const { response, event } = failedOnOpenAi();
    api.failNext(1, { status: 500 });
    expect((await http.handler(event, context)).statusCode).toBe(200);
    expect(api.count(`/v1/responses/${response.id}`)).toBe(1);
    expect(notificationsOf(response.id)).toHaveLength(0);
    // Its retry is due after about a second.
    await eventually(
      async () => {
        await sweeper.scheduled();
        return notificationsOf(response.id).length > 0 ? true : undefined;
      },
      15_000,
      250,
    );
    expect(api.count(`/v1/responses/${response.id}`)).toBe(2);
    expect(notificationsOf(response.id)).toHaveLength(1);
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

describe("the Lambda sweeper's backlog gauges (Embedded Metric Format)", () => {
  it("logs the table's and each sink's pending, dead and oldest pending age after each sweep", async () => {
    const lines: string[] = [];
    const handlers = entry.createLambdaHandlers(baseEnv, { writeLine: (l) => lines.push(l) });
    // A step whose notification dies: the sink fails both the attempt and the one retry.
    sink.script({ status: 500, body: "down" }, { status: 500, body: "down" });
    const step = makeStep({ id: uid("step_dead"), status: "failed" });
    expect((await handlers.handler(signedEvent(step), context)).statusCode).toBe(200);
    await eventually(async () => {
      const [delivery] = (await stepOf(step.id as string)).deliveries;
      return delivery?.next_attempt_at != null && delivery.next_attempt_at <= Date.now() / 1000
        ? delivery
        : undefined;
    });
    await handlers.scheduled();
    expect((await stepOf(step.id as string)).deliveries).toMatchObject([{ state: "dead" }]);

    const emf = lines.map((l) => JSON.parse(l)).filter((l) => l._aws !== undefined);
    expect(emf).toHaveLength(2);
    const [total, perSink] = emf;
    for (const doc of emf) {
      // What CloudWatch needs to extract the metrics: a directive naming them, values at the top.
      const [directive] = doc._aws.CloudWatchMetrics;
      expect(directive.Namespace).toBe(BACKLOG_METRICS.namespace);
      expect(directive.Metrics.map((m: { Name: string }) => m.Name)).toEqual([
        BACKLOG_METRICS.pending,
        BACKLOG_METRICS.dead,
        BACKLOG_METRICS.oldestPendingAge,
      ]);
      for (const name of directive.Dimensions[0]) expect(typeof doc[name]).toBe("string");
      expect(Math.abs(doc._aws.Timestamp - Date.now())).toBeLessThan(60_000);
    }
    expect(total._aws.CloudWatchMetrics[0].Dimensions).toEqual([[BACKLOG_METRICS.tableDimension]]);
    expect(total[BACKLOG_METRICS.tableDimension]).toBe(store.tableName);
    expect(perSink._aws.CloudWatchMetrics[0].Dimensions).toEqual([
      [BACKLOG_METRICS.tableDimension, BACKLOG_METRICS.sinkDimension],
    ]);
    expect(perSink[BACKLOG_METRICS.sinkDimension]).toBe("hook");
    expect(total[BACKLOG_METRICS.dead]).toBeGreaterThanOrEqual(1);
    expect(perSink[BACKLOG_METRICS.dead]).toBe(total[BACKLOG_METRICS.dead]);
    expect(total[BACKLOG_METRICS.pending]).toBe(perSink[BACKLOG_METRICS.pending]);
    expect(total[BACKLOG_METRICS.oldestPendingAge]).toBeGreaterThanOrEqual(0);
  });
});

// The Parameters and Secrets extension's HTTP interface, on loopback: what infra/ attaches as a layer.
async function startSecretsExtension(secrets: Record<string, string>, token: string) {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    requests.push(url.searchParams.get("secretId") ?? "");
    if (req.headers["x-aws-parameters-secrets-token"] !== token) {
      res.writeHead(401).end("not authorized");
      return;
    }
    const id = url.searchParams.get("secretId") ?? "";
    const value = secrets[id];
    if (url.pathname !== "/secretsmanager/get" || value === undefined) {
      res.writeHead(400).end("ResourceNotFoundException: Secrets Manager can't find the specified secret.");
      return;
    }
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify({ ARN: id, SecretString: value }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: String((server.address() as AddressInfo).port),
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("the Lambda entry's secrets, from Secrets Manager through the extension", () => {
  const arn = (name: string) =>
    `arn:aws:secretsmanager:us-east-1:123456789012:secret:stepwatch-${name}-AbCdEf`;
  const withoutSecrets = () => {
    const { WEBHOOK_SECRET: _w, API_TOKEN: _a, NOTIFY_SINKS: _n, ...rest } = baseEnv;
    return rest;
  };

  it("reads the variables it is given ARNs for, once per environment, and serves with them", async () => {
    const extension = await startSecretsExtension(
      {
        [arn("webhook")]: secret,
        [arn("token")]: TEST_TOKEN,
        [arn("sinks")]: baseEnv.NOTIFY_SINKS as string,
        [arn("openai-webhook")]: openAiSecret,
        [arn("openai-key")]: OPENAI_KEY,
      },
      "session-token",
    );
    try {
      const handlers = entry.createLambdaHandlers({
        ...withoutSecrets(),
        PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: extension.port,
        WEBHOOK_SECRET_SECRET_ARN: arn("webhook"),
        API_TOKEN_SECRET_ARN: arn("token"),
        NOTIFY_SINKS_SECRET_ARN: arn("sinks"),
        OPENAI_WEBHOOK_SECRET_SECRET_ARN: arn("openai-webhook"),
        OPENAI_API_KEY_SECRET_ARN: arn("openai-key"),
        OPENAI_BASE_URL: api.url,
      });
      const step = makeStep({ id: uid("step_sm") });
      expect((await handlers.handler(signedEvent(step), context)).statusCode).toBe(200);
      const read = await handlers.handler(
        functionUrlEvent("GET", `/v1/run-steps/${step.id}`, { authorization: `Bearer ${TEST_TOKEN}` }),
        context,
      );
      expect(read.statusCode).toBe(200);
      // OpenAI's secret verifies its webhooks, its key fetches what they announce.
      const { response, event } = failedOnOpenAi();
      expect((await handlers.handler(event, context)).statusCode).toBe(200);
      const hydrated = await handlers.handler(
        functionUrlEvent("GET", `/v1/responses/${response.id}`, { authorization: `Bearer ${TEST_TOKEN}` }),
        context,
      );
      expect(JSON.parse(hydrated.body)).toMatchObject({ id: response.id, status: "failed" });
      const names = ["webhook", "token", "sinks", "openai-webhook", "openai-key"];
      expect(new Set(extension.requests)).toEqual(new Set(names.map(arn)));
      // Cold start only: later invocations asked nothing more.
      expect(extension.requests).toHaveLength(names.length);
    } finally {
      await extension.close();
    }
  });

  it("fails start-up naming the variable and the secret, never a value, when a secret cannot be read", async () => {
    const extension = await startSecretsExtension({ [arn("token")]: TEST_TOKEN }, "session-token");
    const errors: unknown[] = [];
    const spy = vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => {
      errors.push(...args);
    });
    try {
      const handlers = entry.createLambdaHandlers({
        ...withoutSecrets(),
        PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: extension.port,
        WEBHOOK_SECRET_SECRET_ARN: arn("missing"),
        API_TOKEN_SECRET_ARN: arn("token"),
      });
      const response = await handlers.handler(functionUrlEvent("GET", "/healthz", {}), context);
      expect(response.statusCode).toBe(500);
      expect(errors).toHaveLength(1);
      const message = String(errors[0]);
      expect(message).toContain("WEBHOOK_SECRET");
      expect(message).toContain(arn("missing"));
      expect(message).toContain("HTTP 400");
      expect(message).not.toContain(TEST_TOKEN);
      // The sweeper's start-up fails the same way (a failed invocation: the errors alarm).
      await expect(handlers.scheduled()).rejects.toThrow(/WEBHOOK_SECRET/);
    } finally {
      spy.mockRestore();
      await extension.close();
    }
  });

  it("refuses when the session token is not the extension's", async () => {
    const extension = await startSecretsExtension({ [arn("webhook")]: secret }, "another-token");
    try {
      const handlers = entry.createLambdaHandlers({
        ...withoutSecrets(),
        PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: extension.port,
        WEBHOOK_SECRET_SECRET_ARN: arn("webhook"),
      });
      await expect(handlers.scheduled()).rejects.toThrow(/WEBHOOK_SECRET from Secrets Manager .*HTTP 401/);
    } finally {
      await extension.close();
    }
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
