import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { type Delivery, type DeliveryRef, newDelivery } from "../domain/delivery.js";
import { RESPONSE_TERMINAL_STATUSES } from "../domain/openai/response-object.js";
import { TERMINAL_STATUSES } from "../domain/run-step-schema.js";
import { shuffled } from "../domain/shuffled.js";
import { SUBJECT_KINDS } from "../domain/subject-kinds.js";
import { batchGet } from "./batch-get.js";
import {
  type DeliveryStore,
  type DueDelivery,
  type RecoveryReport,
  type SinkBacklog,
  type SubjectDocument,
  type SubjectKey,
  subjectKeyOf,
} from "./delivery-store.js";
import {
  deadPartition,
  decodeCursor,
  decodeDelivery,
  decodeDocument,
  deliveryKey,
  deliveryRefOfKey,
  encodeCursor,
  encodeDelivery,
  fitsKey,
  type Item,
  isIndexPosition,
  keyOf,
  alias as n,
  namesFor,
  num,
  numOrNull,
  outboxPartition,
  outboxSortKey,
  pendingPartition,
  probeLeaseKey,
  shardLeaseKey,
  subjectItemKey,
  watermarkKey,
} from "./item-codec.js";
import { sessionOutboxWord } from "./openai-event-store.js";
import { responseOutboxWord } from "./response-store.js";
import type { Page } from "./step-store.js";
import { guardStore, InvalidCursorError, isConditionalFailure, toStoreError } from "./store-errors.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const QUEUE = TABLE_SCHEMA.indexes.queue;
const OUTBOX = TABLE_SCHEMA.indexes.outbox;
const QUEUE_SHARDS = Array.from({ length: TABLE_SCHEMA.queueShards }, (_, i) => i);
/**
 * One outbox partition: the word it is named by and a shard. A run step's partitions are named by
 * its bare terminal status (`O#failed#3`), a response's by its event name (`O#response.failed#1`),
 * so the two never share one, and each partition's entries are items of one kind.
 */
interface OutboxPartition {
  readonly word: string;
  readonly shard: number;
  readonly kind: "run_step" | "response" | "agent_session";
}
const OUTBOX_PARTITIONS: readonly OutboxPartition[] = [
  ...TERMINAL_STATUSES.flatMap((word) =>
    Array.from({ length: TABLE_SCHEMA.outboxShards }, (_, shard) => ({
      word,
      shard,
      kind: "run_step" as const,
    })),
  ),
  ...RESPONSE_TERMINAL_STATUSES.map(responseOutboxWord).flatMap((word) =>
    Array.from({ length: TABLE_SCHEMA.responseOutboxShards }, (_, shard) => ({
      word,
      shard,
      kind: "response" as const,
    })),
  ),
  ...SUBJECT_KINDS.agent_session.notifiable.map(sessionOutboxWord).flatMap((word) =>
    Array.from({ length: TABLE_SCHEMA.responseOutboxShards }, (_, shard) => ({
      word,
      shard,
      kind: "agent_session" as const,
    })),
  ),
];
// The item key prefix of each kind's outbox entries (a session's are its events'): a watermark's
// mark ends with the entry's id.
const ENTRY_PREFIX = {
  run_step: TABLE_SCHEMA.prefixes.step,
  response: TABLE_SCHEMA.prefixes.response,
  agent_session: TABLE_SCHEMA.prefixes.event,
};

const NEW_ONLY = `attribute_not_exists(${n(A.key)})`;
const AT_VERSION = `${n(A.version)} = :version`;
const FIND_DUE = `${n(A.queue)} = :q AND ${n(A.queueAt)} <= :now`;
const IN_QUEUE = `${n(A.queue)} = :q`;
const IN_RANGE = `${n(A.queue)} = :q AND ${n(A.queueAt)} BETWEEN :from AND :to`;
const OUTBOX_UP_TO = `${n(A.outboxShard)} = :ob AND ${n(A.appliedAtMs)} <= :upTo`;
const LEASE = `SET ${n(A.leaseUntil)} = :until, ${n(A.version)} = if_not_exists(${n(A.version)}, :zero) + :one`;
const LEASE_FREE = `attribute_not_exists(${n(A.leaseUntil)}) OR ${n(A.leaseUntil)} < :now`;
const RELEASE = `SET ${n(A.leaseUntil)} = :zero`;
const OUTBOX_PAGE = 100;
// Counting a backlog reads the queue index page by page; past this many pages it stops counting.
const BACKLOG_PAGES = 20;

