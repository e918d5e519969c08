// DynamoDB write units, by AWS's documented rules, of what stepwatch writes: a calculator (item
// and index entry sizes, units per write) and a meter that applies it to every PutItem/UpdateItem
// the real in-process stepwatch makes, reading the item before and after with a separate client.
//
// Rules (Amazon DynamoDB Developer Guide, "DynamoDB item sizes and formats" and "Global secondary
// indexes": provisioned throughput considerations):
// - item size = Σ over attributes of (UTF-8 bytes of the name + size of the value); S: UTF-8 bytes;
//   N: ~1 byte per 2 significant digits (leading and trailing zeros trimmed) + 1; B: raw bytes;
//   BOOL, NULL: 1; L, M: 3 + Σ (1 + element), a map's keys counting like names; sets: Σ elements.
// - a write costs ceil(max(size before, size after) / 1 KB) units, at least 1; a conditional write
//   that is refused still costs the existing item's size (at least 1).
// - each global secondary index: an item entering it costs one write of its entry (index keys +
//   table key + projected attributes), leaving it one, a change of an index key two (delete + put),
//   a change of projected non-key attributes only one, and no change to anything it holds nothing;
//   entries over 1 KB cost ceil(size / 1 KB) each.
import {
  type AttributeValue,
  DynamoDBClient,
  GetItemCommand,
  type PutItemCommandInput,
  type UpdateItemCommandInput,
} from "@aws-sdk/client-dynamodb";
import { parseConfig } from "../src/config/config-schema.js";
import { createLogger } from "../src/observability/logger.js";
import { createStepwatch } from "../src/runtime/create-stepwatch.js";
import { createNodeDynamoHandler } from "../src/runtime/node-dynamo-handler.js";
import { nodeHmacSha256 } from "../src/runtime/node-hmac.js";
import { createDynamoClient } from "../src/store/dynamo-client.js";
import { ensureTable } from "../src/store/ensure-table.js";
import { itemSize } from "../src/store/item-size.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { createEventFactory, postToApp, type SignedEvent } from "./events.js";
import { startScriptedSink } from "./scripted-sink.js";

/** A DynamoDB item. */
export type Item = Record<string, AttributeValue>;

/** The shape of an index definition in TABLE_SCHEMA. */
export interface IndexShape {
  readonly name: string;
  readonly partitionKey: string;
  readonly sortKey: string;
  readonly keyTypes: Readonly<Record<string, "S" | "N">>;
  readonly projection: readonly string[];
}

/** The table's indexes, with their projections, as TABLE_SCHEMA defines them. */
export const INDEXES: readonly IndexShape[] = Object.values(TABLE_SCHEMA.indexes);

const KB = 1024;

// The calculator of item sizes is the store's own (src/store/item-size.ts): one set of rules.
export { itemSize };

const unitsOf = (bytes: number) => Math.max(1, Math.ceil(bytes / KB));

/** Units of a table write that happened: the larger of the item before and after. */
export function tableWriteUnits(before: Item | undefined, after: Item | undefined): number {
  return unitsOf(Math.max(itemSize(before), itemSize(after)));
}

/** Units of a conditional write that was refused: the existing item's size (at least 1). */
export function refusedWriteUnits(existing: Item | undefined): number {
  return unitsOf(itemSize(existing));
}

/**
 * The entry an item has in an index (its index keys, the table key and the projected attributes it
 * has), or undefined when it is not in the index (a key attribute missing or of another type).
 */
export function indexEntry(item: Item | undefined, index: IndexShape): Item | undefined {
  if (!item) return undefined;
  for (const key of [index.partitionKey, index.sortKey]) {
    const value = item[key];
    const type = index.keyTypes[key];
    if (!value || !type || value[type as keyof AttributeValue] === undefined) return undefined;
  }
  const entry: Item = {};
  for (const name of [TABLE_SCHEMA.partitionKey, index.partitionKey, index.sortKey, ...index.projection]) {
    const value = item[name];
    if (value) entry[name] = value;
  }
  return entry;
}

