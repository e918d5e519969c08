import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Hono } from "hono";
import type { Config } from "../config/config-schema.js";
import { type HmacSha256, webCryptoHmacSha256 } from "../domain/hmac-sha256.js";
import { createSignatureVerifier } from "../domain/signature-verifier.js";
import { createApp } from "../http/create-app.js";
import { createSinks } from "../notify/create-sinks.js";
import { DeliveryNotifier } from "../notify/delivery-notifier.js";
import type { SweepReport } from "../notify/notifier.js";
import { describeError, type Logger } from "../observability/logger.js";
import { DynamoDeliveryStore } from "../store/dynamo-delivery-store.js";
import { DynamoStepStore } from "../store/dynamo-step-store.js";

/** Everything a runtime entry serves, built once per process or isolate. */
export interface Stepwatch {
  readonly app: Hono;
  readonly store: DynamoStepStore;
  readonly deliveries: DynamoDeliveryStore;
  readonly notifier: DeliveryNotifier;
  /** One sweep for due notification retries (the Worker's cron, the Lambda schedule, the Node interval). */
  sweep(): Promise<SweepReport>;
  /** Sweeps every `intervalMs` (and once now), never two at a time; returns a stop function. */
  startSweeper(intervalMs: number): () => void;
  /** Resolves when prompt deliveries and sweeps in flight have finished. */
  drain(): Promise<void>;
}

/** Optional wiring a runtime may override. */
export interface StepwatchOptions {
  /** Where the console sink writes. */
  readonly writeLine?: (line: string) => void;
  /** HMAC-SHA256 for webhook signatures, in and out; Web Crypto unless the runtime has a faster one. */
  readonly hmac?: HmacSha256;
}

/**
 * Wires stepwatch from parsed configuration and a DynamoDB client. Runtime entries (Node, Workers,
 * Lambda) differ only in how they obtain these two and how they serve the result.
 */
export async function createStepwatch(
  config: Config,
  client: DynamoDBClient,
  logger: Logger,
  options: StepwatchOptions = {},
): Promise<Stepwatch> {
  // Long enough for every sink's attempt to time out before another instance may step in.
  const leaseMs = config.NOTIFY_TIMEOUT_MS * 2 + 5_000;
  const tableName = config.DYNAMODB_TABLE;
  const store = new DynamoStepStore({
    client,
    tableName,
    retentionDays: config.RETENTION_DAYS,
    promptLeaseMs: leaseMs,
  });
  const deliveries = new DynamoDeliveryStore({ client, tableName });
  const hmac = options.hmac ?? webCryptoHmacSha256;
  const sinks = await createSinks(config.NOTIFY_SINKS, {
    timeoutMs: config.NOTIFY_TIMEOUT_MS,
    hmac,
    ...(options.writeLine ? { writeLine: options.writeLine } : {}),
  });
  const notifier = new DeliveryNotifier({
    sinkConfigs: config.NOTIFY_SINKS,
    sinks,
    store: deliveries,
    logger,
    retryScheduleS: config.NOTIFY_RETRY_SCHEDULE,
    leaseMs,
  });
  const verifier = await createSignatureVerifier(config.WEBHOOK_SECRET, config.SIGNATURE_TOLERANCE_S, hmac);
  const app = createApp({
    store,
    deliveries,
    verifier,
    logger,
    notifier,
    apiTokens: config.API_TOKEN,
    maxBodyBytes: config.MAX_BODY_BYTES,
  });

  const sweep = async (): Promise<SweepReport> => {
    const report = await notifier.sweep();
    if (report.claimed > 0) logger.debug("sweep", { ...report });
    return report;
  };
  return {
    app,
    store,
    deliveries,
    notifier,
    sweep,
    startSweeper(intervalMs) {
      let running = false;
      const tick = () => {
        if (running) return;
        running = true;
        sweep()
          .catch((error) => logger.warn("sweep failed", { error: describeError(error) }))
          .finally(() => {
            running = false;
          });
      };
      tick();
      const timer = setInterval(tick, intervalMs);
      // The sweeper alone must not keep a process alive.
      (timer as { unref?: () => void }).unref?.();
      return () => clearInterval(timer);
    },
    drain: () => notifier.drain(),
  };
}