/** Settings of the DynamoDB-backed delivery store. */
export interface DynamoDeliveryStoreOptions {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Days a delivery is kept after its last write; 0 keeps it forever. */
  readonly retentionDays: number;
  /** Clock in Unix ms. */
  readonly nowMs?: () => number;
  /** Random source of the order a recovery walks the outbox partitions in (Math.random when absent). */
  readonly random?: () => number;
}

/**
 * {@link DeliveryStore} on DynamoDB. Every delivery write is a whole-item put conditional on the
 * version its writer read, so concurrent writers (sweepers, the prompt path, operators) never
 * overwrite each other's outcome.
 */
export class DynamoDeliveryStore implements DeliveryStore {
  readonly #client: DynamoDBClient;
  readonly #table: string;
  readonly #retentionS: number;
  readonly #nowMs: () => number;
  readonly #random: (() => number) | undefined;

  constructor(options: DynamoDeliveryStoreOptions) {
    this.#client = options.client;
    this.#table = options.tableName;
    this.#retentionS = options.retentionDays * 86_400;
    this.#nowMs = options.nowMs ?? Date.now;
    this.#random = options.random;
  }

  readonly queueShards = TABLE_SCHEMA.queueShards;

  shardLease(sink: string, shard: number): string {
    return shardLeaseKey(sink, shard);
  }

  probeLease(sink: string): string {
    return probeLeaseKey(sink);
  }

  create(delivery: Delivery): Promise<boolean> {
    return this.#put(delivery, NEW_ONLY, {});
  }

  replace(next: Delivery): Promise<boolean> {
    return this.#put(next, AT_VERSION, { ":version": { N: String(next.version - 1) } });
  }

  async get(ref: DeliveryRef): Promise<Delivery | null> {
    const key = deliveryKey(ref);
    if (!fitsKey(key)) return null;
    const { Item: item } = await guardStore(
      "getDelivery",
      this.#client.send(
        new GetItemCommand({ TableName: this.#table, Key: keyOf(key), ConsistentRead: true }),
      ),
    );
    return item ? decodeDelivery(item) : null;
  }

  async getMany(refs: readonly DeliveryRef[]): Promise<Delivery[]> {
    const wanted = refs.map(deliveryKey).filter((key) => fitsKey(key));
    const found = await batchGet(this.#client, this.#table, wanted, {
      operation: "getDeliveries",
      consistent: true,
    });
    return wanted.flatMap((key) => {
      const item = found.get(key);
      return item ? [decodeDelivery(item)] : [];
    });
  }

