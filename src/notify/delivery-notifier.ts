import pLimit, { type LimitFunction } from "p-limit";
import { type Delivery, type DeliveryIntent, missingSubject, newDelivery } from "../domain/delivery.js";
import type { Notification } from "../domain/notification-payloads.js";
import { notificationEvent, selectIntents } from "../domain/notification-routing.js";
import { type AttemptResult, afterAttempt, type RetryPolicy } from "../domain/retry-policy.js";
import { shuffled } from "../domain/shuffled.js";
import type { SinkConfig } from "../domain/sink-config-schema.js";
import { FAILING_AFTER, probeDelayMs, type SinkHealth } from "../domain/sink-health.js";
import type { SubjectView } from "../domain/subject.js";
import { SUBJECT_KINDS } from "../domain/subject-kinds.js";
import { describeError, type LogFields, type Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import {
  type DeliveryStore,
  type DueDelivery,
  type SinkHealthStore,
  type SubjectDocument,
  subjectKeyOf,
} from "../store/delivery-store.js";
import type { AppliedTransition, Notifier, SweepReport } from "./notifier.js";
import type { Sink } from "./sink.js";

/** Settings of the notifier. */
export interface DeliveryNotifierOptions {
  readonly sinkConfigs: readonly SinkConfig[];
  readonly sinks: ReadonlyMap<string, Sink>;
  readonly deliveries: DeliveryStore;
  readonly health: SinkHealthStore;
  readonly logger: Logger;
  /** Seconds to wait before each retry (NOTIFY_RETRY_SCHEDULE). */
  readonly retryScheduleS: readonly number[];
  /** Per-attempt time-out (NOTIFY_TIMEOUT_MS): bounds how long any lease must outlast its holder's work. */
  readonly timeoutMs: number;
  /** How long one sweep keeps draining (SWEEP_BUDGET_MS). */
  readonly sweepBudgetMs: number;
  /** Attempts in flight to one sink from this process, prompt and sweep together. */
  readonly sinkConcurrency: number;
  /** Attempts one sweep may make at most (a Worker invocation's subrequests are limited); unlimited when absent. */
  readonly maxAttemptsPerSweep?: number;
  /** Clock in Unix ms; injectable for tests. */
  readonly nowMs?: () => number;
  /** Jitter source in [0, 1); injectable for tests. */
  readonly random?: () => number;
  /** Counts attempts, where the runtime keeps counters. */
  readonly metrics?: Metrics;
}

/** Prompt attempts waiting for one sink beyond this are left to the sweeper instead of queueing in memory. */
const MAX_WAITING_PER_SINK = 1_000;
/** Deliveries a sweep reads at a time from one queue shard. */
const SWEEP_PAGE = 100;
/** Slack added to every lease beyond the work it covers: clock skew between instances, store latency. */
const LEASE_MARGIN_MS = 5_000;
/** How far instances' clocks may disagree: the outbox is only recovered this long after the prompt lease. */
const CLOCK_SKEW_MS = 60_000;
/** How long an instance trusts the sink health it read for prompt decisions. */
const HEALTH_CACHE_MS = 1_000;
/** A healthy sink's "last success" is written at most this often per instance (each write costs a unit). */
const SUCCESS_WRITE_EVERY_MS = 10_000;

interface Tally {
  attempts: number;
  delivered: number;
  retrying: number;
  dead: number;
  parked: number;
  probes: number;
}

const emptyTally = (): Tally => ({ attempts: 0, delivered: 0, retrying: 0, dead: 0, parked: 0, probes: 0 });

/**
 * Delivers notifications: promptly from the instance that applied the terminal transition, and
 * from sweepers for retries, for sinks that recovered, and for work a dead instance left behind.
 *
 * Every sink is its own lane: its own concurrency limit, its own queue partitions, its own health.
 * A sink that hangs or fails fills only its own lane, so it never delays another sink or ingest.
 */
export class DeliveryNotifier implements Notifier {
  readonly #o: DeliveryNotifierOptions;
  readonly #nowMs: () => number;
  readonly #policy: RetryPolicy;
  readonly #shards: readonly number[];
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #limiters = new Map<string, LimitFunction>();
  readonly #health = new Map<string, { health: SinkHealth; readAtMs: number }>();
  readonly #healthReads = new Map<string, Promise<SinkHealth>>();
  readonly #successWrittenAt = new Map<string, number>();
  /** Sinks with a counted failure since this instance last wrote a success. */
  readonly #failedSince = new Set<string>();
  #closing = false;
  #attempting = 0;

  constructor(options: DeliveryNotifierOptions) {
    this.#o = options;
    this.#nowMs = options.nowMs ?? Date.now;
    this.#policy = { scheduleS: options.retryScheduleS, random: options.random ?? Math.random };
    this.#shards = Array.from({ length: options.deliveries.queueShards }, (_, i) => i);
  }

  /** The configured sinks' names, in configuration order. */
  get sinkNames(): string[] {
    return this.#o.sinkConfigs.map((config) => config.name);
  }

  intentsFor(subject: SubjectView, status: string): DeliveryIntent[] {
    return selectIntents(subject, notificationEvent(subject, status), this.#o.sinkConfigs);
  }

  deliverPrompt(transition: AppliedTransition): Promise<void> {
    // Started on the next turn of the event loop, so the webhook's answer goes out first.
    const task = nextTurn().then(() =>
      Promise.all(transition.intents.map((intent) => this.#deliverPromptly(transition, intent))),
    );
    return this.#track(task).then(() => undefined);
  }

  sweep(): Promise<SweepReport> {
    return this.#track(this.#sweep(this.sinkNames));
  }

  /**
   * One sweep of one sink's deliveries, without the outbox recovery: the Node server runs one per
   * sink on its own timer, so a sink whose sweep hangs on time-outs never delays another's.
   */
  sweepSink(sink: string): Promise<SweepReport> {
    return this.#track(this.#sweep([sink], false));
  }

  /** The outbox recovery alone (see {@link DeliveryStore.recoverOutbox}); returns deliveries recovered. */
  recover(): Promise<number> {
    return this.#track(this.#recover(this.#nowMs(), this.#nowMs() + this.#o.sweepBudgetMs));
  }

  /**
   * Winds down for a shutdown: sweeps start no more attempts, and prompt deliveries still waiting
   * for their sink's lane are recorded pending (a sweep sends them later) instead of attempted.
   * Attempts in flight finish; {@link drain} resolves when they have.
   */
  close(): void {
    this.#closing = true;
  }

  /** Resolves when every prompt delivery and sweep started so far has finished. */
  async drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /**
   * Notification attempts being sent right now: a process killed now leaves each for a later sweep
   * to send again (after its lease, or the prompt lease for a first attempt).
   */
  get attemptsInFlight(): number {
    return this.#attempting;
  }

  /** The sink's health, at most `maxAgeMs` ({@link HEALTH_CACHE_MS} by default) old. */
  async sinkHealth(sink: string, maxAgeMs = HEALTH_CACHE_MS): Promise<SinkHealth> {
    // 0 asks for the store's word now (a sweep under its lease): neither a cached read from the same
    // millisecond nor one that started earlier and is still in flight.
    if (maxAgeMs === 0) return this.#remember(await this.#o.health.get(sink));
    const cached = this.#health.get(sink);
    if (cached && this.#nowMs() - cached.readAtMs <= maxAgeMs) return cached.health;
    // One read at a time per sink: a burst of terminal events shares it instead of each reading.
    let read = this.#healthReads.get(sink);
    if (!read) {
      read = this.#o.health.get(sink).then((health) => this.#remember(health));
      this.#healthReads.set(sink, read);
      const done = () => this.#healthReads.delete(sink);
      read.then(done, done);
    }
    return read;
  }

  /** Notes a health change made elsewhere (an operator's enable or disable) at once. */
  rememberHealth(health: SinkHealth): SinkHealth {
    return this.#remember(health);
  }

  /**
   * Attempts one stored delivery now (an operator's retry or resend), within its sink's lane, and
   * returns it as it stands after the attempt (not yet written back: the caller records it).
   */
  async attemptNow(delivery: Delivery, stored: SubjectDocument, context: LogFields = {}): Promise<Delivery> {
    const sink = this.#o.sinks.get(delivery.sink);
    if (!sink)
      return { ...delivery, state: "dead", lastError: "sink is no longer configured", nextAttemptMs: null };
    const notification = notificationOf(delivery, stored);
    return this.#lane(delivery.sink)(() => this.#attempt(sink, delivery, notification, false, context));
  }

  /** Sends a test notification to a sink now and reports what came of it. */
  async sendTest(
    sinkName: string,
    notification: Notification,
  ): Promise<{ result: AttemptResult; latencyMs: number } | null> {
    const sink = this.#o.sinks.get(sinkName);
    if (!sink) return null;
    return this.#lane(sinkName)(async () => {
      const started = this.#nowMs();
      const result = await sendSafely(sink, notification);
      const ended = this.#nowMs();
      await this.#recordHealth(sinkName, result, ended, false);
      return { result, latencyMs: ended - started };
    });
  }

  async #deliverPromptly(transition: AppliedTransition, intent: DeliveryIntent): Promise<void> {
    const { subject, document, ref } = transition;
    const fresh = newDelivery(intent, ref, this.#nowMs());
    const sink = this.#o.sinks.get(intent.sink);
    try {
      const lane = this.#lane(intent.sink);
      const health = await this.sinkHealth(intent.sink);
      // A failing or disabled sink is not attempted here: the delivery waits for its probe or its
      // enabling. Nor is one whose lane is full: the sweeper takes it, rather than memory piling up.
      if (!sink || health.state !== "healthy" || lane.pendingCount >= MAX_WAITING_PER_SINK) {
        await this.#o.deliveries.create(fresh);
        return;
      }
      await lane(async () => {
        // Shutting down, or the sink turned failing or disabled while this waited for the lane:
        // record it pending rather than attempt it now.
        // Stryker disable next-line OptionalChaining: sinkHealth() above remembered this sink before resolving, and nothing forgets one; `?.` is for the type.
        if (this.#closing || this.#health.get(intent.sink)?.health.state !== "healthy") {
          await this.#o.deliveries.create(fresh);
          return;
        }
        const notification = {
          event: intent.event,
          subjectId: ref.id,
          subject,
          document,
          stalledAtMs: transition.stalledAtMs ?? null,
        };
        const after = await this.#attempt(sink, fresh, notification, false, {
          request_id: transition.requestId,
        });
        if (!(await this.#o.deliveries.create(after))) {
          // Only when this instance was so slow that the outbox recovery already recorded it.
          this.#o.logger.warn("delivery was recorded by a sweeper meanwhile", {
            request_id: transition.requestId,
            ...subjectFields(ref.kind, ref.id),
            sink: intent.sink,
          });
        }
      });
    } catch (error) {
      // The outbox still lists this transition: a sweeper records it after the prompt lease.
      this.#o.logger.error("could not record delivery attempt", {
        request_id: transition.requestId,
        ...subjectFields(ref.kind, ref.id),
        sink: intent.sink,
        error: describeError(error),
      });
    }
  }

  async #sweep(sinks: readonly string[], recover = true): Promise<SweepReport> {
    const started = this.#nowMs();
    const deadline = started + this.#o.sweepBudgetMs;
    const recovered = recover ? await this.#recover(started, deadline) : 0;
    const budget = { left: this.#o.maxAttemptsPerSweep ?? Number.POSITIVE_INFINITY };
    const tallies = await Promise.all(
      sinks.map((sink) =>
        this.#drainSink(sink, deadline, budget).catch((error) => {
          this.#o.logger.warn("sweep of a sink failed", { sink, error: describeError(error) });
          return emptyTally();
        }),
      ),
    );
    const total = tallies.reduce((sum, t) => {
      for (const key of Object.keys(sum) as (keyof Tally)[]) sum[key] += t[key];
      return sum;
    }, emptyTally());
    const end = this.#nowMs();
    return { recovered, ...total, durationMs: end - started, exhausted: end >= deadline || budget.left <= 0 };
  }

  async #recover(now: number, deadline: number): Promise<number> {
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

  async #drainSink(sinkName: string, deadline: number, budget: { left: number }): Promise<Tally> {
    const tally = emptyTally();
    const sink = this.#o.sinks.get(sinkName);
    if (!sink) return tally;
    const health = await this.sinkHealth(sinkName, 0);
    // Stryker disable next-line ConditionalExpression,StringLiteral: without it a disabled sink stops at the first #stop below (no await between), the same way; it says so outright.
    if (health.state === "disabled") return tally;
    if (health.state === "failing") {
      const healed = await this.#probe(sink, health, deadline, tally);
      if (!healed) return tally;
    }
    for (const shard of shuffled(this.#shards)) {
      if (this.#stop(sinkName, deadline, budget)) break;
      await this.#drainShard(sink, shard, deadline, budget, tally);
    }
    return tally;
  }

  // Drains one queue shard of a sink under a lease, so concurrent sweepers divide shards between them.
  async #drainShard(sink: Sink, shard: number, deadline: number, budget: { left: number }, tally: Tally) {
    const store = this.#o.deliveries;
    let due = await store.findDue(sink.name, shard, this.#nowMs(), SWEEP_PAGE);
    if (due.length === 0) return;
    const leaseKey = store.shardLease(sink.name, shard);
    // Held until every attempt this sweep may start has ended (each ends within the time-out).
    const version = await store.acquireLease(
      leaseKey,
      deadline + this.#o.timeoutMs + LEASE_MARGIN_MS,
      this.#nowMs(),
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
        due = await store.findDue(sink.name, shard, this.#nowMs(), SWEEP_PAGE, due.at(-1));
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
    tally: Tally,
  ): Promise<void> {
    const store = this.#o.deliveries;
    const now = this.#nowMs();
    // The index only says what may be due; the deliveries themselves, read consistently, decide.
    const ready = (await store.getMany(due)).filter(
      (d) => d.state === "pending" && (d.nextAttemptMs ?? 0) <= now,
    );
    // Stryker disable next-line ConditionalExpression: with none ready, documents([]) reads nothing and no attempt starts either way.
    if (ready.length === 0) return;
    const documents = await store.subjects(ready);
    const lane = this.#lane(sink.name);
    await Promise.all(
      ready.map((delivery) =>
        lane(async () => {
          if (this.#stop(sink.name, deadline, budget)) return;
          budget.left--;
          const after = await this.#attemptStored(sink, delivery, documents.get(subjectKeyOf(delivery)));
          count(tally, after);
          if (!(await store.replace({ ...after, version: delivery.version + 1 }))) {
            this.#o.logger.warn("delivery changed while it was attempted", {
              ...subjectFields(delivery.kind, delivery.subjectId),
              sink: delivery.sink,
            });
          }
        }),
      ),
    );
  }

  // A failing sink gets one attempt at a time across all instances, on a backoff: its probe.
  // Whether it healed only spares drainSink one #stop check, which reads the health remembered here:
  // healthy exactly when this returns true, so a mutant returning true instead changes nothing.
  async #probe(sink: Sink, health: SinkHealth, deadline: number, tally: Tally): Promise<boolean> {
    const store = this.#o.deliveries;
    const now = this.#nowMs();
    // Stryker disable next-line BooleanLiteral: true is equivalent here (see above #probe).
    if ((health.nextProbeAtMs ?? 0) > now || now >= deadline) return false;
    const until = now + this.#o.timeoutMs + LEASE_MARGIN_MS;
    const probeVersion = await store.acquireLease(store.probeLease(sink.name), until, now);
    // Stryker disable next-line BooleanLiteral: true is equivalent here (see above #probe).
    if (probeVersion === null) return false;
    try {
      // Read again under the lease: another sweeper may have probed (and pushed the next probe back)
      // between this one's read and its lease.
      const current = await this.sinkHealth(sink.name, 0);
      if (current.state !== "failing" || (current.nextProbeAtMs ?? 0) > now)
        // Stryker disable next-line ConditionalExpression: true is equivalent here (see above #probe).
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
          const after = await this.#attemptStored(
            sink,
            delivery,
            documents.get(subjectKeyOf(delivery)),
            true,
          );
          count(tally, after);
          await store.replace({ ...after, version: delivery.version + 1 });
          // Stryker disable next-line ConditionalExpression: true is equivalent here (see above #probe).
          return after.state === "delivered";
        } finally {
          await store.releaseLease(shardKey, shardVersion);
        }
      }
      // Stryker disable next-line BooleanLiteral: true is equivalent here (see above #probe).
      return false;
    } finally {
      await store.releaseLease(store.probeLease(sink.name), probeVersion);
    }
  }

  async #attemptStored(
    sink: Sink,
    delivery: Delivery,
    stored: SubjectDocument | undefined,
    probe = false,
  ): Promise<Delivery> {
    if (!stored) {
      // Cannot happen for subjects this service stored (a delivery never outlives its subject's
      // retention); dead rather than retried forever.
      return { ...delivery, state: "dead", lastError: missingSubject(delivery), nextAttemptMs: null };
    }
    return this.#attempt(sink, delivery, notificationOf(delivery, stored), probe);
  }

  async #attempt(
    sink: Sink,
    delivery: Delivery,
    notification: Notification,
    probe: boolean,
    context: LogFields = {},
  ): Promise<Delivery> {
    this.#attempting++;
    try {
      return await this.#attemptCounted(sink, delivery, notification, probe, context);
    } finally {
      this.#attempting--;
    }
  }

  async #attemptCounted(
    sink: Sink,
    delivery: Delivery,
    notification: Notification,
    probe: boolean,
    context: LogFields,
  ): Promise<Delivery> {
    const startedMs = this.#nowMs();
    const result = await sendSafely(sink, notification);
    const endedMs = this.#nowMs();
    const after = afterAttempt(delivery, result, { startedMs, endedMs }, this.#policy);
    try {
      await this.#recordHealth(sink.name, result, endedMs, probe);
    } catch (error) {
      this.#o.logger.warn("could not record sink health", {
        ...context,
        sink: sink.name,
        error: describeError(error),
      });
    }
    const outcome = outcomeOf(after, result);
    this.#o.metrics?.deliveryAttempt(sink.name, outcome, (endedMs - startedMs) / 1000);
    this.#o.logger.info("delivery attempt", {
      ...context,
      sink: sink.name,
      ...subjectFields(delivery.kind, delivery.subjectId),
      event: delivery.event,
      attempt: after.attempts,
      outcome,
      latency_ms: endedMs - startedMs,
      status: result.status,
      error: result.ok ? undefined : result.error,
      probe: probe || undefined,
    });
    return after;
  }

  async #recordHealth(sink: string, result: AttemptResult, atMs: number, probe: boolean): Promise<void> {
    const store = this.#o.health;
    if (result.ok) {
      const known = this.#health.get(sink)?.health;
      const quiet =
        known?.state === "healthy" && known.consecutiveFailures === 0 && !this.#failedSince.has(sink);
      const writtenAt = this.#successWrittenAt.get(sink);
      if (quiet && writtenAt !== undefined && atMs - writtenAt < SUCCESS_WRITE_EVERY_MS) return;
      this.#successWrittenAt.set(sink, atMs);
      this.#failedSince.delete(sink);
      this.#remember(await store.recordSuccess(sink, result.status ?? null, atMs));
      return;
    }
    if (result.gone) {
      this.#remember(await store.disable(sink, `the endpoint answered ${result.error}`));
      return;
    }
    // Noted before the write returns: a success meanwhile must reset the count, not be skipped.
    if (result.retryable) this.#failedSince.add(sink);
    // Stryker disable next-line OptionalChaining: a probe follows #probe's read of this sink's health, so it is remembered.
    const level = probe ? (this.#health.get(sink)?.health.probeLevel ?? 0) + 1 : 0;
    // Only retryable failures say the sink is down; a 4xx is the receiver refusing one message.
    const health = await store.recordFailure(
      sink,
      { status: result.status ?? null, error: result.error, atMs },
      {
        failingAfter: FAILING_AFTER,
        nextProbeAtMs: atMs + probeDelayMs(level),
        probe,
        counts: result.retryable,
      },
    );
    this.#remember(health);
  }

  #remember(health: SinkHealth): SinkHealth {
    this.#health.set(health.name, { health, readAtMs: this.#nowMs() });
    return health;
  }

  // Whether a sweep of this sink should start no more attempts.
  #stop(sink: string, deadline: number, budget: { left: number }): boolean {
    return (
      this.#closing ||
      this.#nowMs() >= deadline ||
      budget.left <= 0 ||
      // Stryker disable next-line OptionalChaining: sweeps stop here only after drainSink has read, and so remembered, the sink's health.
      this.#health.get(sink)?.health.state !== "healthy"
    );
  }

  #lane(sink: string): LimitFunction {
    let lane = this.#limiters.get(sink);
    if (!lane) {
      lane = pLimit(this.#o.sinkConcurrency);
      this.#limiters.set(sink, lane);
    }
    return lane;
  }

  #track<T>(task: Promise<T>): Promise<T> {
    this.#inFlight.add(task);
    const done = () => this.#inFlight.delete(task);
    task.then(done, done);
    return task;
  }
}

