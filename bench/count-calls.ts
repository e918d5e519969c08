import { parseConfig } from "../src/config/config-schema.js";
import { createLogger } from "../src/observability/logger.js";
import { createStepwatch } from "../src/runtime/create-stepwatch.js";
import { createNodeDynamoHandler } from "../src/runtime/node-dynamo-handler.js";
import { nodeHmacSha256 } from "../src/runtime/node-hmac.js";
import { createDynamoClient } from "../src/store/dynamo-client.js";
import { ensureTable } from "../src/store/ensure-table.js";
import { type EventFactory, postToApp, type SignedEvent } from "./events.js";
import type { LatencySink } from "./latency-sink.js";

/** DynamoDB calls per event, counted at the client. */
export interface CallCounts {
  readonly writes_per_event_nonterminal: number;
  readonly writes_per_event_terminal: number;
  readonly reads_per_applied_event: number;
  /** A repeated terminal delivery: one refused conditional write, no read. */
  readonly writes_per_duplicate_terminal: number;
  readonly reads_per_duplicate_terminal: number;
  readonly events_per_kind: number;
  readonly notifications_received: number;
  /** Every call by operation, over the three kinds of events. */
  readonly by_operation: Readonly<Record<string, number>>;
}

const WRITES = new Set([
  "PutItemCommand",
  "UpdateItemCommand",
  "DeleteItemCommand",
  "BatchWriteItemCommand",
  "TransactWriteItemsCommand",
]);
const READS = new Set([
  "GetItemCommand",
  "QueryCommand",
  "ScanCommand",
  "BatchGetItemCommand",
  "TransactGetItemsCommand",
]);

/**
 * Runs stepwatch in this process (its app, store, notifier and HMAC as the Node server wires
 * them) with a counting middleware on its DynamoDB client, and sends it `n` new in_progress
 * steps, then their completed snapshots (each notifying a 2xx webhook sink), then the same
 * completed snapshots again. The sweeper is not started: only the ingest path's calls count.
 */
export async function countCalls(
  endpoint: string,
  secret: string,
  sink: LatencySink,
  sinkSecret: string,
  factory: EventFactory,
  n = 50,
): Promise<CallCounts> {
  const config = parseConfig({
    WEBHOOK_SECRET: secret,
    DYNAMODB_TABLE: "stepwatch_bench_count",
    DYNAMODB_ENDPOINT: endpoint,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "bench",
    AWS_SECRET_ACCESS_KEY: "bench",
    LOG_LEVEL: "warn",
    NOTIFY_SINKS: JSON.stringify([{ name: "hook", type: "webhook", url: sink.url, secret: sinkSecret }]),
  });
  const client = createDynamoClient(config, createNodeDynamoHandler());
  const calls = new Map<string, number>();
  // Added before the first call: a client that caches its middleware stack ignores later changes.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? "unknown";
      calls.set(name, (calls.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: "initialize", name: "benchCallCounter" },
  );
  const logger = createLogger("warn");
  await ensureTable(client, config.DYNAMODB_TABLE, { retentionDays: 0, logger });
  const stepwatch = await createStepwatch(config, client, logger, { hmac: nodeHmacSha256 });
  const nowS = () => Math.floor(Date.now() / 1000);
  const first = factory.count;
  const fresh = Array.from({ length: n }, () => factory.next("in_progress", nowS()));
  const indexes = Array.from({ length: n }, (_, i) => first + i);

  const send = async (events: readonly SignedEvent[], expected: string) => {
    calls.clear();
    for (const event of events) await postToApp(stepwatch.app, event, expected, "call counting");
    await stepwatch.drain();
    const snapshot = Object.fromEntries(calls);
    const sum = (names: Set<string>) =>
      [...calls].filter(([name]) => names.has(name)).reduce((total, [, count]) => total + count, 0);
    return { writes: sum(WRITES), reads: sum(READS), snapshot };
  };

  try {
    const created = await send(fresh, "created");
    const before = sink.received();
    const terminal = await send(
      indexes.map((i) => factory.forStep(i, "completed", nowS())),
      "updated",
    );
    const notified = sink.received() - before;
    const duplicate = await send(
      indexes.map((i) => factory.forStep(i, "completed", nowS())),
      "unchanged",
    );
    const byOperation: Record<string, number> = {};
    for (const phase of [created, terminal, duplicate]) {
      for (const [name, count] of Object.entries(phase.snapshot)) {
        byOperation[name] = (byOperation[name] ?? 0) + count;
      }
    }
    return {
      writes_per_event_nonterminal: created.writes / n,
      writes_per_event_terminal: terminal.writes / n,
      reads_per_applied_event: (created.reads + terminal.reads) / (2 * n),
      writes_per_duplicate_terminal: duplicate.writes / n,
      reads_per_duplicate_terminal: duplicate.reads / n,
      events_per_kind: n,
      notifications_received: notified,
      by_operation: byOperation,
    };
  } finally {
    await stepwatch.drain();
    client.destroy();
  }
}