/** What a write did to an index. */
export type IndexChange = "none" | "enter" | "leave" | "key change" | "projected change" | "unchanged";

/** Units one write costs an index, and what it did there. */
export function indexWriteUnits(
  before: Item | undefined,
  after: Item | undefined,
  index: IndexShape,
): { units: number; change: IndexChange } {
  const was = indexEntry(before, index);
  const is = indexEntry(after, index);
  if (!was && !is) return { units: 0, change: "none" };
  if (!was && is) return { units: unitsOf(itemSize(is)), change: "enter" };
  if (was && !is) return { units: unitsOf(itemSize(was)), change: "leave" };
  const keysSame = [index.partitionKey, index.sortKey].every(
    (key) => canonical(was?.[key]) === canonical(is?.[key]),
  );
  if (!keysSame) return { units: unitsOf(itemSize(was)) + unitsOf(itemSize(is)), change: "key change" };
  if (canonical(was) === canonical(is)) return { units: 0, change: "unchanged" };
  return { units: unitsOf(Math.max(itemSize(was), itemSize(is))), change: "projected change" };
}

// JSON with map keys and set elements sorted, so equal values compare equal.
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (Array.isArray(v) || v === null || typeof v !== "object") return v;
    if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
    const record = v as Record<string, unknown>;
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(record).sort()) {
      const inner = record[key];
      sorted[key] = (key === "SS" || key === "NS") && Array.isArray(inner) ? [...inner].sort() : inner;
    }
    return sorted;
  });
}

/** One metered write. */
export interface WriteRecord {
  /** What the write is, e.g. "step → completed" or "delivery create → delivered". */
  readonly label: string;
  readonly operation: "PutItem" | "UpdateItem";
  readonly refused: boolean;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  readonly tableUnits: number;
  readonly indexUnits: Readonly<Record<string, number>>;
  readonly indexChanges: Readonly<Record<string, IndexChange>>;
  readonly units: number;
}

const P = TABLE_SCHEMA.prefixes;
const A = TABLE_SCHEMA.attributes;

// Names a write by its key and what it sets, so the report says which write cost what.
function labelOf(
  operation: "PutItem" | "UpdateItem",
  input: PutItemCommandInput | UpdateItemCommandInput,
  key: string,
  after: Item | undefined,
  refused: boolean,
): string {
  const suffix = refused ? " (refused)" : "";
  const values = Object.keys(input.ExpressionAttributeValues ?? {});
  const update = "UpdateExpression" in input ? (input.UpdateExpression ?? "") : "";
  if (key.startsWith(P.step)) {
    if (update.startsWith("ADD")) return `step conflict count${suffix}`;
    const status = input.ExpressionAttributeValues?.[":st"]?.S ?? "?";
    return `step apply → ${status}${values.includes(":ob") ? " (+ owed sinks, outbox entry)" : ""}${suffix}`;
  }
  if (key.startsWith(P.delivery)) {
    const create = (input.ConditionExpression ?? "").includes("attribute_not_exists");
    const item = operation === "PutItem" ? (input as PutItemCommandInput).Item : after;
    return `delivery ${create ? "create" : "replace"} → ${item?.[A.deliveryState]?.S ?? "?"}${suffix}`;
  }
  if (key.startsWith(P.sink)) {
    if (values.includes(":failing")) return `sink health: turn failing${suffix}`;
    if (values.includes(":error")) return `sink health: failure${suffix}`;
    if (values.includes(":reason")) return `sink health: disable${suffix}`;
    if (values.includes(":at")) return `sink health: success${suffix}`;
    return `sink health: enable${suffix}`;
  }
  if (key.startsWith(`${P.meta}lease#`) || key.startsWith(`${P.meta}probe#`)) {
    const what = key.startsWith(`${P.meta}lease#`) ? "queue shard lease" : "probe lease";
    return `${what} ${values.includes(":until") ? "acquire" : "release"}${suffix}`;
  }
  if (key.startsWith(`${P.meta}outbox#`)) return `outbox watermark${suffix}`;
  if (key.startsWith(P.event)) {
    const create = (input.ConditionExpression ?? "").includes("attribute_not_exists");
    const item = operation === "PutItem" ? (input as PutItemCommandInput).Item : after;
    return `openai event ${create ? "record" : "replace"} → ${item?.[A.hydration]?.S ?? "?"}${suffix}`;
  }
  if (key.startsWith(P.response)) {
    const status = input.ExpressionAttributeValues?.[":st"]?.S ?? "?";
    const extras = [values.includes(":ob") ? "outbox entry" : "", values.includes(":snk") ? "owed sinks" : ""]
      .filter(Boolean)
      .join(", ");
    return `response apply → ${status}${extras ? ` (+ ${extras})` : ""}${suffix}`;
  }
  return `${operation} ${key.split("#")[0]}#…${suffix}`;
}

