import {
  type AttributeValue,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type QueryCommandInput,
} from "@aws-sdk/client-dynamodb";
import {
  isQuarantineId,
  type QuarantinedRequest,
  type Refusal,
  type Replay,
} from "../domain/quarantined-request.js";
import { batchGet } from "./batch-get.js";
import {
  alias,
  decodeCursor,
  encodeCursor,
  type Item,
  isIndexPosition,
  keyOf,
  namesFor,
  num,
} from "./item-codec.js";
import type { QuarantineStore } from "./quarantine-store.js";
import type { Page } from "./step-store.js";
import { guardStore, InvalidCursorError, isConditionalFailure, toStoreError } from "./store-errors.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const PARTITION = TABLE_SCHEMA.prefixes.quarantine;
const QUEUE = TABLE_SCHEMA.indexes.queue;
const recordKey = (id: string) => `${PARTITION}${id}`;
const bodyKey = (id: string) => `${PARTITION}${id}#body`;
const CREATE_IF = `attribute_not_exists(${alias(A.key)})`;
const REPLAY_IF = `${alias(A.version)} = :ver`;
const LIST_KEY = `${alias(A.queue)} = :q`;
// Pages of keys a count reads at most before it reports what it has (each page up to 1 MB of keys).
const COUNT_PAGES = 4;

/** Settings of the DynamoDB-backed quarantine. */
export interface DynamoQuarantineStoreOptions {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Clock in Unix ms; injectable for tests. */
  readonly nowMs?: () => number;
}

/**
 * The quarantine in the one table: a small record item listed through the `queue` index (partition
 * `Q#`, newest first) and the raw body in an item of its own. Both carry the TTL; DynamoDB deletes
 * expired items only eventually, so reads also treat them as gone.
 *
 * One index partition holds every record: only requests signed with a configured secret get here,
 * so their rate is a sender's bug, far below a partition's 1,000 writes a second; a throttled write
 * answers 503 and the sender retries, so nothing is lost either way.
 */
export class DynamoQuarantineStore implements QuarantineStore {
  readonly #client: DynamoDBClient;
  readonly #table: string;
  readonly #nowMs: () => number;

  constructor(options: DynamoQuarantineStoreOptions) {
    this.#client = options.client;
    this.#table = options.tableName;
    this.#nowMs = options.nowMs ?? Date.now;
  }

