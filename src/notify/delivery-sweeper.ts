import { shuffled } from "../domain/shuffled.js";
import { describeError, type Logger } from "../observability/logger.js";
import { type DeliveryStore, type DueDelivery, subjectKeyOf } from "../store/delivery-store.js";
import type { DeliveryAttempts } from "./delivery-attempts.js";
import type { HealthTracker } from "./health-tracker.js";
import type { SweepReport } from "./notifier.js";
import type { Sink } from "./sink.js";
import type { SinkLanes } from "./sink-lanes.js";
import { SinkProbe } from "./sink-probe.js";
import { subjectLogFields } from "./subject-log-fields.js";
import { SweepTally } from "./sweep-tally.js";

/** Deliveries a sweep reads at a time from one queue shard. */
const SWEEP_PAGE = 100;
/** Slack added to every lease beyond the work it covers: clock skew between instances, store latency. */
const LEASE_MARGIN_MS = 5_000;
/** How far instances' clocks may disagree: the outbox is only recovered this long after the prompt lease. */
const CLOCK_SKEW_MS = 60_000;

/** What a {@link DeliverySweeper} works with. */
export interface DeliverySweeperOptions {
  readonly sinks: ReadonlyMap<string, Sink>;
  readonly deliveries: DeliveryStore;
  readonly logger: Logger;
  readonly lanes: SinkLanes;
  readonly health: HealthTracker;
  readonly attempts: DeliveryAttempts;
  /** Per-attempt time-out (NOTIFY_TIMEOUT_MS): bounds how long any lease must outlast its holder's work. */
  readonly timeoutMs: number;
  /** How long one sweep keeps draining (SWEEP_BUDGET_MS). */
  readonly sweepBudgetMs: number;
  /** Attempts one sweep may make at most; unlimited when absent. */
  readonly maxAttemptsPerSweep?: number | undefined;
  /** Clock in Unix ms. */
  readonly nowMs: () => number;
}

/**
 * Sweeps: attempts the deliveries that are due (retries, work a dead instance left behind, work the
 * prompt path left to it), sink by sink and queue shard by queue shard under leases, probing failing
 * sinks, and recovers the outbox (transitions whose deliveries were never recorded).
 */
export class DeliverySweeper {
  readonly #o: DeliverySweeperOptions;
  readonly #shards: readonly number[];
  readonly #probe: SinkProbe;

