import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type {
  HydrationState,
  OpenAiEventRecord,
  OpenAiSubjectKind,
} from "../domain/openai/openai-event-record.js";
import {
  decodeDocument,
  encodeDocument,
  fitsKey,
  type Item,
  alias as n,
  num,
  numOrNull,
  outboxPartition,
  outboxSortKey,
  shardOf,
} from "./item-codec.js";
import { Table } from "./table.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const P = TABLE_SCHEMA.prefixes;
const QUEUE = TABLE_SCHEMA.indexes.queue;

/** Key value of an OpenAI event's item. */
export const eventKey = (id: string) => `${P.event}${id}`;
/** `queue` partition of one shard of pending hydrations. */
export const hydrationPartition = (shard: number) => `${P.hydration}${shard}`;
/** Lease of one hydration shard (`~` is in no sink name, so it never meets a sink's lease). */
export const hydrationLeaseKey = (shard: number) => `${P.meta}lease#~hydrate#${shard}`;

const NEW_ONLY = `attribute_not_exists(${n(A.key)})`;
const AT_VERSION = `${n(A.version)} = :version`;
const FIND_DUE = `${n(A.queue)} = :q AND ${n(A.queueAt)} <= :now`;
const IN_QUEUE = `${n(A.queue)} = :q`;
const BACKLOG_PAGES = 10;

/** The outbox partition word of a session event's notification: never a run step's bare status. */
export const sessionOutboxWord = (word: string) => `agent.session.${word}`;

/** What a session's event owes, written with the snapshot that settles it. */
export interface OwedNotifications {
  readonly sinks: readonly string[];
  /** The notification's status word (`action_required`, `failed`, `idle`). */
  readonly word: string;
  /** Unix ms it was settled: its outbox position. */
  readonly atMs: number;
}

/** A hydration the queue index shows as due. */
export interface DueHydration {
  readonly id: string;
  readonly dueMs: number;
}

/**
 * Where OpenAI events are kept (SPEC §9): one small item per event id, written whole and
 * conditionally. The first write is the durable record the `200` promises; while its hydration is
 * pending the item sits in the sparse `queue` index (`H#<shard>`, due time), where sweepers find it.
 * An agent session's event also keeps the session as that hydration fetched it: what the event's
 * notifications carry (a session changes after the event; the event's snapshot does not).
 */
export class OpenAiEventStore {
  readonly #table: Table;
  readonly #retentionS: number;
  readonly hydrationShards = TABLE_SCHEMA.hydrationShards;

  constructor(options: { client: DynamoDBClient; tableName: string; retentionDays: number }) {
    this.#table = new Table(options.client, options.tableName);
    this.#retentionS = options.retentionDays * 86_400;
  }

  /** Records a new event; false when one with its id is already recorded (a redelivery). */
  record(event: OpenAiEventRecord): Promise<boolean> {
    return this.#table.put("recordEvent", this.#encode(event), NEW_ONLY);
  }

