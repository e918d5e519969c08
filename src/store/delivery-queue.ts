import type { Delivery } from "../domain/delivery.js";
import type { DueDelivery, SinkBacklog } from "./delivery-store.js";
import {
  deadPartition,
  decodeCursor,
  decodeDelivery,
  deliveryKey,
  deliveryRefOfKey,
  encodeCursor,
  type Item,
  isIndexPosition,
  alias as n,
  num,
  pendingPartition,
} from "./item-codec.js";
import type { Page } from "./step-store.js";
import { InvalidCursorError } from "./store-errors.js";
import type { Table, TableQuery } from "./table.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const QUEUE = TABLE_SCHEMA.indexes.queue;
const QUEUE_SHARDS = Array.from({ length: TABLE_SCHEMA.queueShards }, (_, i) => i);
const FIND_DUE = `${n(A.queue)} = :q AND ${n(A.queueAt)} <= :now`;
const IN_QUEUE = `${n(A.queue)} = :q`;
const IN_RANGE = `${n(A.queue)} = :q AND ${n(A.queueAt)} BETWEEN :from AND :to`;
// Counting a backlog reads the queue index page by page; past this many pages it stops counting.
const BACKLOG_PAGES = 20;

/**
 * The deliveries' queue index: each sink's pending and dead partitions, spread over its queue
 * shards. What is due, what a sink has pending or dead (listed and counted), and its dead
 * deliveries within a time range.
 */
export class DeliveryQueue {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  async findDue(
    sink: string,
    shard: number,
    nowMs: number,
    limit: number,
    after?: DueDelivery,
  ): Promise<DueDelivery[]> {
    const partition = pendingPartition(sink, shard);
    const result = await this.#table.query({
      operation: "findDue",
      index: QUEUE.name,
      condition: FIND_DUE,
      values: { ":q": { S: partition }, ":now": { N: String(nowMs) } },
      limit,
      start: after && {
        [A.queue]: { S: partition },
        [A.queueAt]: { N: String(after.dueMs) },
        [A.key]: { S: deliveryKey(after) },
      },
    });
    // The sink's partition holds the notifications of every kind of subject and the stall notices;
    // each index entry's key says which.
    // Stryker disable next-line ArrayDeclaration: a query that does not select COUNT always answers Items.
    return (result.Items ?? []).flatMap((item) => {
      // Stryker disable next-line OptionalChaining,StringLiteral: every index entry carries its item's key.
      const ref = deliveryRefOfKey(item[A.key]?.S ?? "");
      return ref ? [{ ...ref, dueMs: num(item[A.queueAt]) }] : [];
    });
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
      const page = await this.#table.query({
        operation: "listDeliveries",
        index: QUEUE.name,
        condition: IN_QUEUE,
        values: { ":q": { S: partition(sink, position.shard) } },
        limit: limit - found.length,
        start: position.key,
      });
      // Stryker disable next-line ArrayDeclaration,OptionalChaining,StringLiteral: a query that does not select COUNT always answers Items, each with its item's key.
      const keys = (page.Items ?? []).map((item) => item[A.key]?.S ?? "");
      const items = await this.#table.getMany("listDeliveries", keys, undefined, { consistent: false });
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
        const page = await this.#table.query({
          operation: "deadBetween",
          index: QUEUE.name,
          condition: IN_RANGE,
          values: {
            ":q": { S: deadPartition(sink, shard) },
            ":from": { N: String(sinceMs) },
            ":to": { N: String(untilMs) },
          },
          limit: limit - keys.length,
          start,
        });
        // Stryker disable next-line ArrayDeclaration,OptionalChaining,StringLiteral: a query that does not select COUNT always answers Items, each with its item's key.
        for (const item of page.Items ?? []) keys.push(item[A.key]?.S ?? "");
        start = page.LastEvaluatedKey;
      } while (start && keys.length < limit);
      if (keys.length >= limit) break;
    }
    const items = await this.#table.getMany("deadBetween", keys);
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
    options: Pick<TableQuery, "projection" | "select">,
    onPage: (page: { Items?: Item[] | undefined; Count?: number | undefined }) => void,
  ): Promise<void> {
    let start: Item | undefined;
    let pages = 0;
    do {
      const page = await this.#table.query({
        operation: "backlog",
        index: QUEUE.name,
        condition: IN_QUEUE,
        values: { ":q": { S: partition } },
        ...options,
        start,
      });
      onPage(page);
      start = page.LastEvaluatedKey;
    } while (start && ++pages < BACKLOG_PAGES);
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
