import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Hono } from "hono";
import type { Config } from "../config/config-schema.js";
import { createSignatureVerifier } from "../domain/signature-verifier.js";
import { createApp } from "../http/create-app.js";
import type { Logger } from "../observability/logger.js";
import { DynamoStepStore } from "../store/dynamo-step-store.js";

/** Everything a runtime entry serves, built once per process or isolate. */
export interface Stepwatch {
  readonly app: Hono;
  readonly store: DynamoStepStore;
}

/**
 * Wires stepwatch from parsed configuration and a DynamoDB client. Runtime entries (Node, Workers,
 * Lambda) differ only in how they obtain these two and how they serve the result.
 */
export async function createStepwatch(
  config: Config,
  client: DynamoDBClient,
  logger: Logger,
): Promise<Stepwatch> {
  const store = new DynamoStepStore({
    client,
    tableName: config.DYNAMODB_TABLE,
    retentionDays: config.RETENTION_DAYS,
    // Long enough for every sink's attempt to time out before a sweeper may step in.
    promptLeaseMs: config.NOTIFY_TIMEOUT_MS * 2 + 5_000,
  });
  const verifier = await createSignatureVerifier(config.WEBHOOK_SECRET, config.SIGNATURE_TOLERANCE_S);
  const app = createApp({
    store,
    verifier,
    logger,
    apiTokens: config.API_TOKEN,
    maxBodyBytes: config.MAX_BODY_BYTES,
  });
  return { app, store };
}
