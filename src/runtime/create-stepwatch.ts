import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Hono } from "hono";
import { type Config, ConfigError } from "../config/config-schema.js";
import { type HmacSha256, webCryptoHmacSha256 } from "../domain/hmac-sha256.js";
import { createSignatureVerifier } from "../domain/signature-verifier.js";
import { WebhookSecretError } from "../domain/webhook-secret.js";
import { createApp } from "../http/create-app.js";
import { createSinks } from "../notify/create-sinks.js";
import { DeliveryNotifier } from "../notify/delivery-notifier.js";
import type { SweepReport } from "../notify/notifier.js";
import { StallWatchdog } from "../notify/stall-watchdog.js";
import { describeError, type Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { OpenAiApiClient } from "../sources/openai-api-client.js";
import { DynamoDeliveryStore } from "../store/dynamo-delivery-store.js";
import { DynamoQuarantineStore } from "../store/dynamo-quarantine-store.js";
import { DynamoSinkStore } from "../store/dynamo-sink-store.js";
import { DynamoStepStore } from "../store/dynamo-step-store.js";
import { OpenAiEventStore } from "../store/openai-event-store.js";
import { ResponseStore } from "../store/response-store.js";
import { SessionStore } from "../store/session-store.js";
import { DeliveryOperations } from "../usecases/delivery-operations.js";
import { OpenAiIngest } from "../usecases/openai-ingest.js";
import { RunStepIngest } from "../usecases/run-step-ingest.js";

/** Everything a runtime entry serves, built once per process or isolate. */
export interface Stepwatch {
  readonly app: Hono;
  readonly store: DynamoStepStore;
  readonly deliveries: DynamoDeliveryStore;
  readonly sinkHealth: DynamoSinkStore;
  readonly notifier: DeliveryNotifier;
  readonly operations: DeliveryOperations;
  /** OpenAI's platform webhooks (SPEC §9), when OPENAI_WEBHOOK_SECRET or OPENAI_API_KEY is set. */
  readonly openai: {
    readonly ingest: OpenAiIngest;
    readonly events: OpenAiEventStore;
    readonly responses: ResponseStore;
    readonly sessions: SessionStore;
  } | null;
  /** One sweep for due notification retries (the Worker's cron, the Lambda schedule, the Node interval). */
  sweep(): Promise<SweepReport>;
  /**
   * Sweeps every `intervalMs` (and once now): each sink on its own timer and the outbox recovery
   * on another, each never two at a time, so no sink's sweep waits on another's; returns a stop function.
   */
  startSweeper(intervalMs: number): () => void;
  /** Resolves when prompt deliveries and sweeps in flight have finished. */
  drain(): Promise<void>;
  /** For a shutdown: sweeps stop starting attempts, queued prompt deliveries are recorded, then drains. */
  close(): Promise<void>;
}

/** Optional wiring a runtime may override. */
export interface StepwatchOptions {
  /** Where the console sink writes. */
  readonly writeLine?: (line: string) => void;
  /** HMAC-SHA256 for webhook signatures, in and out; Web Crypto unless the runtime has a faster one. */
  readonly hmac?: HmacSha256;
  /** The runtime's default SWEEP_BUDGET_MS, used when the variable is unset. */
  readonly sweepBudgetMs?: number;
  /** The runtime's cap on attempts per sweep (a Worker invocation's subrequests are limited). */
  readonly maxAttemptsPerSweep?: number;
  /** The runtime's cap on NOTIFY_CONCURRENCY (a Worker invocation has 6 connections). */
  readonly maxSinkConcurrency?: number;
  /** The runtime's cap on hydrations per sweep (they are subrequests too, on a Worker). */
  readonly maxHydrationsPerSweep?: number;
  /** The runtime's cap on OPENAI_HYDRATION_CONCURRENCY (a Worker invocation has 6 connections). */
  readonly maxHydrationConcurrency?: number;
  /** Clock in Unix ms; injectable for tests. */
  readonly nowMs?: () => number;
  /** Jitter source in [0, 1); injectable for tests. */
  readonly random?: () => number;
  /** The OpenAPI document to serve (the Worker serves it as a static asset instead). */
  readonly openApiDocument?: unknown;
  /** The operator console's routes (`consoleRoutes`); the Worker serves it as static assets instead. */
  readonly consoleRoutes?: Hono;
  /** Counters and `/metrics`, where the runtime's process lives long enough for them (Node). */
  readonly metrics?: Metrics;
}

/**
 * The OpenAI producer (SPEC §9), when OPENAI_WEBHOOK_SECRET or OPENAI_API_KEY is set: its stores
 * and its ingest; its verifier (OpenAI's secret, never WEBHOOK_SECRET, and so its webhook route)
 * when OPENAI_WEBHOOK_SECRET is set; its API client when OPENAI_API_KEY is. A sweeper given only
 * the key (infra/'s sweep function) hydrates what the HTTP side recorded, never holding the secret.
 */
async function createOpenAi(
  config: Config,
  parts: {
    client: DynamoDBClient;
    quarantine: DynamoQuarantineStore;
    deliveries: DynamoDeliveryStore;
    notifier: DeliveryNotifier;
    logger: Logger;
    hmac: HmacSha256;
    clock: { nowMs?: () => number };
    options: StepwatchOptions;
  },
) {
  if (config.OPENAI_WEBHOOK_SECRET.length === 0 && !config.OPENAI_API_KEY) return null;
  const { client, clock, options } = parts;
  const tableName = config.DYNAMODB_TABLE;
  const events = new OpenAiEventStore({ client, tableName, retentionDays: config.RETENTION_DAYS });
  const responses = new ResponseStore({ client, tableName, retentionDays: config.RETENTION_DAYS, ...clock });
  const sessions = new SessionStore({ client, tableName, retentionDays: config.RETENTION_DAYS, ...clock });
  const timeoutMs = config.NOTIFY_TIMEOUT_MS;
  const api = config.OPENAI_API_KEY
    ? new OpenAiApiClient({
        apiKey: config.OPENAI_API_KEY,
        baseUrl: config.OPENAI_BASE_URL,
        timeoutMs,
        ...(config.OPENAI_ORGANIZATION ? { organization: config.OPENAI_ORGANIZATION } : {}),
        ...(config.OPENAI_PROJECT ? { project: config.OPENAI_PROJECT } : {}),
        ...clock,
      })
    : null;
  const ingest = new OpenAiIngest({
    events,
    responses,
    sessions,
    quarantine: parts.quarantine,
    leases: parts.deliveries,
    api,
    notifier: parts.notifier,
    logger: parts.logger,
    metrics: options.metrics,
    quarantineDays: config.QUARANTINE_DAYS,
    concurrency: Math.min(
      config.OPENAI_HYDRATION_CONCURRENCY,
      options.maxHydrationConcurrency ?? Number.POSITIVE_INFINITY,
    ),
    timeoutMs,
    ...(options.maxHydrationsPerSweep ? { maxAttemptsPerSweep: options.maxHydrationsPerSweep } : {}),
    ...clock,
    ...(options.random ? { random: options.random } : {}),
  });
  const verifier =
    config.OPENAI_WEBHOOK_SECRET.length === 0
      ? null
      : await createSignatureVerifier(config.OPENAI_WEBHOOK_SECRET, config.SIGNATURE_TOLERANCE_S, parts.hmac);
  return { ingest, verifier, events, responses, sessions };
}

/** SWEEP_BUDGET_MS when neither the variable nor the runtime sets one. */
export const DEFAULT_SWEEP_BUDGET_MS = 15_000;

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
  const tableName = config.DYNAMODB_TABLE;
  const nowMs = options.nowMs ?? Date.now;
  const clock = options.nowMs ? { nowMs } : {};
  const store = new DynamoStepStore({
    client,
    tableName,
    retentionDays: config.RETENTION_DAYS,
    stallAfterS: config.STALL_AFTER_S,
    ...clock,
  });
  const deliveries = new DynamoDeliveryStore({
    client,
    tableName,
    retentionDays: config.RETENTION_DAYS,
    ...clock,
  });
  const sinkHealth = new DynamoSinkStore({ client, tableName });
  const hmac = options.hmac ?? webCryptoHmacSha256;
  const sinks = await createSinks(config.NOTIFY_SINKS, {
    timeoutMs: config.NOTIFY_TIMEOUT_MS,
    hmac,
    ...clock,
    ...(options.writeLine ? { writeLine: options.writeLine } : {}),
  }).catch((error: unknown) => {
    // A whsk_ key whose public half is not its seed's shows only once Web Crypto has derived it.
    if (error instanceof WebhookSecretError) {
      throw new ConfigError(`Invalid configuration: NOTIFY_SINKS ${error.message}`, { cause: error });
    }
    throw error;
  });
  const sweepBudgetMs = config.SWEEP_BUDGET_MS ?? options.sweepBudgetMs ?? DEFAULT_SWEEP_BUDGET_MS;
  const notifier = new DeliveryNotifier({
    sinkConfigs: config.NOTIFY_SINKS,
    sinks,
    deliveries,
    health: sinkHealth,
    logger,
    retryScheduleS: config.NOTIFY_RETRY_SCHEDULE,
    timeoutMs: config.NOTIFY_TIMEOUT_MS,
    sweepBudgetMs,
    sinkConcurrency: Math.min(
      config.NOTIFY_CONCURRENCY,
      options.maxSinkConcurrency ?? Number.POSITIVE_INFINITY,
    ),
    ...(options.maxAttemptsPerSweep ? { maxAttemptsPerSweep: options.maxAttemptsPerSweep } : {}),
    ...clock,
    ...(options.random ? { random: options.random } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
  const watchdog = new StallWatchdog({
    steps: store,
    deliveries,
    sinkConfigs: config.NOTIFY_SINKS,
    stallAfterS: config.STALL_AFTER_S,
    logger,
    ...clock,
  });
  const operations = new DeliveryOperations({
    deliveries,
    health: sinkHealth,
    notifier,
    sinkConfigs: config.NOTIFY_SINKS,
    publicKeys: new Map(
      [...sinks].flatMap(([name, sink]) => (sink.publicKey ? [[name, sink.publicKey]] : [])),
    ),
    timeoutMs: config.NOTIFY_TIMEOUT_MS,
    ...clock,
  });
  const verifier = await createSignatureVerifier(config.WEBHOOK_SECRET, config.SIGNATURE_TOLERANCE_S, hmac);
  const quarantine = new DynamoQuarantineStore({ client, tableName, ...clock });
  const ingest = new RunStepIngest({
    store,
    quarantine,
    logger,
    notifier,
    quarantineDays: config.QUARANTINE_DAYS,
    ...clock,
  });
  const openai = await createOpenAi(config, {
    client,
    quarantine,
    deliveries,
    notifier,
    logger,
    hmac,
    clock,
    options,
  });
  const app = createApp({
    store,
    ...(openai ? { openai } : {}),
    operations,
    ingest,
    verifier,
    logger,
    apiTokens: config.API_TOKEN,
    maxBodyBytes: config.MAX_BODY_BYTES,
    ...clock,
    ...(options.openApiDocument ? { openApiDocument: options.openApiDocument } : {}),
    ...(options.consoleRoutes ? { consoleRoutes: options.consoleRoutes } : {}),
    ...(options.metrics ? { metrics: options.metrics, metricsTokens: config.METRICS_TOKEN } : {}),
  });

  const sweep = async (): Promise<SweepReport> => {
    // Stall notices first, so that this sweep delivers them too; hydrations before deliveries, so
    // a fetched transition's notifications go out in the same sweep.
    await watchdog.run(nowMs() + sweepBudgetMs);
    await openai?.ingest.sweep(nowMs() + sweepBudgetMs);
    const report = await notifier.sweep();
    recordSweep(report);
    return report;
  };
  // Hydrations first: one that settles sends its notifications, which the notifier's drain then covers.
  const drain = async () => {
    await openai?.ingest.drain();
    await notifier.drain();
  };
  // Every sweep is counted; one that did something leaves a log line (an idle one would be noise).
  const recordSweep = (report: SweepReport, fields: Record<string, string> = {}) => {
    options.metrics?.sweep(report.durationMs / 1000, report.attempts, report.recovered);
    if (report.attempts > 0 || report.recovered > 0) logger.info("sweep", { ...fields, ...report });
  };
  return {
    app,
    store,
    deliveries,
    sinkHealth,
    notifier,
    operations,
    openai,
    sweep,
    startSweeper(intervalMs) {
      let stopped = false;
      // A lane sweeps again at once when its sweep ran out of budget with work left, or when a tick
      // came while it was sweeping: a backlog longer than one budget drains without waiting out an
      // interval.
      const lane = (name: string, run: () => Promise<boolean>) => {
        let running = false;
        // Stryker disable next-line BooleanLiteral: never read before a tick sets it (every tick assigns it first).
        let again = false;
        const tick = (): void => {
          if (running) {
            again = true;
            return;
          }
          running = true;
          again = false;
          run()
            .then(
              (exhausted) => {
                again ||= exhausted;
              },
              (error) => logger.warn("sweep failed", { lane: name, error: describeError(error) }),
            )
            .finally(() => {
              running = false;
              if (again && !stopped) tick();
            });
        };
        return tick;
      };
      const lanes = [
        lane("outbox", async () => {
          const recovered = await notifier.recover();
          if (recovered > 0) logger.info("outbox recovery", { recovered });
          return false;
        }),
        lane("watchdog", async () => {
          await watchdog.run(nowMs() + intervalMs);
          return false;
        }),
        // Hydrations have a lane of their own: a slow OpenAI never holds up a sink's sweep.
        ...(openai
          ? [
              lane("hydration", async () => {
                const report = await openai.ingest.sweep(nowMs() + sweepBudgetMs);
                if (report.attempts > 0) logger.info("hydration sweep", { ...report });
                return report.exhausted;
              }),
            ]
          : []),
        ...notifier.sinkNames.map((sink) =>
          lane(sink, async () => {
            const report = await notifier.sweepSink(sink);
            recordSweep(report, { sink });
            return report.exhausted;
          }),
        ),
      ];
      const tick = () => {
        for (const run of lanes) run();
      };
      tick();
      const timer = setInterval(tick, intervalMs);
      // The sweeper alone must not keep a process alive.
      (timer as { unref?: () => void }).unref?.();
      return () => {
        stopped = true;
        clearInterval(timer);
      };
    },
    drain,
    close: () => {
      watchdog.close();
      notifier.close();
      return drain();
    },
  };
}
