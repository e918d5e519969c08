import {
  type AttributeValue,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from "@aws-sdk/client-dynamodb";
import { isTerminalStatus, RUN_STEP_STATUSES, type RunStepStatus } from "../domain/run-step-schema.js";
import { outcomeOfRefusal } from "../domain/state-rules.js";
import { batchGet } from "./batch-get.js";
import {
  alias,
  decodeCursor,
  encodeCursor,
  encodeDocument,
  fitsKey,
  type Item,
  isKeyPart,
  keyOf,
  namesFor,
  num,
  numOrNull,
  outboxPartition,
  outboxSortKey,
  runSortKey,
  shardOf,
  stepIdOfKey,
  stepKey,
  toStoredStep,
  watchPartition,
  watchWatermarkKey,
} from "./item-codec.js";
import { MAX_ITEM_BYTES, utf8Length, valueSize } from "./item-size.js";
import { compareKeys } from "./key-order.js";
import type {
  AppliedSnapshot,
  Page,
  RunRollup,
  SnapshotToApply,
  StallStore,
  StepStore,
  StoredStep,
  TerminalStepQuery,
  WatchedStep,
} from "./step-store.js";
import {
  guardStore,
  InvalidCursorError,
  ItemTooLargeError,
  isConditionalFailure,
  toStoreError,
} from "./store-errors.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const BY_RUN = TABLE_SCHEMA.indexes.byRun;
const OUTBOX = TABLE_SCHEMA.indexes.outbox;
const OUTBOX_RANGE = `${alias(TABLE_SCHEMA.attributes.outboxShard)} = :ob AND ${alias(TABLE_SCHEMA.attributes.appliedAtMs)} BETWEEN :lo AND :hi`;
// Pages read from one partition of a filtered terminal listing before it gives what it has.
const TERMINAL_LIST_PAGES = 5;

/** Settings of the DynamoDB-backed store. */
export interface DynamoStepStoreOptions {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Days a step is kept after its last update; 0 keeps it forever. */
  readonly retentionDays: number;
  /** Clock in Unix ms; injectable for tests. */
  readonly nowMs?: () => number;
  /** STALL_AFTER_S: in-progress steps are watched for this long; 0 (the default) watches none. */
  readonly stallAfterS?: number;
}

const n = alias;

const SET_SNAPSHOT = [
  `${n(A.document)} = :doc`,
  `${n(A.status)} = :st`,
  `${n(A.sentAt)} = :sent`,
  `${n(A.runId)} = :run`,
  `${n(A.runSortKey)} = :rsk`,
  `${n(A.createdAt)} = :ca`,
  `${n(A.threadId)} = :thr`,
  `${n(A.assistantId)} = :asst`,
  `${n(A.updatedAt)} = :now`,
  `${n(A.receivedAt)} = if_not_exists(${n(A.receivedAt)}, :now)`,
].join(", ");
const SET_USAGE = `${n(A.promptTokens)} = :pt, ${n(A.completionTokens)} = :ct, ${n(A.totalTokens)} = :tt`;
const REMOVE_USAGE = `${n(A.promptTokens)}, ${n(A.completionTokens)}, ${n(A.totalTokens)}`;
const SET_TTL = `${n(A.ttl)} = :ttl`;
// The outbox entry: how a sweeper finds a transition whose deliveries nobody recorded, and how
// terminal steps are listed across runs. The sinks owed, when there are any (a set cannot be empty).
const SET_OUTBOX = `${n(A.outboxShard)} = :ob, ${n(A.appliedAtMs)} = :obt`;
const SET_OWED = `${n(A.owedSinks)} = :snk`;
const SET_WATCH = `${n(A.queue)} = if_not_exists(${n(A.queue)}, :wq), ${n(A.queueAt)} = if_not_exists(${n(A.queueAt)}, :wdue)`;
const WATCH_RANGE = `${n(A.queue)} = :q AND ${n(A.queueAt)} BETWEEN :lo AND :hi`;
const QUEUE = TABLE_SCHEMA.indexes.queue;

// SPEC §4 as conditions. Non-terminal status is exactly "in_progress".
const APPLY_TERMINAL_IF = `attribute_not_exists(${n(A.key)}) OR ${n(A.status)} = :in_progress`;
const APPLY_IN_PROGRESS_IF = `attribute_not_exists(${n(A.key)}) OR (${n(A.status)} = :in_progress AND ${n(A.sentAt)} < :sent)`;

const IN_PROGRESS: AttributeValue = { S: "in_progress" };
const BY_RUN_KEY = `${n(A.runId)} = :run`;
const ROLLUP_PROJECTION = [
  A.status,
  A.createdAt,
  A.updatedAt,
  A.threadId,
  A.assistantId,
  A.promptTokens,
  A.completionTokens,
  A.totalTokens,
]
  .map(n)
  .join(", ");

// Bytes a step item may hold beyond what one apply sets: the conflicts counter, written by another
// request, and the attribute names of the values below (each at most 4 bytes).
const STEP_ITEM_ALLOWANCE = 128;

/**
 * Refuses, before the request, an apply whose item DynamoDB would refuse. The document dominates;
 * its JSON is the canonical re-serialisation (`1e20` is stored as 21 digits), so a body under
 * MAX_BODY_BYTES can still be too large. Most documents are decided without encoding them.
 */
function assertFits(stepId: string, values: Record<string, AttributeValue>): void {
  const key = stepKey(stepId);
  let upperBound = STEP_ITEM_ALLOWANCE + key.length * 3;
  for (const value of Object.values(values)) {
    upperBound += value.S !== undefined ? value.S.length * 3 : valueSize(value);
  }
  if (upperBound <= MAX_ITEM_BYTES) return;
  let bytes = STEP_ITEM_ALLOWANCE + utf8Length(key);
  for (const value of Object.values(values)) bytes += valueSize(value);
  if (bytes > MAX_ITEM_BYTES) throw new ItemTooLargeError(bytes, MAX_ITEM_BYTES);
}

/** DynamoDB-backed {@link StepStore}: one conditional UpdateItem per event, no read before it. */
export class DynamoStepStore implements StepStore, StallStore {
  readonly #client: DynamoDBClient;
  readonly #table: string;
  readonly #retentionS: number;
  readonly #nowMs: () => number;
  readonly #stallAfterMs: number;

  constructor(options: DynamoStepStoreOptions) {
    this.#client = options.client;
    this.#table = options.tableName;
    this.#retentionS = options.retentionDays * 86_400;
    this.#nowMs = options.nowMs ?? Date.now;
    this.#stallAfterMs = (options.stallAfterS ?? 0) * 1000;
  }

  async apply(snapshot: SnapshotToApply): Promise<AppliedSnapshot> {
    const { step } = snapshot;
    const terminal = isTerminalStatus(step.status);
    const values: Record<string, AttributeValue> = {
      ":doc": encodeDocument(snapshot.document),
      ":st": { S: step.status },
      ":sent": { N: String(snapshot.sentAt) },
      ":run": { S: step.run_id },
      ":rsk": { S: runSortKey(step.created_at, step.id) },
      ":ca": { N: String(step.created_at) },
      ":thr": { S: step.thread_id },
      ":asst": { S: step.assistant_id },
      ":now": { N: String(snapshot.receivedAt) },
      ":in_progress": IN_PROGRESS,
    };
    const set = [SET_SNAPSHOT];
    let remove = "";
    if (step.usage) {
      set.push(SET_USAGE);
      values[":pt"] = { N: String(step.usage.prompt_tokens) };
      values[":ct"] = { N: String(step.usage.completion_tokens) };
      values[":tt"] = { N: String(step.usage.total_tokens) };
    } else {
      remove = ` REMOVE ${REMOVE_USAGE}`;
    }
    if (this.#retentionS > 0) {
      set.push(SET_TTL);
      values[":ttl"] = { N: String(snapshot.receivedAt + this.#retentionS) };
    }
    if (!terminal && this.#stallAfterMs > 0) {
      // Watched from its first in_progress apply, in this same write: later snapshots and the
      // terminal apply leave these as they are, so they cost the index nothing more.
      set.push(SET_WATCH);
      values[":wq"] = { S: watchPartition(shardOf(step.id, TABLE_SCHEMA.watchShards)) };
      values[":wdue"] = { N: String(this.#nowMs() + this.#stallAfterMs) };
    }
    if (terminal) {
      set.push(SET_OUTBOX);
      values[":ob"] = { S: outboxPartition(step.status, shardOf(step.id, TABLE_SCHEMA.outboxShards)) };
      values[":obt"] = { S: outboxSortKey(this.#nowMs(), step.id) };
      if (snapshot.intents.length > 0) {
        set.push(SET_OWED);
        values[":snk"] = { SS: snapshot.intents.map((intent) => intent.sink) };
      }
    }
    assertFits(step.id, values);
    const update = `SET ${set.join(", ")}${remove}`;
    const condition = terminal ? APPLY_TERMINAL_IF : APPLY_IN_PROGRESS_IF;
    const input: UpdateItemCommandInput = {
      TableName: this.#table,
      Key: keyOf(stepKey(step.id)),
      UpdateExpression: update,
      ConditionExpression: condition,
      ExpressionAttributeNames: namesFor(update, condition),
      ExpressionAttributeValues: values,
      // Old values come back only when the item existed: created vs updated without a read. A
      // terminal apply reads the whole old item: whether the watchdog had marked the step stalled.
      ReturnValues: terminal ? "ALL_OLD" : "UPDATED_OLD",
      ReturnValuesOnConditionCheckFailure: "ALL_OLD",
    };
    try {
      const result = await this.#client.send(new UpdateItemCommand(input));
      return {
        outcome: result.Attributes?.[A.status] ? "updated" : "created",
        stalledAtMs: numOrNull(result.Attributes?.[A.stalledAt]),
      };
    } catch (error) {
      if (!isConditionalFailure(error)) throw toStoreError(error, "apply");
      // An in_progress snapshot can only be refused as stale; a terminal one needs the stored status.
      if (!terminal) return { outcome: "stale", stalledAtMs: null };
      const stored = (error as { Item?: Record<string, AttributeValue> }).Item?.[A.status]?.S as
        | RunStepStatus
        | undefined;
      const storedStatus = stored ?? (await this.#readStatus(step.id));
      const outcome = outcomeOfRefusal(storedStatus, step.status);
      if (outcome === "conflict") await this.#countConflict(step.id);
      return { outcome, stalledAtMs: null };
    }
  }

  async dueForWatch(
    shard: number,
    watermark: number,
    upToMs: number,
    limit: number,
    after: WatchedStep | null,
  ): Promise<WatchedStep[]> {
    if (upToMs <= watermark) return [];
    const start = after && {
      [A.key]: { S: stepKey(after.stepId) },
      [A.queue]: { S: watchPartition(shard) },
      [A.queueAt]: { N: String(after.dueMs) },
    };
    const result = await guardStore(
      "dueForWatch",
      this.#client.send(
        new QueryCommand({
          TableName: this.#table,
          IndexName: QUEUE.name,
          KeyConditionExpression: WATCH_RANGE,
          ExpressionAttributeNames: namesFor(WATCH_RANGE),
          ExpressionAttributeValues: {
            ":q": { S: watchPartition(shard) },
            ":lo": { N: String(watermark + 1) },
            ":hi": { N: String(upToMs) },
          },
          Limit: limit,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      ),
    );
    // Stryker disable next-line ArrayDeclaration: a Query's result always holds Items (empty when nothing matched).
    return (result.Items ?? []).map((item) => ({
      // Stryker disable next-line StringLiteral,OptionalChaining: an index item always carries the table's key.
      stepId: stepIdOfKey(item[A.key]?.S ?? ""),
      dueMs: num(item[A.queueAt]),
    }));
  }

  async watermark(shard: number): Promise<number> {
    const { Item: item } = await guardStore(
      "readWatchWatermark",
      this.#client.send(
        new GetItemCommand({
          TableName: this.#table,
          Key: keyOf(watchWatermarkKey(shard)),
          ConsistentRead: true,
        }),
      ),
    );
    return num(item?.[A.watermark]);
  }

  async advanceWatermark(shard: number, from: number, to: number): Promise<boolean> {
    const update = `SET ${n(A.watermark)} = :to`;
    const condition = `attribute_not_exists(${n(A.watermark)}) OR ${n(A.watermark)} = :from`;
    try {
      await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#table,
          Key: keyOf(watchWatermarkKey(shard)),
          UpdateExpression: update,
          ConditionExpression: condition,
          ExpressionAttributeNames: namesFor(update, condition),
          ExpressionAttributeValues: { ":to": { N: String(to) }, ":from": { N: String(from) } },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionalFailure(error)) return false;
      throw toStoreError(error, "advanceWatchWatermark");
    }
  }

  async markStalled(stepId: string, atMs: number): Promise<boolean> {
    if (!fitsKey(stepKey(stepId))) return false;
    const update = `SET ${n(A.stalledAt)} = :at`;
    const condition = `${n(A.status)} = :in_progress AND attribute_not_exists(${n(A.stalledAt)})`;
    try {
      await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#table,
          Key: keyOf(stepKey(stepId)),
          UpdateExpression: update,
          ConditionExpression: condition,
          ExpressionAttributeNames: namesFor(update, condition),
          ExpressionAttributeValues: { ":at": { N: String(atMs) }, ":in_progress": IN_PROGRESS },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionalFailure(error)) return false;
      throw toStoreError(error, "markStalled");
    }
  }

  async getStep(stepId: string): Promise<StoredStep | null> {
    if (!fitsKey(stepKey(stepId))) return null;
    const result = await guardStore(
      "getStep",
      this.#client.send(
        new GetItemCommand({ TableName: this.#table, Key: keyOf(stepKey(stepId)), ConsistentRead: true }),
      ),
    );
    return result.Item ? toStoredStep(result.Item) : null;
  }

  async getSteps(stepIds: readonly string[]): Promise<Map<string, StoredStep>> {
    const keys = stepIds.map(stepKey).filter((key) => fitsKey(key));
    const found = await batchGet(this.#client, this.#table, keys, {
      operation: "getSteps",
      consistent: true,
    });
    const steps = new Map<string, StoredStep>();
    for (const [key, item] of found) steps.set(stepIdOfKey(key), toStoredStep(item));
    return steps;
  }

  async listRunSteps(runId: string, limit: number, cursor: string | null): Promise<Page<StoredStep>> {
    const result = await guardStore(
      "listRunSteps",
      this.#client.send(
        new QueryCommand({
          TableName: this.#table,
          IndexName: BY_RUN.name,
          KeyConditionExpression: BY_RUN_KEY,
          ExpressionAttributeNames: namesFor(BY_RUN_KEY),
          ExpressionAttributeValues: { ":run": { S: runId } },
          Limit: limit,
          ...(cursor ? { ExclusiveStartKey: decodeRunCursor(cursor, runId) } : {}),
        }),
      ),
    );
    // The index holds what the rollup sums; the documents are read from the table, in index order.
    // Stryker disable next-line ArrayDeclaration,StringLiteral,OptionalChaining: a Query's result always holds Items (empty when nothing matched), each with the table's key.
    const keys = (result.Items ?? []).map((item) => item[A.key]?.S ?? "");
    const found = await batchGet(this.#client, this.#table, keys, { operation: "listRunSteps" });
    const items = keys.flatMap((key) => {
      const item = found.get(key);
      return item ? [toStoredStep(item)] : [];
    });
    return { items, nextCursor: result.LastEvaluatedKey ? encodeRunCursor(result.LastEvaluatedKey) : null };
  }

  async getRunRollup(runId: string): Promise<RunRollup | null> {
    const steps = Object.fromEntries([["total", 0], ...RUN_STEP_STATUSES.map((s) => [s, 0])]) as Record<
      "total" | RunStepStatus,
      number
    >;
    const usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
    // Stryker disable next-line StringLiteral: the first item sets it (every created_at is below +Infinity), and a run without items has no rollup.
    let threadId = "";
    // Stryker disable next-line StringLiteral: as threadId.
    let assistantId = "";
    let firstCreatedAt = Number.POSITIVE_INFINITY;
    let lastUpdatedAt = 0;
    let startKey: Record<string, AttributeValue> | undefined;
    // Counting items, not events, is what makes every step count once however often it arrived.
    do {
      const page = await guardStore(
        "getRunRollup",
        this.#client.send(
          new QueryCommand({
            TableName: this.#table,
            IndexName: BY_RUN.name,
            KeyConditionExpression: BY_RUN_KEY,
            ProjectionExpression: ROLLUP_PROJECTION,
            ExpressionAttributeNames: namesFor(BY_RUN_KEY, ROLLUP_PROJECTION),
            ExpressionAttributeValues: { ":run": { S: runId } },
            ...(startKey ? { ExclusiveStartKey: startKey } : {}),
          }),
        ),
      );
      // Stryker disable next-line ArrayDeclaration: a Query's result always holds Items (empty when nothing matched).
      for (const item of page.Items ?? []) {
        const status = item[A.status]?.S as RunStepStatus;
        steps.total++;
        steps[status]++;
        usage.prompt_tokens += num(item[A.promptTokens]);
        usage.completion_tokens += num(item[A.completionTokens]);
        usage.total_tokens += num(item[A.totalTokens]);
        const createdAt = num(item[A.createdAt]);
        if (createdAt < firstCreatedAt) {
          firstCreatedAt = createdAt;
          // Stryker disable next-line OptionalChaining: every apply sets thread and assistant, and by-run projects both.
          threadId = item[A.threadId]?.S ?? threadId;
          // Stryker disable next-line OptionalChaining: as threadId.
          assistantId = item[A.assistantId]?.S ?? assistantId;
        }
        lastUpdatedAt = Math.max(lastUpdatedAt, num(item[A.updatedAt]));
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    if (steps.total === 0) return null;
    return { runId, threadId, assistantId, steps, usage, firstCreatedAt, lastUpdatedAt };
  }

  async listTerminal(query: TerminalStepQuery): Promise<Page<StoredStep>> {
    const scope = terminalScope(query);
    const before = query.cursor === null ? null : decodeTerminalCursor(query.cursor, scope);
    const lowest = outboxSortKey(query.sinceMs, "");
    // Above every entry applied at untilMs, whatever its step id: "$" follows the "#" after the time.
    const highest = before ?? `${outboxSortKey(query.untilMs, "").slice(0, -1)}$`;
    const partitions = query.statuses.flatMap((status) =>
      Array.from({ length: TABLE_SCHEMA.outboxShards }, (_, shard) => outboxPartition(status, shard)),
    );
    // Each partition's newest `limit` below the position hold the page: merge them, newest first.
    const found = await Promise.all(
      partitions.map((partition) => this.#newestIn(partition, lowest, highest, before, query)),
    );
    // A partition that stopped reading before `limit` matches (a sparse assistant filter) has
    // unread entries below where it stopped: this page goes no lower, or they would be skipped.
    // Positions compare in DynamoDB's order (compareKeys), or a page could end where the next
    // query would not go on from.
    let frontier: string | undefined;
    for (const f of found) {
      if (f.stoppedAt !== undefined && (frontier === undefined || compareKeys(f.stoppedAt, frontier) > 0))
        frontier = f.stoppedAt;
    }
    const candidates = found
      .flatMap((f) => f.entries)
      .filter((entry) => frontier === undefined || compareKeys(entry.sortKey, frontier) >= 0)
      .sort((a, b) => compareKeys(b.sortKey, a.sortKey));
    const page = candidates.slice(0, query.limit);
    const more = candidates.length > query.limit || found.some((f) => f.more);
    const items = await batchGet(
      this.#client,
      this.#table,
      page.map((entry) => entry.key),
      { operation: "listTerminal" },
    );
    const last = page.at(-1);
    return {
      items: page.flatMap((entry) => {
        const item = items.get(entry.key);
        return item ? [toStoredStep(item)] : [];
      }),
      nextCursor: more
        ? encodeCursor({
            ...scope,
            before:
              page.length < query.limit && frontier !== undefined ? frontier : (last?.sortKey ?? highest),
          })
        : null,
    };
  }

  // The newest entries of one outbox partition within [lowest, highest] (highest itself excluded
  // when it is a cursor's position), at most `limit` after the assistant filter, a few pages at most.
  async #newestIn(
    partition: string,
    lowest: string,
    highest: string,
    before: string | null,
    query: TerminalStepQuery,
  ): Promise<{ entries: { sortKey: string; key: string }[]; more: boolean; stoppedAt: string | undefined }> {
    const entries: { sortKey: string; key: string }[] = [];
    const filter = query.assistantId === undefined ? undefined : `${n(A.assistantId)} = :asst`;
    let start: Item | undefined;
    for (let pages = 0; pages < TERMINAL_LIST_PAGES; pages++) {
      const result = await guardStore(
        "listTerminal",
        this.#client.send(
          new QueryCommand({
            TableName: this.#table,
            IndexName: OUTBOX.name,
            KeyConditionExpression: OUTBOX_RANGE,
            ...(filter ? { FilterExpression: filter } : {}),
            // Stryker disable next-line StringLiteral: names come from the #aliases, and the fallback has none either way.
            ExpressionAttributeNames: namesFor(OUTBOX_RANGE, filter ?? ""),
            ExpressionAttributeValues: {
              ":ob": { S: partition },
              ":lo": { S: lowest },
              ":hi": { S: highest },
              ...(query.assistantId === undefined ? {} : { ":asst": { S: query.assistantId } }),
            },
            ScanIndexForward: false,
            Limit: query.limit + 1,
            ...(start ? { ExclusiveStartKey: start } : {}),
          }),
        ),
      );
      // Stryker disable next-line ArrayDeclaration: a Query's result always holds Items (empty when nothing matched).
      for (const item of result.Items ?? []) {
        // Stryker disable next-line StringLiteral,OptionalChaining: an outbox index item always carries its sort key.
        const sortKey = item[A.appliedAtMs]?.S ?? "";
        // Stryker disable next-line StringLiteral,OptionalChaining: an index item always carries the table's key.
        if (sortKey !== before) entries.push({ sortKey, key: item[A.key]?.S ?? "" });
      }
      start = result.LastEvaluatedKey;
      if (!start || entries.length >= query.limit) break;
    }
    // Stopped on the page cap with fewer than `limit`: nothing below this was read.
    // Stryker disable next-line OptionalChaining: a LastEvaluatedKey of an index query holds the index's keys.
    const stoppedAt = start && entries.length < query.limit ? start[A.appliedAtMs]?.S : undefined;
    return {
      // Stryker disable next-line MethodExpression: a partition's entries past its newest `limit` are never among the page's newest `limit`, and it has more either way.
      entries: entries.slice(0, query.limit),
      more: entries.length > query.limit || start !== undefined,
      stoppedAt,
    };
  }

  async ping(): Promise<void> {
    await guardStore("ping", this.#client.send(new DescribeTableCommand({ TableName: this.#table })));
  }

  async #readStatus(stepId: string): Promise<RunStepStatus> {
    const result = await guardStore(
      "readStatus",
      this.#client.send(
        new GetItemCommand({
          TableName: this.#table,
          Key: keyOf(stepKey(stepId)),
          ProjectionExpression: n(A.status),
          ExpressionAttributeNames: { [n(A.status)]: A.status },
          ConsistentRead: true,
        }),
      ),
    );
    return result.Item?.[A.status]?.S as RunStepStatus;
  }

  // Conflicts are rare and worth an operator's eye: counted on the step, never changing its state.
  async #countConflict(stepId: string): Promise<void> {
    await guardStore(
      "countConflict",
      this.#client.send(
        new UpdateItemCommand({
          TableName: this.#table,
          Key: keyOf(stepKey(stepId)),
          UpdateExpression: `ADD ${n(A.conflicts)} :one`,
          ConditionExpression: `attribute_exists(${n(A.key)})`,
          ExpressionAttributeNames: { [n(A.conflicts)]: A.conflicts, [n(A.key)]: A.key },
          ExpressionAttributeValues: { ":one": { N: "1" } },
        }),
      ),
    );
  }
}

// What a terminal listing's cursor is tied to: the same filters must come with it.
function terminalScope(query: TerminalStepQuery) {
  return {
    // Stryker disable next-line StringLiteral: terminal status names run together only one way, so no two lists of them join alike.
    statuses: query.statuses.join(","),
    since: query.sinceMs,
    until: query.untilMs,
    assistant: query.assistantId ?? null,
  };
}

const TERMINAL_CURSOR_FIELDS = ["statuses", "since", "until", "assistant", "before"];

function decodeTerminalCursor(cursor: string, scope: ReturnType<typeof terminalScope>): string {
  const position = decodeCursor(cursor) as Record<string, unknown> | undefined;
  const before = position?.before;
  // An outbox sort key (`<13 digits>#<step id>`) within the listing's time range: one below
  // `since` or above `until` would turn the index's BETWEEN upside down, which DynamoDB refuses.
  if (
    typeof position !== "object" ||
    position === null ||
    Array.isArray(position) ||
    Object.keys(position).length !== TERMINAL_CURSOR_FIELDS.length ||
    !isKeyPart(before, "sort") ||
    !/^\d{13}#./s.test(before) ||
    Number(before.slice(0, 13)) < scope.since ||
    Number(before.slice(0, 13)) > scope.until
  ) {
    throw new InvalidCursorError("cursor is not one this API returned");
  }
  const same = Object.entries(scope).every(([key, value]) => position[key] === value);
  if (!same) throw new InvalidCursorError("cursor belongs to a listing with other filters");
  return before;
}

// Cursors are the index position, tied to the run they page through.
function encodeRunCursor(key: Item): string {
  // Stryker disable next-line OptionalChaining: a LastEvaluatedKey of by-run holds its keys and the table's.
  return encodeCursor([key[A.runId]?.S, key[A.runSortKey]?.S, key[A.key]?.S]);
}

// `<created_at>#<step id>`: the by-run sort key runSortKey writes.
const RUN_SORT_KEY = /^\d{11}#(.+)$/s;

function decodeRunCursor(cursor: string, runId: string): Item {
  const position = decodeCursor(cursor);
  if (!Array.isArray(position) || position.length !== 3) {
    throw new InvalidCursorError("cursor is not one this API returned");
  }
  const [run, sortKey, key] = position as unknown[];
  if (typeof run === "string" && run !== runId) throw new InvalidCursorError("cursor belongs to another run");
  // A step's place in its run: the run, then its sort key and its own key, which name the same step.
  const stepId = typeof sortKey === "string" ? RUN_SORT_KEY.exec(sortKey)?.[1] : undefined;
  if (
    !isKeyPart(run) ||
    !isKeyPart(sortKey, "sort") ||
    !isKeyPart(key) ||
    stepId === undefined ||
    key !== stepKey(stepId)
  ) {
    throw new InvalidCursorError("cursor is not one this API returned");
  }
  return { [A.runId]: { S: run }, [A.runSortKey]: { S: sortKey }, [A.key]: { S: key } };
}