  constructor(options: DeliverySweeperOptions) {
    this.#o = options;
    this.#shards = Array.from({ length: options.deliveries.queueShards }, (_, i) => i);
    this.#probe = new SinkProbe({
      deliveries: options.deliveries,
      health: options.health,
      attempts: options.attempts,
      leaseMs: options.timeoutMs + LEASE_MARGIN_MS,
      nowMs: options.nowMs,
    });
  }

  /** One sweep of these sinks' due deliveries, after the outbox recovery unless `recover` is false. */
  async sweep(sinks: readonly string[], recover = true): Promise<SweepReport> {
    const started = this.#o.nowMs();
    const deadline = started + this.#o.sweepBudgetMs;
    const recovered = recover ? await this.recover(started, deadline) : 0;
    const budget = { left: this.#o.maxAttemptsPerSweep ?? Number.POSITIVE_INFINITY };
    const tallies = await Promise.all(
      sinks.map((sink) =>
        this.#drainSink(sink, deadline, budget).catch((error) => {
          this.#o.logger.warn("sweep of a sink failed", { sink, error: describeError(error) });
          return new SweepTally();
        }),
      ),
    );
    const total = SweepTally.sum(tallies);
    const end = this.#o.nowMs();
    return { recovered, ...total, durationMs: end - started, exhausted: end >= deadline || budget.left <= 0 };
  }

  /** The outbox recovery (see {@link DeliveryStore.recoverOutbox}); returns deliveries recovered, 0 when it failed. */
  async recover(now: number, deadline: number): Promise<number> {
    try {
      const upTo = now - this.#promptLeaseMs() - CLOCK_SKEW_MS;
      return (await this.#o.deliveries.recoverOutbox(upTo, now, deadline)).recovered;
    } catch (error) {
      this.#o.logger.warn("outbox recovery failed", { error: describeError(error) });
      return 0;
    }
  }

  /** How long the applying instance has for its prompt attempts before the outbox recovery may step in. */
  #promptLeaseMs(): number {
    return this.#o.timeoutMs * 2 + LEASE_MARGIN_MS;
  }

  async #drainSink(sinkName: string, deadline: number, budget: { left: number }): Promise<SweepTally> {
    const tally = new SweepTally();
    const sink = this.#o.sinks.get(sinkName);
    if (!sink) return tally;
    const health = await this.#o.health.get(sinkName, 0);
    // Stryker disable next-line ConditionalExpression,StringLiteral: without it a disabled sink stops at the first #stop below (no await between), the same way; it says so outright.
    if (health.state === "disabled") return tally;
    if (health.state === "failing") {
      const healed = await this.#probe.probe(sink, health, deadline, tally);
      if (!healed) return tally;
    }
    for (const shard of shuffled(this.#shards)) {
      if (this.#stop(sinkName, deadline, budget)) break;
      await this.#drainShard(sink, shard, deadline, budget, tally);
    }
    return tally;
  }

  // Drains one queue shard of a sink under a lease, so concurrent sweepers divide shards between them.
  async #drainShard(
    sink: Sink,
    shard: number,
    deadline: number,
    budget: { left: number },
    tally: SweepTally,
  ) {
    const store = this.#o.deliveries;
    let due = await store.findDue(sink.name, shard, this.#o.nowMs(), SWEEP_PAGE);
    if (due.length === 0) return;
    const leaseKey = store.shardLease(sink.name, shard);
    // Held until every attempt this sweep may start has ended (each ends within the time-out).
    const version = await store.acquireLease(
      leaseKey,
      deadline + this.#o.timeoutMs + LEASE_MARGIN_MS,
      this.#o.nowMs(),
    );
    if (version === null) return;
    // Two pages at a time: the next page is read while the sink's lane still works on this one, so
    // the lane never runs dry at a page boundary. An item in flight keeps its place in the index,
    // before where the next page starts, so no delivery is attempted twice at once.
    let previous: Promise<void> | undefined;
    try {
      while (due.length > 0) {
        const page = this.#attemptPage(sink, due, deadline, budget, tally);
        // Handled here too, so that a failure while the previous page is awaited is not "unhandled".
        page.catch(() => undefined);
        await previous;
        previous = page;
        if (this.#stop(sink.name, deadline, budget)) break;
        due = await store.findDue(sink.name, shard, this.#o.nowMs(), SWEEP_PAGE, due.at(-1));
      }
      await previous;
    } finally {
      // Stryker disable next-line OptionalChaining: the loop (due is non-empty here) sets previous before anything in it can throw; `?.` is for the type.
      await previous?.catch(() => undefined);
      await store.releaseLease(leaseKey, version);
    }
  }

  async #attemptPage(
    sink: Sink,
    due: readonly DueDelivery[],
    deadline: number,
    budget: { left: number },
    tally: SweepTally,
  ): Promise<void> {
    const store = this.#o.deliveries;
    const now = this.#o.nowMs();
    // The index only says what may be due; the deliveries themselves, read consistently, decide.
    const ready = (await store.getMany(due)).filter(
      (d) => d.state === "pending" && (d.nextAttemptMs ?? 0) <= now,
    );
    // Stryker disable next-line ConditionalExpression: with none ready, documents([]) reads nothing and no attempt starts either way.
    if (ready.length === 0) return;
    const documents = await store.subjects(ready);
    const lane = this.#o.lanes.lane(sink.name);
    await Promise.all(
      ready.map((delivery) =>
        lane(async () => {
          if (this.#stop(sink.name, deadline, budget)) return;
          budget.left--;
          const after = await this.#o.attempts.attemptStored(
            sink,
            delivery,
            documents.get(subjectKeyOf(delivery)),
          );
          tally.count(after);
          if (!(await store.replace({ ...after, version: delivery.version + 1 }))) {
            this.#o.logger.warn("delivery changed while it was attempted", {
              ...subjectLogFields(delivery.kind, delivery.subjectId),
              sink: delivery.sink,
            });
          }
        }),
      ),
    );
  }

  // Whether a sweep of this sink should start no more attempts.
  #stop(sink: string, deadline: number, budget: { left: number }): boolean {
    return (
      this.#o.lanes.closing ||
      this.#o.nowMs() >= deadline ||
      budget.left <= 0 ||
      // Stryker disable next-line OptionalChaining: sweeps stop here only after drainSink has read, and so remembered, the sink's health.
      this.#o.health.known(sink)?.state !== "healthy"
    );
  }
}
