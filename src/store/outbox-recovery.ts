import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { newDelivery } from "../domain/delivery.js";
import { RESPONSE_TERMINAL_STATUSES } from "../domain/openai/response-object.js";
import { TERMINAL_STATUSES } from "../domain/run-step-schema.js";
import { shuffled } from "../domain/shuffled.js";
import { SUBJECT_KINDS } from "../domain/subject-kinds.js";
import type { DeliveryRecords } from "./delivery-records.js";
import type { RecoveryReport } from "./delivery-store.js";
import {
  deliveryKey,
  type Item,
  alias as n,
  num,
  outboxPartition,
  outboxSortKey,
  watermarkKey,
} from "./item-codec.js";
import { sessionOutboxWord } from "./openai-event-store.js";
import { responseOutboxWord } from "./response-store.js";
import type { Table } from "./table.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const OUTBOX = TABLE_SCHEMA.indexes.outbox;
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
const OUTBOX_UP_TO = `${n(A.outboxShard)} = :ob AND ${n(A.appliedAtMs)} <= :upTo`;
const OUTBOX_PAGE = 100;
const ADVANCE = `SET ${n(A.watermark)} = :mark, ${n(A.version)} = :next`;
const FIRST_MARK = `attribute_not_exists(${n(A.version)})`;
const AT_VERSION = `${n(A.version)} = :version`;

/** Settings of the outbox recovery. */
export interface OutboxRecoveryOptions {
  readonly nowMs: () => number;
  /** Random source of the order a recovery walks the outbox partitions in (Math.random when absent). */
  readonly random: (() => number) | undefined;
}

/**
 * Finds transitions whose deliveries nobody recorded (the instance that applied them died first)
 * in the outbox index and records them. Each partition keeps a watermark (versioned, written
 * conditionally) of how far it was checked, so sweepers share the work and never re-read it.
 */
export class OutboxRecovery {
  readonly #table: Table;
  readonly #records: DeliveryRecords;
  readonly #options: OutboxRecoveryOptions;

  constructor(table: Table, records: DeliveryRecords, options: OutboxRecoveryOptions) {
    this.#table = table;
    this.#records = records;
    this.#options = options;
  }

  async recoverOutbox(upToMs: number, nowMs: number, deadlineMs: number): Promise<RecoveryReport> {
    let checked = 0;
    let recovered = 0;
    // Every entry applied at or before upToMs sorts before this bound (the step id follows "#").
    const upTo = `${outboxSortKey(upToMs, "")}\uffff`;
    // A random order spreads concurrent sweepers over the partitions instead of racing on the first.
    for (const partition of shuffled(OUTBOX_PARTITIONS, this.#options.random)) {
      for (;;) {
        if (this.#options.nowMs() >= deadlineMs) return { checked, recovered };
        const watermark = await this.#readWatermark(partition);
        // A sweeper whose clock runs ahead (within the skew allowed for) has already checked past
        // this sweep's bound: nothing there is this sweep's yet, and a query may not start beyond
        // its own key condition (DynamoDB refuses such an ExclusiveStartKey).
        // Stryker disable next-line EqualityOperator: a mark equal to the bound has nothing after it within the bound.
        if ((watermark.mark ?? "") > upTo) break;
        const page = await this.#table.query({
          operation: "recoverOutbox",
          index: OUTBOX.name,
          condition: OUTBOX_UP_TO,
          values: { ":ob": { S: outboxPartition(partition.word, partition.shard) }, ":upTo": { S: upTo } },
          limit: OUTBOX_PAGE,
          start: watermark.start,
        });
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
    // Only whether each delivery exists: the key alone is read.
    const existing = await this.#table.getMany("recoverOutbox", keys, []);
    let recovered = 0;
    for (const [i, o] of owed.entries()) {
      if (existing.has(keys[i] as string)) continue;
      const subject = { kind, id: o.subjectId, runId: o.runId };
      if (await this.#records.create(newDelivery({ sink: o.sink, event: o.event }, subject, nowMs)))
        recovered++;
    }
    return recovered;
  }

  async #readWatermark(
    partition: OutboxPartition,
  ): Promise<{ mark: string | undefined; start: Item | undefined; version: number }> {
    const item = await this.#table.get("readWatermark", watermarkKey(partition.word, partition.shard));
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
    const condition = version === 0 ? FIRST_MARK : AT_VERSION;
    if (version !== 0) values[":version"] = { N: String(version) };
    const result = await this.#table.update(
      "writeWatermark",
      watermarkKey(partition.word, partition.shard),
      ADVANCE,
      condition,
      values,
    );
    return result.ok;
  }
}