async function sendSafely(sink: Sink, notification: Notification): Promise<AttemptResult> {
  try {
    return await sink.send(notification);
  } catch (error) {
    // Sinks classify their own failures; anything they throw is a bug or a refusal before sending.
    return { ok: false, retryable: false, error: `could not send: ${describeError(error)}` };
  }
}

/**
 * What a stored delivery sends: its subject's stored document as its kind reads it, leniently. It
 * is not validated again: a document valid when its intent was written stays sendable however the
 * schemas have moved since (a tightened schema never kills queued deliveries).
 */
function notificationOf(delivery: Delivery, stored: SubjectDocument): Notification {
  const { document, stalledAtMs } = stored;
  const subject = SUBJECT_KINDS[delivery.kind].view(document);
  return { event: delivery.event, subjectId: delivery.subjectId, subject, document, stalledAtMs };
}

// The log fields naming a subject: `step_id` for a run step, as every line said before other kinds.
function subjectFields(kind: Delivery["kind"], id: string): LogFields {
  return kind === "run_step" ? { step_id: id } : { subject_kind: kind, subject_id: id };
}

function outcomeOf(after: Delivery, result: AttemptResult): string {
  if (!result.ok && result.gone) return "parked";
  return after.state === "pending" ? "retry" : after.state;
}

function count(tally: Tally, after: Delivery): void {
  tally.attempts++;
  if (after.state === "delivered") tally.delivered++;
  else if (after.state === "dead") tally.dead++;
  // Stryker disable next-line OptionalChaining: a pending delivery after an attempt always has that attempt in its log.
  else if (after.log.at(-1)?.status === 410) tally.parked++;
  else tally.retrying++;
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
