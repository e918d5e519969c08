import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import {
  fitsKey,
  alias as n,
  num,
  stepIdOfKey,
  stepKey,
  watchPartition,
  watchWatermarkKey,
} from "./item-codec.js";
import type { StallStore, WatchedStep } from "./step-store.js";
import type { Table } from "./table.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const QUEUE = TABLE_SCHEMA.indexes.queue;
const WATCH_RANGE = `${n(A.queue)} = :q AND ${n(A.queueAt)} BETWEEN :lo AND :hi`;
const ADVANCE = `SET ${n(A.watermark)} = :to`;
const AT_WATERMARK = `attribute_not_exists(${n(A.watermark)}) OR ${n(A.watermark)} = :from`;
const MARK_STALLED = `SET ${n(A.stalledAt)} = :at`;
const STILL_IN_PROGRESS = `${n(A.status)} = :in_progress AND attribute_not_exists(${n(A.stalledAt)})`;
const IN_PROGRESS: AttributeValue = { S: "in_progress" };

/**
 * The stalled-step watchdog's side of the table ({@link StallStore}): the watch partitions the
 * snapshot writer fills, each partition's watermark, and the one-time stalled mark.
 */
export class StallWatchStore implements StallStore {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  async dueForWatch(
    shard: number,
    watermark: number,
    upToMs: number,
    limit: number,
    after: WatchedStep | null,
  ): Promise<WatchedStep[]> {
    if (upToMs <= watermark) return [];
    const start = after
      ? {
          [A.key]: { S: stepKey(after.stepId) },
          [A.queue]: { S: watchPartition(shard) },
          [A.queueAt]: { N: String(after.dueMs) },
        }
      : undefined;
    const result = await this.#table.query({
      operation: "dueForWatch",
      index: QUEUE.name,
      condition: WATCH_RANGE,
      values: {
        ":q": { S: watchPartition(shard) },
        ":lo": { N: String(watermark + 1) },
        ":hi": { N: String(upToMs) },
      },
      limit,
      start,
    });
    // Stryker disable next-line ArrayDeclaration: a Query's result always holds Items (empty when nothing matched).
    return (result.Items ?? []).map((item) => ({
      // Stryker disable next-line StringLiteral,OptionalChaining: an index item always carries the table's key.
      stepId: stepIdOfKey(item[A.key]?.S ?? ""),
      dueMs: num(item[A.queueAt]),
    }));
  }

  async watermark(shard: number): Promise<number> {
    const item = await this.#table.get("readWatchWatermark", watchWatermarkKey(shard));
    return num(item?.[A.watermark]);
  }

  async advanceWatermark(shard: number, from: number, to: number): Promise<boolean> {
    const result = await this.#table.update(
      "advanceWatchWatermark",
      watchWatermarkKey(shard),
      ADVANCE,
      AT_WATERMARK,
      { ":to": { N: String(to) }, ":from": { N: String(from) } },
    );
    return result.ok;
  }

  async markStalled(stepId: string, atMs: number): Promise<boolean> {
    if (!fitsKey(stepKey(stepId))) return false;
    const result = await this.#table.update("markStalled", stepKey(stepId), MARK_STALLED, STILL_IN_PROGRESS, {
      ":at": { N: String(atMs) },
      ":in_progress": IN_PROGRESS,
    });
    return result.ok;
  }
}
