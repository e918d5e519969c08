import { shuffled } from "../domain/shuffled.js";
import type { SinkHealth } from "../domain/sink-health.js";
import { type DeliveryStore, subjectKeyOf } from "../store/delivery-store.js";
import type { DeliveryAttempts } from "./delivery-attempts.js";
import type { HealthTracker } from "./health-tracker.js";
import type { Sink } from "./sink.js";
import type { SweepTally } from "./sweep-tally.js";

/** What a {@link SinkProbe} works with. */
export interface SinkProbeOptions {
  readonly deliveries: DeliveryStore;
  readonly health: HealthTracker;
  readonly attempts: DeliveryAttempts;
  /** How long the probe's leases are held: its one attempt's time-out and a margin. */
  readonly leaseMs: number;
  /** Clock in Unix ms. */
  readonly nowMs: () => number;
}

/**
 * A failing sink gets one attempt at a time across all instances, on a backoff: its probe. The probe
 * is one due delivery, attempted under the sink's probe lease and its shard's lease.
 */
export class SinkProbe {
  readonly #o: SinkProbeOptions;
  readonly #shards: readonly number[];

  constructor(options: SinkProbeOptions) {
    this.#o = options;
    this.#shards = Array.from({ length: options.deliveries.queueShards }, (_, i) => i);
  }

  /**
   * Probes the failing sink if its probe is due, and says whether it is healthy again.
   *
   * Whether it healed only spares the sweep one stop check, which reads the health remembered here:
   * healthy exactly when this returns true, so a mutant returning true instead changes nothing.
   */
  async probe(sink: Sink, health: SinkHealth, deadline: number, tally: SweepTally): Promise<boolean> {
    const store = this.#o.deliveries;
    const now = this.#o.nowMs();
    // Stryker disable next-line BooleanLiteral: true is equivalent here (see above probe).
    if ((health.nextProbeAtMs ?? 0) > now || now >= deadline) return false;
    const until = now + this.#o.leaseMs;
    const probeVersion = await store.acquireLease(store.probeLease(sink.name), until, now);
    // Stryker disable next-line BooleanLiteral: true is equivalent here (see above probe).
    if (probeVersion === null) return false;
    try {
      // Read again under the lease: another sweeper may have probed (and pushed the next probe back)
      // between this one's read and its lease.
      const current = await this.#o.health.get(sink.name, 0);
      if (current.state !== "failing" || (current.nextProbeAtMs ?? 0) > now)
        // Stryker disable next-line ConditionalExpression: true is equivalent here (see above probe).
        return current.state === "healthy";
      for (const shard of shuffled(this.#shards)) {
        const [due] = await store.findDue(sink.name, shard, now, 1);
        if (!due) continue;
        const shardKey = store.shardLease(sink.name, shard);
        const shardVersion = await store.acquireLease(shardKey, until, now);
        if (shardVersion === null) continue;
        try {
          const [delivery] = await store.getMany([due]);
          if (delivery?.state !== "pending") continue;
          const documents = await store.subjects([delivery]);
          tally.probes++;
          const after = await this.#o.attempts.attemptStored(
            sink,
            delivery,
            documents.get(subjectKeyOf(delivery)),
            true,
          );
          tally.count(after);
          await store.replace({ ...after, version: delivery.version + 1 });
          // Stryker disable next-line ConditionalExpression: true is equivalent here (see above probe).
          return after.state === "delivered";
        } finally {
          await store.releaseLease(shardKey, shardVersion);
        }
      }
      // Stryker disable next-line BooleanLiteral: true is equivalent here (see above probe).
      return false;
    } finally {
      await store.releaseLease(store.probeLease(sink.name), probeVersion);
    }
  }
}
