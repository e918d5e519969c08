import type { DeliveryIntent } from "../../src/domain/delivery.js";
import { parseRunStepEvent } from "../../src/domain/run-step-event.js";
import { shardOf } from "../../src/store/item-codec.js";
import type { SnapshotToApply, StoredStep } from "../../src/store/step-store.js";
import { makeStep } from "./run-steps.js";

/** A snapshot as the ingest path hands it to the step store: the step read from its document. */
export function snapshot(
  fields: Record<string, unknown>,
  at: {
    sentAt?: number;
    receivedAt?: number;
    intents?: DeliveryIntent[];
    document?: Record<string, unknown>;
  } = {},
): SnapshotToApply {
  const document = at.document ?? makeStep(fields);
  const parsed = parseRunStepEvent(makeStep(fields));
  if (!parsed.ok || parsed.event.kind !== "snapshot") throw new Error(JSON.stringify(parsed));
  return {
    step: parsed.event.step,
    document,
    sentAt: at.sentAt ?? 1_764_000_000,
    receivedAt: at.receivedAt ?? 1_764_000_010,
    intents: at.intents ?? [],
  };
}

/** A step id starting with `prefix` that falls in the given shard (of the watch or outbox partitions). */
export function idInShard(prefix: string, shard: number, shards: number): string {
  for (let i = 0; i < 10_000; i++) {
    if (shardOf(`${prefix}_${i}`, shards) === shard) return `${prefix}_${i}`;
  }
  throw new Error(`no id with prefix ${prefix} in shard ${shard}`);
}

/** The id of a stored step. */
export const idOf = (step: StoredStep) => step.document.id as string;