  async subjects(refs: readonly SubjectKey[]): Promise<Map<string, SubjectDocument>> {
    const keys = [...new Set(refs.map(subjectItemKey))].filter((key) => fitsKey(key));
    const found = await batchGet(this.#client, this.#table, keys, {
      operation: "readDocuments",
      consistent: true,
      attributes: [A.document, A.stalledAt],
    });
    const documents = new Map<string, SubjectDocument>();
    for (const ref of refs) {
      const item = found.get(subjectItemKey(ref));
      if (item?.[A.document] === undefined) continue;
      documents.set(subjectKeyOf(ref), {
        document: decodeDocument(item),
        stalledAtMs: numOrNull(item[A.stalledAt]),
      });
    }
    return documents;
  }

  async findDue(
    sink: string,
    shard: number,
    nowMs: number,
    limit: number,
    after?: DueDelivery,
  ): Promise<DueDelivery[]> {
    const partition = pendingPartition(sink, shard);
    const result = await this.#query(
      "findDue",
      QUEUE.name,
      FIND_DUE,
      { ":q": { S: partition }, ":now": { N: String(nowMs) } },
      {
        limit,
        start: after && {
          [A.queue]: { S: partition },
          [A.queueAt]: { N: String(after.dueMs) },
          [A.key]: { S: deliveryKey(after) },
        },
      },
    );
    // The sink's partition holds the notifications of every kind of subject and the stall notices;
    // each index entry's key says which.
    // Stryker disable next-line ArrayDeclaration: a query that does not select COUNT always answers Items.
    return (result.Items ?? []).flatMap((item) => {
      // Stryker disable next-line OptionalChaining,StringLiteral: every index entry carries its item's key.
      const ref = deliveryRefOfKey(item[A.key]?.S ?? "");
      return ref ? [{ ...ref, dueMs: num(item[A.queueAt]) }] : [];
    });
  }

  async acquireLease(key: string, untilMs: number, nowMs: number): Promise<number | null> {
    try {
      const result = await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#table,
          Key: keyOf(key),
          UpdateExpression: LEASE,
          ConditionExpression: LEASE_FREE,
          ExpressionAttributeNames: namesFor(LEASE, LEASE_FREE),
          ExpressionAttributeValues: {
            ":until": { N: String(untilMs) },
            ":now": { N: String(nowMs) },
            ":zero": { N: "0" },
            ":one": { N: "1" },
          },
          ReturnValues: "UPDATED_NEW",
        }),
      );
      // Stryker disable next-line OptionalChaining: UPDATED_NEW always answers the version it has just set.
      return num(result.Attributes?.[A.version]);
    } catch (error) {
      if (isConditionalFailure(error)) return null;
      throw toStoreError(error, "acquireLease");
    }
  }

  async releaseLease(key: string, version: number): Promise<void> {
    try {
      await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#table,
          Key: keyOf(key),
          UpdateExpression: RELEASE,
          ConditionExpression: AT_VERSION,
          ExpressionAttributeNames: namesFor(RELEASE, AT_VERSION),
          ExpressionAttributeValues: { ":zero": { N: "0" }, ":version": { N: String(version) } },
        }),
      );
    } catch (error) {
      // Someone took it over after it ran out: theirs now, nothing to give back.
      if (!isConditionalFailure(error)) throw toStoreError(error, "releaseLease");
    }
  }

  async list(
    state: "pending" | "dead",
    sinks: readonly string[],
    limit: number,
    cursor: string | null,
  ): Promise<Page<Delivery>> {
    const partition = state === "pending" ? pendingPartition : deadPartition;
    let position =
      cursor === null ? { sink: 0, shard: 0, key: undefined } : readListCursor(cursor, state, sinks);
    const found: Delivery[] = [];
    // Each sink's deliveries are spread over its queue shards: page through them one after another.
    while (found.length < limit && position.sink < sinks.length) {
      const sink = sinks[position.sink] as string;
      const page = await this.#query(
        "listDeliveries",
        QUEUE.name,
        IN_QUEUE,
        { ":q": { S: partition(sink, position.shard) } },
        { limit: limit - found.length, start: position.key },
      );
      // Stryker disable next-line ArrayDeclaration,OptionalChaining,StringLiteral: a query that does not select COUNT always answers Items, each with its item's key.
      const keys = (page.Items ?? []).map((item) => item[A.key]?.S ?? "");
      const items = await batchGet(this.#client, this.#table, keys, { operation: "listDeliveries" });
      for (const key of keys) {
        const item = items.get(key);
        // The index lags the table a little: show only what is still in the state asked for.
        // Stryker disable next-line OptionalChaining: every delivery item is written with its state.
        if (item && item[A.deliveryState]?.S === state) found.push(decodeDelivery(item));
      }
      if (page.LastEvaluatedKey) {
        position = { ...position, key: page.LastEvaluatedKey };
      } else if (position.shard + 1 < QUEUE_SHARDS.length) {
        position = { sink: position.sink, shard: position.shard + 1, key: undefined };
      } else {
        position = { sink: position.sink + 1, shard: 0, key: undefined };
      }
    }
    const more = position.sink < sinks.length;
    return {
      items: found,
      nextCursor: more
        ? encodeCursor({ state, sink: sinks[position.sink], shard: position.shard, key: position.key })
        : null,
    };
  }

  async deadBetween(sink: string, sinceMs: number, untilMs: number, limit: number): Promise<Delivery[]> {
    const keys: string[] = [];
    for (const shard of QUEUE_SHARDS) {
      let start: Item | undefined;
      do {
        const page = await this.#query(
          "deadBetween",
          QUEUE.name,
          IN_RANGE,
          {
            ":q": { S: deadPartition(sink, shard) },
            ":from": { N: String(sinceMs) },
            ":to": { N: String(untilMs) },
          },
          { limit: limit - keys.length, start },
        );
        // Stryker disable next-line ArrayDeclaration,OptionalChaining,StringLiteral: a query that does not select COUNT always answers Items, each with its item's key.
        for (const item of page.Items ?? []) keys.push(item[A.key]?.S ?? "");
        start = page.LastEvaluatedKey;
      } while (start && keys.length < limit);
      if (keys.length >= limit) break;
    }
    const items = await batchGet(this.#client, this.#table, keys, {
      operation: "deadBetween",
      consistent: true,
    });
    return keys.flatMap((key) => {
      const item = items.get(key);
      // Stryker disable next-line OptionalChaining: every delivery item is written with its state.
      return item && item[A.deliveryState]?.S === "dead" ? [decodeDelivery(item)] : [];
    });
  }

  async backlog(sink: string): Promise<SinkBacklog> {
    let pending = 0;
    let dead = 0;
    let oldest: number | null = null;
    for (const shard of QUEUE_SHARDS) {
      await this.#pages(pendingPartition(sink, shard), { projection: n(A.createdAtMs) }, (page) => {
        // Stryker disable next-line ArrayDeclaration: a query that does not select COUNT always answers Items.
        for (const item of page.Items ?? []) {
          pending++;
          const created = num(item[A.createdAtMs]);
          // Stryker disable next-line EqualityOperator: on a tie the oldest is the same number either way.
          if (oldest === null || created < oldest) oldest = created;
        }
      });
      await this.#pages(deadPartition(sink, shard), { select: "COUNT" }, (page) => {
        dead += page.Count ?? 0;
      });
    }
    return { pending, dead, oldestPendingCreatedMs: oldest };
  }

  // Reads one queue partition page by page, at most BACKLOG_PAGES: counts stay cheap and bounded.
  async #pages(
    partition: string,
    options: { projection?: string; select?: "COUNT" },
    onPage: (page: { Items?: Item[] | undefined; Count?: number | undefined }) => void,
  ): Promise<void> {
    let start: Item | undefined;
    let pages = 0;
    do {
      const page = await this.#query(
        "backlog",
        QUEUE.name,
        IN_QUEUE,
        { ":q": { S: partition } },
        { ...options, start },
      );
      onPage(page);
      start = page.LastEvaluatedKey;
    } while (start && ++pages < BACKLOG_PAGES);
  }

  async recoverOutbox(upToMs: number, nowMs: number, deadlineMs: number): Promise<RecoveryReport> {
    let checked = 0;
    let recovered = 0;
    // Every entry applied at or before upToMs sorts before this bound (the step id follows "#").
    const upTo = `${outboxSortKey(upToMs, "")}\uffff`;
    // A random order spreads concurrent sweepers over the partitions instead of racing on the first.
    for (const partition of shuffled(OUTBOX_PARTITIONS, this.#random)) {
      for (;;) {
        if (this.#nowMs() >= deadlineMs) return { checked, recovered };
        const watermark = await this.#readWatermark(partition);
        // A sweeper whose clock runs ahead (within the skew allowed for) has already checked past
        // this sweep's bound: nothing there is this sweep's yet, and a query may not start beyond
        // its own key condition (DynamoDB refuses such an ExclusiveStartKey).
        // Stryker disable next-line EqualityOperator: a mark equal to the bound has nothing after it within the bound.
        if ((watermark.mark ?? "") > upTo) break;
        const page = await this.#query(
          "recoverOutbox",
          OUTBOX.name,
          OUTBOX_UP_TO,
          { ":ob": { S: outboxPartition(partition.word, partition.shard) }, ":upTo": { S: upTo } },
          { limit: OUTBOX_PAGE, start: watermark.start },
        );
        // Stryker disable next-line ArrayDeclaration: a query that does not select COUNT always answers Items.
        const entries = page.Items ?? [];
        const last = entries.at(-1);
        if (!last) break;
        checked += entries.length;
        recovered += await this.#recoverEntries(entries, nowMs, partition.kind);
        const advanced = await this.#writeWatermark(partition, last, watermark.version);
        // Another sweeper moved this partition's watermark meanwhile: it is working here, go elsewhere.
        if (!advanced || !page.LastEvaluatedKey) break;
      }
    }
    return { checked, recovered };
  }

  // One query of an index: every read of the queue and the outbox goes through here.
  #query(
    operation: string,
    index: string,
    condition: string,
    values: Record<string, AttributeValue>,
    options: {
      limit?: number;
      start?: Item | undefined;
      projection?: string;
      select?: "COUNT";
    },
  ) {
    return guardStore(
      operation,
      this.#client.send(
        new QueryCommand({
          TableName: this.#table,
          IndexName: index,
          KeyConditionExpression: condition,
          // Stryker disable next-line StringLiteral: any text without a `#` adds no name, as "" does.
          ExpressionAttributeNames: namesFor(condition, options.projection ?? ""),
          ExpressionAttributeValues: values,
          // Members left undefined are not sent.
          ProjectionExpression: options.projection,
          Select: options.select,
          Limit: options.limit,
          ExclusiveStartKey: options.start,
        }),
      ),
    );
  }

  async #recoverEntries(
    entries: readonly Item[],
    nowMs: number,
    kind: OutboxPartition["kind"],
  ): Promise<number> {
    const owed = entries.flatMap((entry) => {
      // A terminal step's or response's outbox entry has its key, status and run id (the index
      // projects them): `?.` and `?? ""` are for the types.
      // Stryker disable next-line OptionalChaining,StringLiteral: see above.
      const subjectId = (entry[A.key]?.S ?? "").slice(ENTRY_PREFIX[kind].length);
      // Stryker disable next-line OptionalChaining: see above.
      const event = `${SUBJECT_KINDS[kind].eventPrefix}.${entry[A.status]?.S}`;
      // Stryker disable next-line OptionalChaining,StringLiteral: see above.
      const runId = entry[A.runId]?.S ?? "";
      return (entry[A.owedSinks]?.SS ?? []).map((sink) => ({ subjectId, sink, event, runId }));
    });
    const keys = owed.map((o) => deliveryKey({ kind, subjectId: o.subjectId, sink: o.sink }));
    const existing = await batchGet(this.#client, this.#table, keys, {
      operation: "recoverOutbox",
      consistent: true,
      attributes: [],
    });
    let recovered = 0;
    for (const [i, o] of owed.entries()) {
      if (existing.has(keys[i] as string)) continue;
      const subject = { kind, id: o.subjectId, runId: o.runId };
      if (await this.create(newDelivery({ sink: o.sink, event: o.event }, subject, nowMs))) recovered++;
    }
    return recovered;
  }

  async #readWatermark(
    partition: OutboxPartition,
  ): Promise<{ mark: string | undefined; start: Item | undefined; version: number }> {
    const key = watermarkKey(partition.word, partition.shard);
    const { Item: item } = await guardStore(
      "readWatermark",
      this.#client.send(
        new GetItemCommand({ TableName: this.#table, Key: keyOf(key), ConsistentRead: true }),
      ),
    );
    // Stryker disable next-line OptionalChaining: a watermark item is always written with its mark.
    const mark = item === undefined ? undefined : item[A.watermark]?.S;
    // The sort key ends with the step id, which makes the entry's table key: a full start position.
    const start =
      mark === undefined
        ? undefined
        : {
            [A.outboxShard]: { S: outboxPartition(partition.word, partition.shard) },
            [A.appliedAtMs]: { S: mark },
            [A.key]: { S: `${ENTRY_PREFIX[partition.kind]}${mark.slice(mark.indexOf("#") + 1)}` },
          };
    return { mark, start, version: num(item?.[A.version]) };
  }

  async #writeWatermark(partition: OutboxPartition, last: Item, version: number): Promise<boolean> {
    const values: Record<string, AttributeValue> = {
      // Stryker disable next-line ObjectLiteral,StringLiteral: an outbox entry always has its sort key.
      ":mark": last[A.appliedAtMs] ?? { S: "" },
      ":next": { N: String(version + 1) },
    };
    const update = `SET ${n(A.watermark)} = :mark, ${n(A.version)} = :next`;
    const condition = version === 0 ? `attribute_not_exists(${n(A.version)})` : `${n(A.version)} = :version`;
    if (version !== 0) values[":version"] = { N: String(version) };
    try {
      await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#table,
          Key: keyOf(watermarkKey(partition.word, partition.shard)),
          UpdateExpression: update,
          ConditionExpression: condition,
          ExpressionAttributeNames: namesFor(update, condition),
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (error) {
      if (isConditionalFailure(error)) return false;
      throw toStoreError(error, "writeWatermark");
    }
  }

  async #put(
    delivery: Delivery,
    condition: string,
    values: Record<string, AttributeValue>,
  ): Promise<boolean> {
    const ttl = this.#retentionS > 0 ? Math.floor(this.#nowMs() / 1000) + this.#retentionS : null;
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#table,
          Item: encodeDelivery(delivery, ttl),
          ConditionExpression: condition,
          ExpressionAttributeNames: namesFor(condition),
          ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
        }),
      );
      return true;
    } catch (error) {
      if (isConditionalFailure(error)) return false;
      throw toStoreError(error, "writeDelivery");
    }
  }
}