  async keep(record: QuarantinedRequest, body: Uint8Array): Promise<void> {
    const ttl: AttributeValue = { N: String(record.expiresAt) };
    // The body first: a record is never listed without the body a replay needs. Both writes are
    // conditional, so the first request kept under a webhook-id wins: a second one (same id, other
    // body) never replaces the body that the first record's signature and body_bytes describe.
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#table,
          Item: { [A.key]: { S: bodyKey(record.id) }, [A.body]: { B: body }, [A.ttl]: ttl },
          ConditionExpression: CREATE_IF,
          ExpressionAttributeNames: namesFor(CREATE_IF),
        }),
      );
    } catch (error) {
      if (!isConditionalFailure(error)) throw toStoreError(error, "keepQuarantinedBody");
      // Kept before. The same bytes are a retry (perhaps of a keep whose record write failed):
      // its record is written below if it is missing. Other bytes belong to the first request,
      // whose record (written or on its way) stands: nothing of this one is kept.
      const kept = await this.body(record.id);
      if (kept === null || !sameBytes(kept, body)) return;
    }
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#table,
          Item: encodeRecord(record),
          ConditionExpression: CREATE_IF,
          ExpressionAttributeNames: namesFor(CREATE_IF),
        }),
      );
    } catch (error) {
      // A retry of a message already kept: the first record stands.
      if (!isConditionalFailure(error)) throw toStoreError(error, "keepQuarantined");
    }
  }

  async get(id: string): Promise<QuarantinedRequest | null> {
    const item = await this.#read(recordKey(id), "getQuarantined");
    return item ? decodeRecord(item) : null;
  }

  async body(id: string): Promise<Uint8Array | null> {
    const item = await this.#read(bodyKey(id), "getQuarantinedBody");
    // Stryker disable next-line OptionalChaining: a body item always has its bytes attribute (keep writes it, empty for an empty body).
    return item?.[A.body]?.B ?? null;
  }

  async list(limit: number, cursor: string | null): Promise<Page<QuarantinedRequest>> {
    const result = await this.#queryPartition("listQuarantined", {
      ScanIndexForward: false,
      Limit: limit,
      ...(cursor === null ? {} : { ExclusiveStartKey: readCursor(cursor) }),
    });
    // Stryker disable next-line ArrayDeclaration: a query that does not select COUNT always answers Items.
    const keys = (result.Items ?? []).map((item) => text(item[A.key]));
    const found = await batchGet(this.#client, this.#table, keys, {
      operation: "listQuarantined",
      consistent: true,
    });
    const now = this.#nowMs();
    const items = keys.flatMap((key) => {
      const item = found.get(key);
      return item && !expired(item, now) ? [decodeRecord(item)] : [];
    });
    return { items, nextCursor: result.LastEvaluatedKey ? encodeCursor(result.LastEvaluatedKey) : null };
  }

  async markReplayed(record: QuarantinedRequest, replay: Replay): Promise<boolean> {
    const item = encodeRecord({ ...record, replay, version: record.version + 1 });
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#table,
          Item: item,
          ConditionExpression: REPLAY_IF,
          ExpressionAttributeNames: namesFor(REPLAY_IF),
          ExpressionAttributeValues: { ":ver": { N: String(record.version) } },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionalFailure(error)) return false;
      throw toStoreError(error, "markReplayed");
    }
  }

  async delete(id: string): Promise<boolean> {
    const result = await guardStore(
      "deleteQuarantined",
      this.#client.send(
        new DeleteItemCommand({ TableName: this.#table, Key: keyOf(recordKey(id)), ReturnValues: "ALL_OLD" }),
      ),
    );
    await guardStore(
      "deleteQuarantinedBody",
      this.#client.send(new DeleteItemCommand({ TableName: this.#table, Key: keyOf(bodyKey(id)) })),
    );
    return result.Attributes !== undefined && !expired(result.Attributes, this.#nowMs());
  }

  async count(max: number): Promise<number> {
    let counted = 0;
    let start: Item | undefined;
    for (let page = 0; page < COUNT_PAGES && counted < max; page++) {
      const result = await this.#queryPartition("countQuarantined", {
        Select: "COUNT",
        Limit: max - counted,
        ...(start ? { ExclusiveStartKey: start } : {}),
      });
      counted += result.Count ?? 0;
      start = result.LastEvaluatedKey;
      if (!start) break;
    }
    return Math.min(counted, max);
  }

  // The quarantine's one `queue` index partition, read with these options.
  #queryPartition(operation: string, options: Partial<QueryCommandInput>) {
    return guardStore(
      operation,
      this.#client.send(
        new QueryCommand({
          TableName: this.#table,
          IndexName: QUEUE.name,
          KeyConditionExpression: LIST_KEY,
          ExpressionAttributeNames: namesFor(LIST_KEY),
          ExpressionAttributeValues: { ":q": { S: PARTITION } },
          ...options,
        }),
      ),
    );
  }

  async #read(key: string, operation: string): Promise<Item | null> {
    const result = await guardStore(
      operation,
      this.#client.send(
        new GetItemCommand({ TableName: this.#table, Key: keyOf(key), ConsistentRead: true }),
      ),
    );
    return result.Item && !expired(result.Item, this.#nowMs()) ? result.Item : null;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

// Stryker disable next-line ConditionalExpression: keep and markReplayed write a TTL on every quarantine item.
const expired = (item: Item, nowMs: number) => item[A.ttl] !== undefined && num(item[A.ttl]) * 1000 <= nowMs;

// A string attribute of an item this store wrote, which writes every one (empty strings included).
// Stryker disable next-line OptionalChaining,StringLiteral: every attribute read so is there (see above); `?.` and `?? ""` are for the types.
const text = (value: AttributeValue | undefined): string => value?.S ?? "";

function encodeRecord(record: QuarantinedRequest): Item {
  const { refusal, replay } = record;
  const item: Item = {
    [A.key]: { S: recordKey(record.id) },
    [A.queue]: { S: PARTITION },
    [A.queueAt]: { N: String(record.receivedAtMs) },
    [A.createdAtMs]: { N: String(record.receivedAtMs) },
    [A.ttl]: { N: String(record.expiresAt) },
    [A.webhookId]: { S: record.webhookId },
    [A.webhookTimestamp]: { N: String(record.webhookTimestamp) },
    [A.headers]: { M: Object.fromEntries(Object.entries(record.headers).map(([k, v]) => [k, { S: v }])) },
    [A.bodyBytes]: { N: String(record.bodyBytes) },
    [A.refusalStatus]: { N: String(refusal.status) },
    [A.refusalCode]: { S: refusal.code },
    [A.refusalMessage]: { S: refusal.message },
    [A.refusalIssues]: { S: JSON.stringify(refusal.issues) },
    [A.version]: { N: String(record.version) },
  };
  if (replay) {
    item[A.replayedAt] = { N: String(replay.atMs) };
    item[A.replayOutcome] = { S: replay.outcome };
    if (replay.stepId !== null) item[A.replayedStep] = { S: replay.stepId };
  }
  return item;
}

function decodeRecord(item: Item): QuarantinedRequest {
  const headers = Object.fromEntries(
    // Stryker disable next-line OptionalChaining: encodeRecord always writes the headers map (empty when there are none).
    Object.entries(item[A.headers]?.M ?? {}).map(([k, v]) => [k, text(v)] as const),
  );
  const replayedAt = item[A.replayedAt];
  return {
    id: text(item[A.key]).slice(PARTITION.length),
    receivedAtMs: num(item[A.createdAtMs]),
    expiresAt: num(item[A.ttl]),
    webhookId: text(item[A.webhookId]),
    webhookTimestamp: num(item[A.webhookTimestamp]),
    headers,
    bodyBytes: num(item[A.bodyBytes]),
    refusal: {
      status: num(item[A.refusalStatus]) as Refusal["status"],
      code: item[A.refusalCode]?.S as Refusal["code"],
      message: text(item[A.refusalMessage]),
      issues: JSON.parse(item[A.refusalIssues]?.S ?? "[]") as Refusal["issues"],
    },
    replay: replayedAt
      ? {
          atMs: num(replayedAt),
          stepId: item[A.replayedStep]?.S ?? null,
          outcome: text(item[A.replayOutcome]),
        }
      : null,
    version: num(item[A.version]),
  };
}

// A cursor is the index position of the last record of a page: its key, partition and arrival.
function readCursor(cursor: string): Item {
  const position = decodeCursor(cursor);
  // Stryker disable next-line OptionalChaining: isIndexPosition has checked that each of these attributes is there.
  if (
    !isIndexPosition(position, [A.key, A.queue, A.queueAt]) ||
    position[A.queue]?.S !== PARTITION ||
    // A record's key (a body item is never in the index): `Q#` and a quarantine id.
    !isQuarantineId(position[A.key]?.S?.slice(PARTITION.length) ?? "")
  ) {
    throw new InvalidCursorError("cursor is not one this API returned");
  }
  return position;
}