/**
 * Meters every PutItem/UpdateItem `client` sends: reads the item consistently before and after
 * through `reader` (a separate client, so the reads are not the product's) and records the units.
 * Must be attached before the client's first call (its middleware stack is cached).
 */
export function attachWriteUnitMeter(client: DynamoDBClient, reader: DynamoDBClient) {
  const records: WriteRecord[] = [];
  const read = async (table: string, key: Item): Promise<Item | undefined> =>
    (await reader.send(new GetItemCommand({ TableName: table, Key: key, ConsistentRead: true }))).Item;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName;
      if (name !== "PutItemCommand" && name !== "UpdateItemCommand") return next(args);
      const operation = name === "PutItemCommand" ? "PutItem" : "UpdateItem";
      const input = args.input as PutItemCommandInput | UpdateItemCommandInput;
      const pk = TABLE_SCHEMA.partitionKey;
      const keyValue =
        operation === "PutItem"
          ? (input as PutItemCommandInput).Item?.[pk]
          : (input as UpdateItemCommandInput).Key?.[pk];
      const table = input.TableName ?? "";
      const key: Item = { [pk]: keyValue ?? { S: "" } };
      const before = await read(table, key);
      try {
        const output = await next(args);
        const after = await read(table, key);
        const indexUnits: Record<string, number> = {};
        const indexChanges: Record<string, IndexChange> = {};
        for (const index of INDEXES) {
          const { units, change } = indexWriteUnits(before, after, index);
          indexUnits[index.name] = units;
          indexChanges[index.name] = change;
        }
        const tableUnits = tableWriteUnits(before, after);
        records.push({
          label: labelOf(operation, input, keyValue?.S ?? "", after, false),
          operation,
          refused: false,
          bytesBefore: itemSize(before),
          bytesAfter: itemSize(after),
          tableUnits,
          indexUnits,
          indexChanges,
          units: tableUnits + Object.values(indexUnits).reduce((a, b) => a + b, 0),
        });
        return output;
      } catch (error) {
        if ((error as Error).name === "ConditionalCheckFailedException") {
          const tableUnits = refusedWriteUnits(before);
          records.push({
            label: labelOf(operation, input, keyValue?.S ?? "", before, true),
            operation,
            refused: true,
            bytesBefore: itemSize(before),
            bytesAfter: itemSize(before),
            tableUnits,
            indexUnits: Object.fromEntries(INDEXES.map((i) => [i.name, 0])),
            indexChanges: Object.fromEntries(INDEXES.map((i) => [i.name, "none"])),
            units: tableUnits,
          });
        }
        throw error;
      }
    },
    { step: "initialize", name: "benchWriteUnitMeter" },
  );
  return { records };
}

