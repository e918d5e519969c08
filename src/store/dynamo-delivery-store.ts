import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import type { Delivery } from "../domain/delivery.js";
import type { ClaimedStep, DeliveryRecord, DeliveryStore, DueStep, RetryResult } from "./delivery-store.js";
import {
  decodeCursor,
  decodeDeliveries,
  decodeDocument,
  dueShard,
  encodeCursor,
  encodeDeliveries,
  type Item,
  alias as n,
  namesFor,
  num,
  toDelivery,
} from "./item-codec.js";
import type { Page } from "./step-store.js";
import {
  guardStore,
  InvalidCursorError,
  isConditionalFailure,
  StoreUnavailableError,
  toStoreError,
} from "./store-errors.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const DUE = TABLE_SCHEMA.indexes.due;
const DEAD = TABLE_SCHEMA.indexes.dead;
const SHARDS = Array.from({ length: TABLE_SCHEMA.dueShards }, (_, i) => String(i));
const DEAD_PARTITION: AttributeValue = { S: "dead" };

const FIND_DUE = `${n(A.dueShard)} = :shard AND ${n(A.dueAt)} <= :now`;
const LIST_PENDING = `${n(A.dueShard)} = :shard`;
const LIST_DEAD = `${n(A.deadKey)} = :dead`;
const CLAIM = `SET ${n(A.dueAt)} = :lease, ${n(A.deliveryVersion)} = ${n(A.deliveryVersion)} + :one`;
const CLAIM_IF = `${n(A.dueAt)} = :seen`;
const HELD_IF = `${n(A.deliveryVersion)} = :version`;

/** Settings of the DynamoDB-backed delivery store. */
export interface DynamoDeliveryStoreOptions {
  readonly client: DynamoDBClient;
  readonly tableName: string;
}

/**
 * {@link DeliveryStore} on the step items. Claims and settlements are conditional writes on the
 * item's delivery version, so any number of sweepers and instances never send the same attempt twice.
 */
export class DynamoDeliveryStore implements DeliveryStore {
  readonly #client: DynamoDBClient;
  readonly #table: string;

  constructor(options: DynamoDeliveryStoreOptions) {
    this.#client = options.client;
    this.#table = options.tableName;
  }

  async findDue(nowMs: number, limit: number): Promise<DueStep[]> {
    const pages = await Promise.all(
      SHARDS.map((shard) =>
        guardStore(
          "findDue",
          this.#client.send(
            new QueryCommand({
              TableName: this.#table,
              IndexName: DUE.name,
              KeyConditionExpression: FIND_DUE,
              ExpressionAttributeNames: namesFor(FIND_DUE),
              ExpressionAttributeValues: { ":shard": { S: shard }, ":now": { N: String(nowMs) } },
              Limit: limit,
            }),
          ),
        ),
      ),
    );
    return pages
      .flatMap((page) => page.Items ?? [])
      .map((item) => ({ stepId: item[A.stepId]?.S ?? "", dueMs: num(item[A.dueAt]) }))
      .sort((a, b) => a.dueMs - b.dueMs)
      .slice(0, limit);
  }

  async claim(due: DueStep, leaseUntilMs: number): Promise<ClaimedStep | null> {
    try {
      const result = await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#table,
          Key: { [A.stepId]: { S: due.stepId } },
          UpdateExpression: CLAIM,
          ConditionExpression: CLAIM_IF,
          ExpressionAttributeNames: namesFor(CLAIM, CLAIM_IF),
          ExpressionAttributeValues: {
            ":lease": { N: String(leaseUntilMs) },
            ":one": { N: "1" },
            ":seen": { N: String(due.dueMs) },
          },
          ReturnValues: "ALL_NEW",
        }),
      );
      const item = result.Attributes ?? {};
      return {
        stepId: due.stepId,
        version: num(item[A.deliveryVersion]),
        document: decodeDocument(item),
        deliveries: decodeDeliveries(item),
      };
    } catch (error) {
      // Someone else claimed it (or settled it) since the index was read.
      if (isConditionalFailure(error)) return null;
      throw toStoreError(error, "claim");
    }
  }

  async settle(
    stepId: string,
    version: number,
    deliveries: readonly DeliveryRecord[],
    nowMs: number,
  ): Promise<boolean> {
    try {
      await this.#client.send(
        new UpdateItemCommand(settleInput(this.#table, stepId, version, deliveries, nowMs)),
      );
      return true;
    } catch (error) {
      if (isConditionalFailure(error)) return false;
      throw toStoreError(error, "settle");
    }
  }

  async listDeliveries(
    state: "pending" | "dead",
    limit: number,
    cursor: string | null,
  ): Promise<Page<Delivery>> {
    const start = cursor === null ? { shard: 0, key: undefined } : readDeliveryCursor(cursor, state);
    const deliveries: Delivery[] = [];
    let shard = start.shard;
    let key: Item | undefined = start.key;
    // Pending deliveries are spread over the due index's shards: page through them one after another.
    while (deliveries.length < limit) {
      const page = await guardStore(
        "listDeliveries",
        this.#client.send(
          new QueryCommand({
            TableName: this.#table,
            IndexName: state === "pending" ? DUE.name : DEAD.name,
            KeyConditionExpression: state === "pending" ? LIST_PENDING : LIST_DEAD,
            ExpressionAttributeNames: namesFor(state === "pending" ? LIST_PENDING : LIST_DEAD),
            ExpressionAttributeValues:
              state === "pending"
                ? { ":shard": { S: SHARDS[shard] as string } }
                : { ":dead": DEAD_PARTITION },
            Limit: limit - deliveries.length,
            ...(key ? { ExclusiveStartKey: key } : {}),
          }),
        ),
      );
      for (const item of page.Items ?? []) {
        for (const record of decodeDeliveries(item)) {
          if (record.state === state) deliveries.push(toDelivery(item, record));
        }
        key = indexKey(item, state);
      }
      if (!page.LastEvaluatedKey) {
        key = undefined;
        if (state === "dead" || ++shard >= SHARDS.length) {
          return { items: deliveries, nextCursor: null };
        }
      }
    }
    return { items: deliveries, nextCursor: encodeCursor({ state, shard, key }) };
  }

  async retry(stepId: string, sink: string, nowMs: number): Promise<RetryResult> {
    // An operator action, not the hot path: read, change one delivery, write back on the version read.
    for (let attempt = 0; attempt < 5; attempt++) {
      const { Item: item } = await guardStore(
        "retry",
        this.#client.send(
          new GetItemCommand({
            TableName: this.#table,
            Key: { [A.stepId]: { S: stepId } },
            ConsistentRead: true,
          }),
        ),
      );
      const records = item ? decodeDeliveries(item) : [];
      const record = records.find((r) => r.sink === sink);
      if (!item || !record) return { kind: "not_found" };
      if (record.state !== "dead") return { kind: "not_dead", delivery: toDelivery(item, record) };
      const revived: DeliveryRecord = {
        ...record,
        state: "pending",
        scheduleBase: record.attempts,
        nextAttemptMs: nowMs,
      };
      const next = records.map((r) => (r.sink === sink ? revived : r));
      if (await this.settle(stepId, num(item[A.deliveryVersion]), next, nowMs)) {
        return {
          kind: "retried",
          delivery: toDelivery({ ...item, [A.dueAt]: { N: String(nowMs) } }, revived),
        };
      }
    }
    throw new StoreUnavailableError("delivery kept changing while it was being retried; try again");
  }
}