  /**
   * Replaces the stored event with `next` if it is still at `next.version - 1`; false when another
   * writer changed it since. `snapshot` (a session's) is kept with it.
   */
  replace(
    next: OpenAiEventRecord,
    snapshot?: Record<string, unknown>,
    owed?: OwedNotifications,
  ): Promise<boolean> {
    return this.#table.put("writeEvent", this.#encode(next, snapshot, owed), AT_VERSION, {
      ":version": { N: String(next.version - 1) },
    });
  }

  async get(id: string): Promise<OpenAiEventRecord | null> {
    if (!fitsKey(eventKey(id))) return null;
    const item = await this.#table.get("getEvent", eventKey(id), {
      projection: [A.key, ...DECODED].map(n).join(", "),
    });
    return item ? decodeEvent(item) : null;
  }

  /** Several events (consistently), in the order asked; missing ones left out. */
  async getMany(ids: readonly string[]): Promise<OpenAiEventRecord[]> {
    const keys = ids.map(eventKey).filter((key) => fitsKey(key));
    const found = await this.#table.getMany("getEvents", keys, DECODED);
    return keys.flatMap((key) => {
      const item = found.get(key);
      return item ? [decodeEvent(item)] : [];
    });
  }

  /** Pending hydrations of one shard due at `nowMs`, oldest due first. */
  async findDue(shard: number, nowMs: number, limit: number): Promise<DueHydration[]> {
    const result = await this.#table.query({
      operation: "findDueHydrations",
      index: QUEUE.name,
      condition: FIND_DUE,
      values: { ":q": { S: hydrationPartition(shard) }, ":now": { N: String(nowMs) } },
      limit,
    });
    // Stryker disable next-line ArrayDeclaration: a query that does not select COUNT always answers Items.
    return (result.Items ?? []).map((item) => ({
      // Stryker disable next-line OptionalChaining,StringLiteral: every index entry carries its item's key.
      id: (item[A.key]?.S ?? "").slice(P.event.length),
      dueMs: num(item[A.queueAt]),
    }));
  }

  /** How many hydrations are pending, and when the oldest was received (bounded reads). */
  async backlog(): Promise<{ pending: number; oldestReceivedMs: number | null }> {
    let pending = 0;
    let oldest: number | null = null;
    for (let shard = 0; shard < this.hydrationShards; shard++) {
      let start: Item | undefined;
      for (let page = 0; page < BACKLOG_PAGES; page++) {
        const result = await this.#table.query({
          operation: "hydrationBacklog",
          index: QUEUE.name,
          condition: IN_QUEUE,
          values: { ":q": { S: hydrationPartition(shard) } },
          projection: n(A.createdAtMs),
          start,
        });
        for (const item of result.Items ?? []) {
          pending++;
          const at = num(item[A.createdAtMs]);
          if (oldest === null || at < oldest) oldest = at;
        }
        start = result.LastEvaluatedKey;
        if (!start) break;
      }
    }
    return { pending, oldestReceivedMs: oldest };
  }

  /** The session snapshot an agent session's event keeps, or null. */
  async snapshot(id: string): Promise<Record<string, unknown> | null> {
    const item = await this.#table.get("getEventSnapshot", eventKey(id), { projection: n(A.document) });
    const doc = item?.[A.document];
    if (!doc) return null;
    return decodeDocument({ [A.document]: doc });
  }

  #encode(e: OpenAiEventRecord, snapshot?: Record<string, unknown>, owed?: OwedNotifications): Item {
    const item: Item = {
      [A.key]: { S: eventKey(e.id) },
      [A.eventType]: { S: e.type },
      [A.subjectKind]: { S: e.kind },
      [A.stepId]: { S: e.subjectId },
      [A.createdAt]: { N: String(e.createdAt) },
      [A.createdAtMs]: { N: String(e.receivedAtMs) },
      [A.hydration]: { S: e.hydration },
      [A.attempts]: { N: String(e.attempts) },
      [A.version]: { N: String(e.version) },
    };
    if (e.lastError !== null) item[A.lastError] = { S: e.lastError };
    if (e.hydratedAtMs !== null) item[A.hydratedAt] = { N: String(e.hydratedAtMs) };
    // Only a pending hydration is in the queue index (sparse): a hydrated event costs it nothing.
    if (e.hydration === "pending") {
      item[A.queue] = { S: hydrationPartition(shardOf(e.id, this.hydrationShards)) };
      item[A.queueAt] = { N: String(e.nextAttemptMs ?? e.receivedAtMs) };
    }
    if (snapshot) item[A.document] = encodeDocument(snapshot);
    if (owed) {
      // The outbox entry a session's event owes its sinks through, as a terminal step's: the
      // recovery writes the deliveries of an instance that died before recording them.
      item[A.owedSinks] = { SS: [...owed.sinks] };
      item[A.status] = { S: owed.word };
      item[A.runId] = { S: e.subjectId };
      item[A.outboxShard] = {
        S: outboxPartition(sessionOutboxWord(owed.word), shardOf(e.id, TABLE_SCHEMA.responseOutboxShards)),
      };
      item[A.appliedAtMs] = { S: outboxSortKey(owed.atMs, e.id) };
    }
    if (this.#retentionS > 0) {
      item[A.ttl] = { N: String(Math.floor(e.receivedAtMs / 1000) + this.#retentionS) };
    }
    return item;
  }
}

// Everything but the key (a batch read adds it) and the snapshot: reading an event never reads (or
// pays for) the session it keeps.
const DECODED = [
  A.eventType,
  A.subjectKind,
  A.stepId,
  A.createdAt,
  A.createdAtMs,
  A.hydration,
  A.attempts,
  A.version,
  A.lastError,
  A.hydratedAt,
  A.queueAt,
];

const KINDS: readonly OpenAiSubjectKind[] = ["response", "agent_session"];
const STATES: readonly HydrationState[] = ["pending", "hydrated", "not_found", "invalid"];

/** Reads an event item. */
export function decodeEvent(item: Item): OpenAiEventRecord {
  const value = (a: string) => item[a]?.S ?? "";
  const kind = KINDS.find((k) => k === value(A.subjectKind)) ?? "response";
  const hydration = STATES.find((s) => s === value(A.hydration)) ?? "pending";
  return {
    id: value(A.key).slice(P.event.length),
    type: value(A.eventType),
    kind,
    subjectId: value(A.stepId),
    createdAt: num(item[A.createdAt]),
    receivedAtMs: num(item[A.createdAtMs]),
    hydration,
    attempts: num(item[A.attempts]),
    nextAttemptMs: hydration === "pending" ? num(item[A.queueAt]) : null,
    lastError: item[A.lastError]?.S ?? null,
    hydratedAtMs: numOrNull(item[A.hydratedAt]),
    version: num(item[A.version]),
  };
}