/** One row of a per-write breakdown: a kind of write, its count and units (per step or per cycle). */
export interface WriteUnitRow {
  readonly write: string;
  readonly count: number;
  readonly item_bytes: number;
  readonly table_wru: number;
  readonly index_wru: Readonly<Record<string, number>>;
  readonly index_changes: string;
  readonly total_wru: number;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Groups records by write, divided by `per` (steps or cycles), in the order they first happened. */
export function breakdown(records: readonly WriteRecord[], per = 1): WriteUnitRow[] {
  const rows = new Map<string, { n: number; bytes: number; table: number; idx: Record<string, number> }>();
  const changes = new Map<string, Set<string>>();
  for (const r of records) {
    const row = rows.get(r.label) ?? { n: 0, bytes: 0, table: 0, idx: {} };
    row.n++;
    row.bytes = Math.max(row.bytes, r.bytesBefore, r.bytesAfter);
    row.table += r.tableUnits;
    for (const [name, units] of Object.entries(r.indexUnits)) row.idx[name] = (row.idx[name] ?? 0) + units;
    rows.set(r.label, row);
    const set = changes.get(r.label) ?? new Set<string>();
    for (const [name, change] of Object.entries(r.indexChanges)) {
      if (change !== "none") set.add(`${name}: ${change}`);
    }
    changes.set(r.label, set);
  }
  return [...rows].map(([write, row]) => {
    const index = Object.fromEntries(Object.entries(row.idx).map(([k, v]) => [k, round3(v / per)]));
    const indexTotal = Object.values(row.idx).reduce((a, b) => a + b, 0);
    return {
      write,
      count: round3(row.n / per),
      item_bytes: row.bytes,
      table_wru: round3(row.table / per),
      index_wru: index,
      index_changes: [...(changes.get(write) ?? [])].join("; ") || "–",
      total_wru: round3((row.table + indexTotal) / per),
    };
  });
}

const sumUnits = (records: readonly WriteRecord[]) => records.reduce((total, r) => total + r.units, 0);

/** What {@link measureWriteUnits} reports. */
export interface WriteUnitReport {
  /** Units per step: in_progress, then completed, delivered to one 2xx sink at the first attempt. */
  readonly wru_per_step_lifecycle: number;
  /** Units of one failed prompt attempt (503), its retry by a sweep, delivered. */
  readonly wru_per_retry_cycle: number;
  readonly lifecycle: {
    readonly steps_measured: number;
    readonly writes: WriteUnitRow[];
    /** The first step an instance notifies also writes the sink's last success (then at most every 10 s). */
    readonly first_step_of_instance_wru: number;
    readonly first_step_of_instance_writes: WriteUnitRow[];
  };
  readonly retry_cycle: { readonly writes: WriteUnitRow[]; readonly sweep: unknown };
  /** A finished step's completed and in_progress snapshots sent again: refused writes, no delivery. */
  readonly redeliveries: { readonly wru: number; readonly writes: WriteUnitRow[] };
  readonly indexes: readonly IndexShape[];
}

/**
 * Runs stepwatch in this process (app, stores, notifier, as the Node server wires them) on the
 * bench's dynalite with the write-unit meter on its client, against a loopback webhook sink:
 * - lifecycle: one warm-up step (the instance's first delivery also records the sink's success),
 *   then `steps` steps, each `in_progress` then `completed` (the 2 KB tool_calls step), each
 *   delivered at its prompt attempt; the figure is units per step over those;
 * - redeliveries: one finished step's completed and in_progress snapshots sent again (refused);
 * - retry cycle: a step whose prompt attempt is answered 503, then (clock moved past the first
 *   retry delay) one sweep delivers it; the figure is every write after the step's terminal apply.
 */
export async function measureWriteUnits(
  endpoint: string,
  secret: string,
  sinkSecret: string,
  steps = 5,
): Promise<WriteUnitReport> {
  const sink = await startScriptedSink();
  const aws = {
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "bench",
    AWS_SECRET_ACCESS_KEY: "bench",
    DYNAMODB_ENDPOINT: endpoint,
  };
  const config = parseConfig({
    ...aws,
    WEBHOOK_SECRET: secret,
    DYNAMODB_TABLE: "stepwatch_bench_wru",
    LOG_LEVEL: "warn",
    NOTIFY_SINKS: JSON.stringify([{ name: "hook", type: "webhook", url: sink.url, secret: sinkSecret }]),
  });
  const client = createDynamoClient(config, createNodeDynamoHandler());
  const reader = new DynamoDBClient({
    region: aws.AWS_REGION,
    endpoint,
    credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
  });
  const { records } = attachWriteUnitMeter(client, reader);
  const logger = createLogger("warn");
  let clockOffsetMs = 0;
  try {
    await ensureTable(client, config.DYNAMODB_TABLE, { retentionDays: 0, logger });
    const stepwatch = await createStepwatch(config, client, logger, {
      hmac: nodeHmacSha256,
      nowMs: () => Date.now() + clockOffsetMs,
    });
    const factory = createEventFactory(secret, `wru${Date.now().toString(36)}`);
    const nowS = () => Math.floor(Date.now() / 1000);
    const send = (event: SignedEvent, expected: string) =>
      postToApp(stepwatch.app, event, expected, "write units");
    const lifecycle = async (index: number) => {
      await send(factory.forStep(index, "in_progress", nowS()), "created");
      await send(factory.forStep(index, "completed", nowS()), "updated");
      await stepwatch.drain();
      if (!sink.deliveredAt.has(factory.stepId(index))) {
        throw new Error(`write units: step ${index} was not delivered at its prompt attempt`);
      }
    };

    // Lifecycle: a warm-up step, then the measured ones.
    await lifecycle(0);
    const firstStep = records.splice(0);
    for (let i = 1; i <= steps; i++) await lifecycle(i);
    const measured = records.splice(0);

    // Redeliveries of both snapshots of a finished step: each a refused conditional write.
    await send(factory.forStep(1, "completed", nowS()), "unchanged");
    await send(factory.forStep(1, "in_progress", nowS()), "stale");
    await stepwatch.drain();
    const redeliveries = records.splice(0);

    // Retry cycle: the prompt attempt answered 503, the retry (by a sweep) answered 204.
    const retryIndex = steps + 1;
    const retryStep = factory.stepId(retryIndex);
    sink.answer((stepId, nth) => (stepId === retryStep && nth === 1 ? 503 : 204));
    await send(factory.forStep(retryIndex, "in_progress", nowS()), "created");
    const mark = records.length;
    await send(factory.forStep(retryIndex, "completed", nowS()), "updated");
    await stepwatch.drain();
    if (sink.deliveredAt.has(retryStep)) throw new Error("write units: the 503 attempt counted as delivered");
    // Past the first retry delay (30 s ± 10%), well before the outbox recovery would look at it.
    clockOffsetMs = 40_000;
    const sweep = await stepwatch.sweep();
    await stepwatch.drain();
    if (!sink.deliveredAt.has(retryStep)) {
      throw new Error(`write units: the sweep did not deliver the retry: ${JSON.stringify(sweep)}`);
    }
    const cycle = records.slice(mark).filter((r) => !r.label.startsWith("step apply"));

    return {
      wru_per_step_lifecycle: round3(sumUnits(measured) / steps),
      wru_per_retry_cycle: sumUnits(cycle),
      lifecycle: {
        steps_measured: steps,
        writes: breakdown(measured, steps),
        first_step_of_instance_wru: sumUnits(firstStep),
        first_step_of_instance_writes: breakdown(firstStep),
      },
      retry_cycle: { writes: breakdown(cycle), sweep },
      redeliveries: { wru: sumUnits(redeliveries), writes: breakdown(redeliveries) },
      indexes: INDEXES,
    };
  } finally {
    client.destroy();
    reader.destroy();
    await sink.close();
  }
}
