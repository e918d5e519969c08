import { Webhook } from "standardwebhooks";
import openApiDocument from "../../public/openapi.json" with { type: "json" };
import { type Config, parseConfig } from "../../src/config/config-schema.js";
import { generateWebhookSecret } from "../../src/domain/webhook-secret.js";
import { createLogger, type LogLevel } from "../../src/observability/logger.js";
import {
  createStepwatch,
  type Stepwatch,
  type StepwatchOptions,
} from "../../src/runtime/create-stepwatch.js";
import { enforceConformance } from "./openapi-conformance.js";
import { TEST_AWS, type TestStore } from "./test-store.js";

/** A bearer token accepted by test apps. */
export const TEST_TOKEN = "test-token-0123456789abcdef";

/** The app wired to a real dynalite, plus helpers that sign like a third-party sender would. */
export interface TestApp extends Stepwatch {
  readonly config: Config;
  readonly secret: string;
  /** POSTs `body` signed by the `standardwebhooks` library. */
  send(body: unknown, options?: { id?: string; timestamp?: number; secret?: string }): Promise<Response>;
  /** POSTs raw bytes to the ingest route with these Standard Webhooks headers, as given. */
  post(
    body: string | Uint8Array,
    headers: { id: string; timestamp: number; signature: string },
  ): Promise<Response>;
  /** GETs an API path with the test token. */
  get(path: string, token?: string): Promise<Response>;
}

let counter = 0;

export async function createTestApp(
  store: TestStore,
  env: Record<string, string> = {},
  options: StepwatchOptions & { logLines?: string[]; logLevel?: LogLevel } = {},
): Promise<TestApp> {
  const secret = env.WEBHOOK_SECRET ?? generateWebhookSecret();
  const config = parseConfig({
    WEBHOOK_SECRET: secret,
    API_TOKEN: TEST_TOKEN,
    DYNAMODB_TABLE: store.tableName,
    DYNAMODB_ENDPOINT: store.endpoint,
    ...TEST_AWS,
    ...env,
  });
  const { logLines, logLevel, ...stepwatchOptions } = options;
  const logger = logLines
    ? createLogger(logLevel ?? "debug", (line) => logLines.push(line))
    : createLogger("error", () => undefined);
  const stepwatch = await createStepwatch(config, store.client, logger, {
    openApiDocument,
    ...stepwatchOptions,
  });
  // Every answer a test receives through app.request is held to its route's documentation.
  enforceConformance(stepwatch.app);
  const post: TestApp["post"] = async (body, headers) =>
    await stepwatch.app.request("/v1/webhooks/run-steps", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "webhook-id": headers.id,
        "webhook-timestamp": String(headers.timestamp),
        "webhook-signature": headers.signature,
      },
      body: body as string | Uint8Array<ArrayBuffer>,
    });
  return {
    ...stepwatch,
    config,
    secret,
    post,
    async send(body, options = {}) {
      const payload = typeof body === "string" ? body : JSON.stringify(body);
      const id = options.id ?? `msg_${Date.now()}_${counter++}`;
      const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
      const signature = new Webhook(options.secret ?? secret).sign(id, new Date(timestamp * 1000), payload);
      return post(payload, { id, timestamp, signature });
    },
    async get(path, token = TEST_TOKEN) {
      return await stepwatch.app.request(path, { headers: { authorization: `Bearer ${token}` } });
    },
  };
}
