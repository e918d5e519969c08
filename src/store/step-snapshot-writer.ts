import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { isTerminalStatus, type RunStepStatus } from "../domain/run-step-schema.js";
import { outcomeOfRefusal } from "../domain/state-rules.js";
import {
  encodeDocument,
  alias as n,
  numOrNull,
  outboxPartition,
  outboxSortKey,
  runSortKey,
  shardOf,
  stepKey,
  watchPartition,
} from "./item-codec.js";
import { MAX_ITEM_BYTES, utf8Length, valueSize } from "./item-size.js";
import type { AppliedSnapshot, SnapshotToApply } from "./step-store.js";
import { ItemTooLargeError } from "./store-errors.js";
import type { Table } from "./table.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;

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

// SPEC §4 as conditions. Non-terminal status is exactly "in_progress".
const APPLY_TERMINAL_IF = `attribute_not_exists(${n(A.key)}) OR ${n(A.status)} = :in_progress`;
const APPLY_IN_PROGRESS_IF = `attribute_not_exists(${n(A.key)}) OR (${n(A.status)} = :in_progress AND ${n(A.sentAt)} < :sent)`;
const COUNT_CONFLICT = `ADD ${n(A.conflicts)} :one`;
const EXISTS = `attribute_exists(${n(A.key)})`;

const IN_PROGRESS: AttributeValue = { S: "in_progress" };

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

/** Settings of the snapshot writer. */
export interface StepSnapshotWriterOptions {
  /** Seconds a step is kept after its last update; 0 keeps it forever. */
  readonly retentionS: number;
  readonly nowMs: () => number;
  /** In-progress steps are watched for this long; 0 watches none. */
  readonly stallAfterMs: number;
}

/**
 * Applies a run step's snapshot under SPEC §4's state rules: one conditional UpdateItem per event,
 * no read before it. The same write keeps the step's outbox entry, owed sinks and watch position.
 */
export class StepSnapshotWriter {
  readonly #table: Table;
  readonly #options: StepSnapshotWriterOptions;

  constructor(table: Table, options: StepSnapshotWriterOptions) {
    this.#table = table;
    this.#options = options;
  }

  /** Applies one snapshot and names what it did (see {@link AppliedSnapshot}). */
  async apply(snapshot: SnapshotToApply): Promise<AppliedSnapshot> {
    const { retentionS, nowMs, stallAfterMs } = this.#options;
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
    if (retentionS > 0) {
      set.push(SET_TTL);
      values[":ttl"] = { N: String(snapshot.receivedAt + retentionS) };
    }
    if (!terminal && stallAfterMs > 0) {
      // Watched from its first in_progress apply, in this same write: later snapshots and the
      // terminal apply leave these as they are, so they cost the index nothing more.
      set.push(SET_WATCH);
      values[":wq"] = { S: watchPartition(shardOf(step.id, TABLE_SCHEMA.watchShards)) };
      values[":wdue"] = { N: String(nowMs() + stallAfterMs) };
    }
    if (terminal) {
      set.push(SET_OUTBOX);
      values[":ob"] = { S: outboxPartition(step.status, shardOf(step.id, TABLE_SCHEMA.outboxShards)) };
      values[":obt"] = { S: outboxSortKey(nowMs(), step.id) };
      if (snapshot.intents.length > 0) {
        set.push(SET_OWED);
        values[":snk"] = { SS: snapshot.intents.map((intent) => intent.sink) };
      }
    }
    assertFits(step.id, values);
    const update = `SET ${set.join(", ")}${remove}`;
    const condition = terminal ? APPLY_TERMINAL_IF : APPLY_IN_PROGRESS_IF;
    const result = await this.#table.update("apply", stepKey(step.id), update, condition, values, {
      // Old values come back only when the item existed: created vs updated without a read. A
      // terminal apply reads the whole old item: whether the watchdog had marked the step stalled.
      values: terminal ? "ALL_OLD" : "UPDATED_OLD",
      onRefusal: true,
    });
    if (result.ok) {
      return {
        outcome: result.old?.[A.status] ? "updated" : "created",
        stalledAtMs: numOrNull(result.old?.[A.stalledAt]),
      };
    }
    // An in_progress snapshot can only be refused as stale; a terminal one needs the stored status.
    if (!terminal) return { outcome: "stale", stalledAtMs: null };
    const stored = result.old?.[A.status]?.S as RunStepStatus | undefined;
    const storedStatus = stored ?? (await this.#readStatus(step.id));
    const outcome = outcomeOfRefusal(storedStatus, step.status);
    if (outcome === "conflict") await this.#countConflict(step.id);
    return { outcome, stalledAtMs: null };
  }

  async #readStatus(stepId: string): Promise<RunStepStatus> {
    const item = await this.#table.get("readStatus", stepKey(stepId), { projection: n(A.status) });
    return item?.[A.status]?.S as RunStepStatus;
  }

  // Conflicts are rare and worth an operator's eye: counted on the step, never changing its state.
  // Refused only if the step went (its retention ran out) since the apply was refused: nothing to count.
  async #countConflict(stepId: string): Promise<void> {
    await this.#table.update("countConflict", stepKey(stepId), COUNT_CONFLICT, EXISTS, {
      ":one": { N: "1" },
    });
  }
}
