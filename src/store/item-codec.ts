import { deflateRawSync, inflateRawSync } from "node:zlib";
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import {
  ATTEMPT_LOG_SIZE,
  type Delivery,
  type DeliveryAttempt,
  type DeliveryRef,
  type DeliveryState,
  isStallEvent,
  markedSink,
  parseMarkedSink,
} from "../domain/delivery.js";
import type { RunStepStatus } from "../domain/run-step-schema.js";
import type { SinkHealth, SinkState } from "../domain/sink-health.js";
import { SUBJECT_KIND_NAMES, type SubjectKindName } from "../domain/subject.js";
import type { SubjectKey } from "./delivery-store.js";
import type { StoredStep } from "./step-store.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const P = TABLE_SCHEMA.prefixes;

/** A DynamoDB item. */
export type Item = Record<string, AttributeValue>;

/** The alias of an attribute in expressions. */
export const alias = (attribute: string) => `#${attribute}`;

const namesCache = new Map<string, Record<string, string>>();

/**
 * ExpressionAttributeNames for the given expressions. Every attribute is aliased (several short
 * names, ttl among them, are reserved words) and DynamoDB refuses aliases an expression does not
 * use, so each map is derived from the expressions' text once and cached: the hot path only looks it up.
 */
export function namesFor(...expressions: string[]): Record<string, string> {
  const key = expressions.join("\n");
  let names = namesCache.get(key);
  if (!names) {
    names = Object.fromEntries([...key.matchAll(/#(\w+)/g)].map((m) => [m[0], m[1] as string]));
    namesCache.set(key, names);
  }
  return names;
}

/** A number attribute's value, 0 when absent. */
export function num(value: AttributeValue | undefined): number {
  return value?.N === undefined ? 0 : Number(value.N);
}

/** A number attribute's value, null when absent. */
export const numOrNull = (value: AttributeValue | undefined): number | null =>
  value?.N === undefined ? null : Number(value.N);
const strOrNull = (value: AttributeValue | undefined): string | null => value?.S ?? null;
const nullable = (value: string | number | null): AttributeValue =>
  value === null ? { NULL: true } : typeof value === "number" ? { N: String(value) } : { S: value };

// --- keys -------------------------------------------------------------------------------------

/** Key value of a step's item. */
export const stepKey = (stepId: string) => `${P.step}${stepId}`;
/** The step id a step item's key names (the inverse of {@link stepKey}). */
export const stepIdOfKey = (key: string) => key.slice(P.step.length);
/**
 * Key value of one delivery's item: `D#<sink>#<step>` for a run step's notification,
 * `D#<sink>~stalled#<step>` for the watchdog's stall notice, and the subject kind's mark after the
 * sink for other kinds (`D#<sink>~response#<response>`). Sink names cannot contain `~` or `#`, so
 * no two of them can be mistaken, and every key written before there were other kinds reads as it did.
 */
export const deliveryKey = (ref: DeliveryRef) =>
  `${P.delivery}${markedSink(ref.kind, ref.sink, ref.stalled === true)}#${ref.subjectId}`;
/** The delivery a delivery item's key names (the inverse of {@link deliveryKey}); null for any other key. */
export function deliveryRefOfKey(key: string): Required<DeliveryRef> | null {
  if (!key.startsWith(P.delivery)) return null;
  const rest = key.slice(P.delivery.length);
  // Sink names and marks hold no `#`: the first one ends the sink part, the subject id is the rest.
  const at = rest.indexOf("#");
  const marked = at > 0 ? parseMarkedSink(rest.slice(0, at)) : null;
  return marked ? { ...marked, subjectId: rest.slice(at + 1) } : null;
}
/**
 * Key value of the item a subject's notifications are rendered from: a step, a response, or the
 * OpenAI event whose hydrated snapshot an agent session's notification carries.
 */
export const subjectItemKey = (ref: SubjectKey): string =>
  ref.kind === "run_step"
    ? stepKey(ref.subjectId)
    : `${ref.kind === "response" ? P.response : P.event}${ref.subjectId}`;
/** Key value of a sink's health item. */
export const sinkKey = (sink: string) => `${P.sink}${sink}`;
/** Key value of an outbox partition's watermark item. */
export const watermarkKey = (status: string, shard: number) => `${P.meta}outbox#${status}#${shard}`;
/** Key value of the lease item of one of a sink's queue partitions. */
export const shardLeaseKey = (sink: string, shard: number) => `${P.meta}lease#${sink}#${shard}`;
/** Key value of a watch partition's watermark (the stalled-step watchdog). */
export const watchWatermarkKey = (shard: number) => `${P.meta}watch#${shard}`;
/** `queue` index partition of watched in-progress steps. */
export const watchPartition = (shard: number) => `${P.watch}${shard}`;
/** Key value of the probe lease of a failing sink. */
export const probeLeaseKey = (sink: string) => `${P.meta}probe#${sink}`;
/** Queue partition of a sink's pending deliveries. */
export const pendingPartition = (sink: string, shard: number) => `${P.pending}${sink}#${shard}`;
/** Queue partition of a sink's dead deliveries. */
export const deadPartition = (sink: string, shard: number) => `${P.dead}${sink}#${shard}`;
/** Outbox partition of one terminal status. */
export const outboxPartition = (status: string, shard: number) => `${P.outbox}${status}#${shard}`;
/** Outbox sort key: apply time (13 digits, so string order is time order), then the step id. */
export const outboxSortKey = (appliedAtMs: number, stepId: string) =>
  `${String(Math.max(0, Math.floor(appliedAtMs))).padStart(13, "0")}#${stepId}`;

/** DynamoDB's largest partition key and sort key values, in UTF-8 bytes. */
export const KEY_LIMITS = { partition: 2048, sort: 1024 } as const;

/**
 * Whether a string can be a key value of the given kind. One that cannot was never stored: reads
 * answer "not found" and cursors holding one are refused, instead of DynamoDB refusing the request.
 */
export function fitsKey(value: string, kind: keyof typeof KEY_LIMITS = "partition"): boolean {
  const limit = KEY_LIMITS[kind];
  // A UTF-16 unit is 1 to 3 UTF-8 bytes: most values are decided without encoding them, and a
  // huge hostile one is never encoded. Both shortcuts answer as the encoding would.
  // Stryker disable next-line ConditionalExpression,EqualityOperator: a shortcut (the encoding answers the same), and 3 × length is never exactly 1024 or 2048
  if (value.length * 3 <= limit) return true;
  // Stryker disable next-line ConditionalExpression: a shortcut; without it the encoding answers the same
  if (value.length > limit) return false;
  return new TextEncoder().encode(value).length <= limit;
}

/**
 * Whether a value from a cursor can be a key value of the given kind: a non-empty, well-formed
 * string that fits DynamoDB's limit. DynamoDB refuses an empty key value (and real DynamoDB text
 * that is not valid UTF-8) with a ValidationException: a forged cursor carrying one is the
 * client's mistake, refused before it reaches the store.
 */
export function isKeyPart(value: unknown, kind: keyof typeof KEY_LIMITS = "partition"): value is string {
  return typeof value === "string" && value.length > 0 && value.isWellFormed() && fitsKey(value, kind);
}

// Every attribute an index position may hold, with the type its key schema gives it and the
// limit it falls under: the table's key and each index's keys.
const POSITION_ATTRIBUTES: Readonly<Record<string, { type: "S" | "N"; kind: keyof typeof KEY_LIMITS }>> =
  Object.fromEntries([
    [TABLE_SCHEMA.partitionKey, { type: "S", kind: "partition" }],
    ...Object.values(TABLE_SCHEMA.indexes).flatMap((index) => [
      [index.partitionKey, { type: index.keyTypes[index.partitionKey as never], kind: "partition" }],
      [index.sortKey, { type: index.keyTypes[index.sortKey as never], kind: "sort" }],
    ]),
  ]);

/**
 * Whether a cursor's position is one the index could hold: exactly the named attributes, each a
 * single value of the type its key schema gives it (strings non-empty and within limits, numbers
 * whole and finite). Which values a listing expects (its partition, its kind of item) is the
 * listing's own check on top of this.
 */
export function isIndexPosition(key: unknown, names: readonly string[]): key is Item {
  if (typeof key !== "object" || key === null || Array.isArray(key)) return false;
  const entries = Object.entries(key);
  return (
    entries.length === names.length &&
    entries.every(([name, value]) => {
      const attribute = POSITION_ATTRIBUTES[name];
      if (!names.includes(name) || !attribute || typeof value !== "object" || value === null) return false;
      // One type per value: DynamoDB refuses an attribute value with two.
      if (Object.keys(value).length !== 1) return false;
      const { S, N } = value as { S?: unknown; N?: unknown };
      if (attribute.type === "S") return isKeyPart(S, attribute.kind);
      return typeof N === "string" && /^\d{1,16}$/.test(N);
    })
  );
}

/** A key attribute map. */
export const keyOf = (value: string): Item => ({ [A.key]: { S: value } });

/** A stable, cheap hash of a step id into `[0, shards)`: spreads index partitions. */
export function shardOf(stepId: string, shards: number): number {
  let hash = 0;
  // Stryker disable next-line ArithmeticOperator: subtracting every unit negates the hash, and only its magnitude counts
  for (let i = 0; i < stepId.length; i++) hash = (Math.imul(hash, 31) + stepId.charCodeAt(i)) | 0;
  return Math.abs(hash) % shards;
}

/** Sort key of a step within its run: zero-padded so string order is numeric order. */
export function runSortKey(createdAt: number, stepId: string): string {
  return `${String(createdAt).padStart(11, "0")}#${stepId}`;
}

// --- steps ------------------------------------------------------------------------------------

// Documents of fewer UTF-8 bytes than this are kept as text: compressing them saves no write unit.
const COMPRESS_FROM_BYTES = 1024;
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/**
 * The stored form of a step's document: its JSON, deflated (raw deflate, binary) when that is
 * smaller, else as text. A 2 KB `tool_calls` step deflates to about 1 KB, so each write of the
 * step costs one write unit less, and reads and storage shrink alike. Both forms read back as
 * the same JSON, so items written before compression read as they always did. Sizes are UTF-8
 * bytes, as DynamoDB counts a string (not UTF-16 units: a CJK character is one unit, three bytes).
 */
export function encodeDocument(document: Record<string, unknown>): AttributeValue {
  const text = JSON.stringify(document);
  // Most in_progress steps are a few hundred characters: at 3 bytes a unit at most, they are short
  // of the line without being encoded (this runs on every apply).
  // Stryker disable next-line ConditionalExpression,EqualityOperator,ArithmeticOperator: a shortcut; the encoded length below answers the same
  if (text.length * 3 < COMPRESS_FROM_BYTES) return { S: text };
  const bytes = utf8Encoder.encode(text);
  if (bytes.length < COMPRESS_FROM_BYTES) return { S: text };
  // Stryker disable next-line ObjectLiteral: the level only trades CPU for size; every level inflates to the same JSON
  const deflated = deflateRawSync(bytes, { level: 1 }); // half the CPU of the default, within bytes of its size
  return deflated.byteLength < bytes.length ? { B: deflated } : { S: text };
}

/** The RunStepObject a step item keeps, as it was applied. */
export function decodeDocument(item: Item): Record<string, unknown> {
  const stored = item[A.document];
  const text = stored?.B ? utf8Decoder.decode(inflateRawSync(stored.B)) : (stored?.S ?? "{}");
  return JSON.parse(text) as Record<string, unknown>;
}

/** Reads a step item. */
export function toStoredStep(item: Item): StoredStep {
  return {
    stalledAtMs: numOrNull(item[A.stalledAt]),
    document: decodeDocument(item),
    status: item[A.status]?.S as RunStepStatus,
    receivedAt: num(item[A.receivedAt]),
    updatedAt: num(item[A.updatedAt]),
    conflicts: num(item[A.conflicts]),
    owedSinks: [...(item[A.owedSinks]?.SS ?? [])].sort(),
  };
}

// --- deliveries -------------------------------------------------------------------------------

/**
 * A delivery as its item: the whole record in one small item (every write of it is a full,
 * conditional put). The attempt log is a ring of {@link ATTEMPT_LOG_SIZE} slots keyed by attempt.
 */
export function encodeDelivery(d: Delivery, ttl: number | null): Item {
  const shard = shardOf(d.subjectId, TABLE_SCHEMA.queueShards);
  const log: Item = {};
  for (const a of d.log) {
    log[String((a.attempt - 1) % ATTEMPT_LOG_SIZE)] = {
      M: {
        a: { N: String(a.attempt) },
        t: { N: String(a.at) },
        s: nullable(a.status),
        l: { N: String(a.latencyMs) },
        e: nullable(a.error),
      },
    };
  }
  const item: Item = {
    [A.key]: { S: deliveryKey({ ...d, stalled: isStallEvent(d.event) }) },
    [A.stepId]: { S: d.subjectId },
    [A.runId]: { S: d.runId },
    [A.sink]: { S: d.sink },
    [A.event]: { S: d.event },
    [A.deliveryState]: { S: d.state },
    [A.attempts]: { N: String(d.attempts) },
    [A.scheduleBase]: { N: String(d.scheduleBase) },
    [A.lastError]: nullable(d.lastError),
    [A.createdAtMs]: { N: String(d.createdAtMs) },
    [A.attemptLog]: { M: log },
    [A.version]: { N: String(d.version) },
  };
  // Only pending and dead deliveries are in the queue index (sparse): delivered ones cost no index write.
  if (d.state === "pending") {
    item[A.queue] = { S: pendingPartition(d.sink, shard) };
    item[A.queueAt] = { N: String(d.nextAttemptMs ?? d.createdAtMs) };
  } else if (d.state === "dead") {
    const lastAt = d.log.at(-1)?.at ?? d.createdAtMs;
    item[A.queue] = { S: deadPartition(d.sink, shard) };
    item[A.queueAt] = { N: String(lastAt) };
  }
  // A run step's delivery carries no kind: the items written before there were kinds read the same.
  if (d.kind !== "run_step") item[A.subjectKind] = { S: d.kind };
  if (ttl !== null) item[A.ttl] = { N: String(ttl) };
  return item;
}

const kindOf = (value: string | undefined): SubjectKindName =>
  (SUBJECT_KIND_NAMES as readonly string[]).includes(value ?? "") ? (value as SubjectKindName) : "run_step";

/** Reads a delivery item. */
export function decodeDelivery(item: Item): Delivery {
  const state = item[A.deliveryState]?.S as DeliveryState;
  const log: DeliveryAttempt[] = Object.values(item[A.attemptLog]?.M ?? {})
    .map((value) => {
      const m = value.M ?? {};
      return {
        attempt: num(m.a),
        at: num(m.t),
        status: numOrNull(m.s),
        latencyMs: num(m.l),
        error: strOrNull(m.e),
      };
    })
    .sort((a, b) => a.attempt - b.attempt);
  return {
    kind: kindOf(item[A.subjectKind]?.S),
    subjectId: item[A.stepId]?.S ?? "",
    runId: item[A.runId]?.S ?? "",
    sink: item[A.sink]?.S ?? "",
    event: item[A.event]?.S ?? "",
    state,
    attempts: num(item[A.attempts]),
    scheduleBase: num(item[A.scheduleBase]),
    lastError: strOrNull(item[A.lastError]),
    nextAttemptMs: state === "pending" ? num(item[A.queueAt]) : null,
    createdAtMs: num(item[A.createdAtMs]),
    log,
    version: num(item[A.version]),
  };
}

// --- sinks ------------------------------------------------------------------------------------

/** Reads a sink's health item. */
export function decodeSinkHealth(name: string, item: Item): SinkHealth {
  const okAt = numOrNull(item[A.lastSuccessAt]);
  const failAt = numOrNull(item[A.lastFailureAt]);
  return {
    name,
    state: (item[A.health]?.S ?? "healthy") as SinkState,
    consecutiveFailures: num(item[A.failures]),
    lastSuccess: okAt === null ? null : { atMs: okAt, status: numOrNull(item[A.lastSuccessStatus]) },
    lastFailure:
      failAt === null
        ? null
        : {
            atMs: failAt,
            status: numOrNull(item[A.lastFailureStatus]),
            error: item[A.lastFailureError]?.S ?? "",
          },
    nextProbeAtMs: numOrNull(item[A.probeAt]),
    probeLevel: num(item[A.probeLevel]),
    disabledReason: strOrNull(item[A.disabledReason]),
    version: num(item[A.version]),
  };
}

// --- cursors ----------------------------------------------------------------------------------

/** Encodes an index position as an opaque, URL-safe cursor (UTF-8, so any step id fits). */
export function encodeCursor(position: unknown): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(JSON.stringify(position))) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes a cursor made by {@link encodeCursor}; undefined when it is not one. */
export function decodeCursor(cursor: string): unknown {
  try {
    const binary = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    return JSON.parse(utf8.decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
  } catch {
    // Not base64url of UTF-8 JSON: not a cursor of ours.
  }
  return undefined;
}
