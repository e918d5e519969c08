import { RUN_STEP_STATUSES, type RunStepStatus } from "../domain/run-step-schema.js";
import {
  decodeCursor,
  encodeCursor,
  fitsKey,
  type Item,
  isKeyPart,
  alias as n,
  num,
  stepIdOfKey,
  stepKey,
  toStoredStep,
} from "./item-codec.js";
import type { Page, RunRollup, StoredStep } from "./step-store.js";
import { InvalidCursorError } from "./store-errors.js";
import type { Table } from "./table.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const BY_RUN = TABLE_SCHEMA.indexes.byRun;
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

/** Reads of run steps: one step, several, a run's steps in order, and a run's rollup. */
export class StepReads {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  async getStep(stepId: string): Promise<StoredStep | null> {
    if (!fitsKey(stepKey(stepId))) return null;
    const item = await this.#table.get("getStep", stepKey(stepId));
    return item ? toStoredStep(item) : null;
  }

  async getSteps(stepIds: readonly string[]): Promise<Map<string, StoredStep>> {
    const keys = stepIds.map(stepKey).filter((key) => fitsKey(key));
    const found = await this.#table.getMany("getSteps", keys);
    const steps = new Map<string, StoredStep>();
    for (const [key, item] of found) steps.set(stepIdOfKey(key), toStoredStep(item));
    return steps;
  }

  async listRunSteps(runId: string, limit: number, cursor: string | null): Promise<Page<StoredStep>> {
    const result = await this.#table.query({
      operation: "listRunSteps",
      index: BY_RUN.name,
      condition: BY_RUN_KEY,
      values: { ":run": { S: runId } },
      limit,
      start: cursor ? decodeRunCursor(cursor, runId) : undefined,
    });
    // The index holds what the rollup sums; the documents are read from the table, in index order.
    // Stryker disable next-line ArrayDeclaration,StringLiteral,OptionalChaining: a Query's result always holds Items (empty when nothing matched), each with the table's key.
    const keys = (result.Items ?? []).map((item) => item[A.key]?.S ?? "");
    const found = await this.#table.getMany("listRunSteps", keys, undefined, { consistent: false });
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
    let startKey: Item | undefined;
    // Counting items, not events, is what makes every step count once however often it arrived.
    do {
      const page = await this.#table.query({
        operation: "getRunRollup",
        index: BY_RUN.name,
        condition: BY_RUN_KEY,
        projection: ROLLUP_PROJECTION,
        values: { ":run": { S: runId } },
        start: startKey,
      });
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