/**
 * The write that records attempts: the whole delivery map, the due index entry (earliest pending
 * attempt) and the dead index entry, conditional on the version the writer holds.
 */
function settleInput(
  table: string,
  stepId: string,
  version: number,
  deliveries: readonly DeliveryRecord[],
  nowMs: number,
) {
  const pending = deliveries.filter((d) => d.state === "pending");
  const hasDead = deliveries.some((d) => d.state === "dead");
  const set = [`${n(A.deliveries)} = :dlv`, `${n(A.deliveryVersion)} = :next`];
  const remove: string[] = [];
  const values: Item = {
    ":dlv": encodeDeliveries(deliveries),
    ":next": { N: String(version + 1) },
    ":version": { N: String(version) },
  };
  if (pending.length > 0) {
    set.push(`${n(A.dueShard)} = :dsh`, `${n(A.dueAt)} = :due`);
    values[":dsh"] = { S: dueShard(stepId) };
    values[":due"] = { N: String(Math.min(...pending.map((d) => d.nextAttemptMs ?? nowMs))) };
  } else {
    remove.push(n(A.dueShard), n(A.dueAt));
  }
  if (hasDead) {
    set.push(`${n(A.deadKey)} = :dead`, `${n(A.deadAt)} = :now`);
    values[":dead"] = DEAD_PARTITION;
    values[":now"] = { N: String(nowMs) };
  } else {
    remove.push(n(A.deadKey), n(A.deadAt));
  }
  const update = `SET ${set.join(", ")}${remove.length > 0 ? ` REMOVE ${remove.join(", ")}` : ""}`;
  return {
    TableName: table,
    Key: { [A.stepId]: { S: stepId } },
    UpdateExpression: update,
    ConditionExpression: HELD_IF,
    ExpressionAttributeNames: namesFor(update, HELD_IF),
    ExpressionAttributeValues: values,
  };
}

function indexKey(item: Item, state: "pending" | "dead"): Item {
  const pick = state === "pending" ? [A.stepId, A.dueShard, A.dueAt] : [A.stepId, A.deadKey, A.deadAt];
  return Object.fromEntries(pick.map((name) => [name, item[name] as AttributeValue]));
}

function readDeliveryCursor(
  cursor: string,
  state: "pending" | "dead",
): { shard: number; key: Item | undefined } {
  const position = decodeCursor(cursor) as { state?: unknown; shard?: unknown; key?: unknown } | undefined;
  const valid =
    typeof position === "object" &&
    position !== null &&
    position.state === state &&
    Number.isInteger(position.shard) &&
    (position.shard as number) >= 0 &&
    (position.shard as number) < SHARDS.length &&
    (position.key === undefined ||
      (typeof position.key === "object" &&
        position.key !== null &&
        Object.values(position.key).every(
          (v) => typeof v === "object" && v !== null && (typeof v.S === "string" || typeof v.N === "string"),
        )));
  if (!valid) throw new InvalidCursorError("cursor is not one this API returned for this state");
  return { shard: position.shard as number, key: position.key as Item | undefined };
}