const LIST_CURSOR_FIELDS = new Set(["state", "sink", "shard", "key"]);

function readListCursor(
  cursor: string,
  state: "pending" | "dead",
  sinks: readonly string[],
): { sink: number; shard: number; key: Item | undefined } {
  const position = decodeCursor(cursor) as
    | { state?: unknown; sink?: unknown; shard?: unknown; key?: unknown }
    | undefined;
  const sink = typeof position?.sink === "string" ? sinks.indexOf(position.sink) : -1;
  const shard = position?.shard;
  const key = position?.key;
  const fields = typeof position === "object" && position !== null ? Object.keys(position) : [];
  if (
    fields.some((field) => !LIST_CURSOR_FIELDS.has(field)) ||
    position?.state !== state ||
    sink < 0 ||
    !Number.isInteger(shard) ||
    (shard as number) < 0 ||
    (shard as number) >= QUEUE_SHARDS.length ||
    !(key === undefined || isQueuePosition(key, state, sinks[sink] as string, shard as number))
  ) {
    throw new InvalidCursorError("cursor is not one this API returned for this state");
  }
  return { sink, shard: shard as number, key: key as Item | undefined };
}

// A position in the partition the cursor goes on in: a delivery of that sink (of any kind, or a
// stall notice) in that state's queue partition of that shard. DynamoDB refuses a start key outside
// the queried partition.
function isQueuePosition(key: unknown, state: "pending" | "dead", sink: string, shard: number): boolean {
  if (!isIndexPosition(key, [A.key, A.queue, A.queueAt])) return false;
  const partition = state === "pending" ? pendingPartition(sink, shard) : deadPartition(sink, shard);
  // Stryker disable next-line OptionalChaining: isIndexPosition has checked that both attributes are there.
  const [item, queue] = [key[A.key]?.S ?? "", key[A.queue]?.S];
  // Any kind of subject's notification or stall notice to that sink, with a subject id.
  const ref = deliveryRefOfKey(item);
  return queue === partition && ref !== null && ref.sink === sink && ref.subjectId !== "";
}
