// DynamoDB write units of one OpenAI response's lifecycle (SPEC §9), by the same rules and meter
// as a run step's (bench/write-units.ts): the thin event recorded, its response hydrated from the
// loopback stand-in of OpenAI's API, and its notification delivered to one webhook sink.
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { parseConfig } from "../src/config/config-schema.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { createLogger } from "../src/observability/logger.js";
import { createStepwatch } from "../src/runtime/create-stepwatch.js";
import { createNodeDynamoHandler } from "../src/runtime/node-dynamo-handler.js";
import { nodeHmacSha256 } from "../src/runtime/node-hmac.js";
import { createDynamoClient } from "../src/store/dynamo-client.js";
import { ensureTable } from "../src/store/ensure-table.js";
import { startFakeOpenAi } from "../test/support/fake-openai.js";
import { settle, waitFor } from "./delivery-phases.js";
import { createThinEventFactory, OPENAI_PATH, RESPONSE_BYTES, responseTemplate } from "./openai-events.js";
import { startScriptedSink } from "./scripted-sink.js";
import { attachWriteUnitMeter, breakdown, type WriteRecord, type WriteUnitRow } from "./write-units.js";

const API_KEY = "sk-bench-wru-0123456789";
const round3 = (x: number) => Math.round(x * 1000) / 1000;
const sumUnits = (records: readonly WriteRecord[]) => records.reduce((total, r) => total + r.units, 0);

/** What {@link measureResponseWriteUnits} reports. */
export interface ResponseWriteUnitReport {
  /** Units per response: thin event recorded, hydrated (response stored, event settled), delivered. */
  readonly wru_per_response_lifecycle: number;
  readonly response_json_bytes: number;
  readonly output_items: number;
  readonly responses_measured: number;
  readonly writes: WriteUnitRow[];
  /** The instance's first notification also writes the sink's last success. */
  readonly first_response_of_instance_wru: number;
  readonly first_response_of_instance_writes: WriteUnitRow[];
}

/**
 * Runs stepwatch in this process with OpenAI's webhooks configured, its API a loopback stand-in
 * serving a 10-item 20 KB completed response per id, on the bench's dynalite (own table) with the
 * write-unit meter on its client. One warm-up response, then `responses` measured ones: each a
 * thin `response.completed` POSTed to the app, hydrated after its answer (as in production),
 * delivered to one 204 webhook sink at its prompt attempt; the figure is units per response.
 */
export async function measureResponseWriteUnits(
  endpoint: string,
  responses = 3,
): Promise<ResponseWriteUnitReport> {
  const api = await startFakeOpenAi({ apiKey: API_KEY });
  const sink = await startScriptedSink();
  const template = responseTemplate();
  const openAiSecret = generateWebhookSecret();
  const aws = {
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "bench",
    AWS_SECRET_ACCESS_KEY: "bench",
    DYNAMODB_ENDPOINT: endpoint,
  };
  const config = parseConfig({
    ...aws,
    WEBHOOK_SECRET: generateWebhookSecret(),
    OPENAI_WEBHOOK_SECRET: openAiSecret,
    OPENAI_API_KEY: API_KEY,
    OPENAI_BASE_URL: api.url,
    DYNAMODB_TABLE: "stepwatch_bench_wru_openai",
    LOG_LEVEL: "warn",
    NOTIFY_SINKS: JSON.stringify([
      { name: "hook", type: "webhook", url: sink.url, secret: generateWebhookSecret() },
    ]),
  });
  const client = createDynamoClient(config, createNodeDynamoHandler());
  const reader = new DynamoDBClient({
    region: aws.AWS_REGION,
    endpoint,
    credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
  });
  const { records } = attachWriteUnitMeter(client, reader);
  const logger = createLogger("warn");
  try {
    await ensureTable(client, config.DYNAMODB_TABLE, { retentionDays: 0, logger });
    const stepwatch = await createStepwatch(config, client, logger, { hmac: nodeHmacSha256 });
    const openai = stepwatch.openai;
    if (!openai) throw new Error("write units: the OpenAI producer is not configured");
    const factory = createThinEventFactory(openAiSecret, `wro${Date.now().toString(36)}`, (id) =>
      api.responses.set(id, { ...template, id }),
    );
    const lifecycle = async () => {
      const event = factory.next(Math.floor(Date.now() / 1000));
      const eventId = (JSON.parse(event.body) as { id: string }).id;
      const answer = await stepwatch.app.fetch(
        new Request(`http://bench${OPENAI_PATH}`, {
          method: "POST",
          headers: event.headers,
          body: event.body,
        }),
      );
      const body = (await answer.json()) as { outcome?: string };
      if (body.outcome !== "accepted") throw new Error(`write units: event answered ${JSON.stringify(body)}`);
      // The hydration runs after the answer: wait for its last write (the event settled) and the sink.
      const done = await waitFor(
        async () =>
          sink.deliveredAt.has(event.stepId) && (await openai.events.get(eventId))?.hydration === "hydrated",
        15_000,
        20,
      );
      await stepwatch.drain();
      // The meter records a write only after reading the item back: let the last record land, so
      // it is counted with its own response and not the next one.
      await settle(() => records.length, 200, 3_000);
      if (!done) throw new Error(`write units: response ${event.stepId} was not hydrated and delivered`);
    };
    await lifecycle();
    const first = records.splice(0);
    for (let i = 0; i < responses; i++) await lifecycle();
    const measured = records.splice(0);
    await stepwatch.close();
    return {
      wru_per_response_lifecycle: round3(sumUnits(measured) / responses),
      response_json_bytes: RESPONSE_BYTES,
      output_items: template.output.length,
      responses_measured: responses,
      writes: breakdown(measured, responses),
      first_response_of_instance_wru: sumUnits(first),
      first_response_of_instance_writes: breakdown(first),
    };
  } finally {
    client.destroy();
    reader.destroy();
    await sink.close();
    await api.close();
  }
}
