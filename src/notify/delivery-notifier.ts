import type { Delivery, DeliveryIntent } from "../domain/delivery.js";
import type { Notification } from "../domain/notification-payloads.js";
import { notificationEvent, selectIntents } from "../domain/notification-routing.js";
import type { AttemptResult } from "../domain/retry-policy.js";
import type { SinkConfig } from "../domain/sink-config-schema.js";
import type { SinkHealth } from "../domain/sink-health.js";
import type { SubjectView } from "../domain/subject.js";
import type { LogFields, Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { DeliveryStore, SinkHealthStore, SubjectDocument } from "../store/delivery-store.js";
import { DeliveryAttempts, notificationOf } from "./delivery-attempts.js";
import { DeliverySweeper } from "./delivery-sweeper.js";
import { HealthTracker } from "./health-tracker.js";
import type { AppliedTransition, Notifier, SweepReport } from "./notifier.js";
import { PromptDelivery } from "./prompt-delivery.js";
import type { Sink } from "./sink.js";
import { SinkLanes } from "./sink-lanes.js";

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

/**
 * Delivers notifications: promptly from the instance that applied the terminal transition, and
 * from sweepers for retries, for sinks that recovered, and for work a dead instance left behind.
 *
 * Every sink is its own lane: its own concurrency limit, its own queue partitions, its own health.
 * A sink that hangs or fails fills only its own lane, so it never delays another sink or ingest.
 *
 * The work itself is done by its parts: {@link SinkLanes} (lanes, work in flight, shutdown),
 * {@link HealthTracker} (sink health), {@link DeliveryAttempts} (one attempt), {@link PromptDelivery}
 * and {@link DeliverySweeper} (with its probe of failing sinks and the outbox recovery).
 */
export class DeliveryNotifier implements Notifier {
  readonly #o: DeliveryNotifierOptions;
  readonly #nowMs: () => number;
  readonly #lanes: SinkLanes;
  readonly #health: HealthTracker;
  readonly #attempts: DeliveryAttempts;
  readonly #prompt: PromptDelivery;
  readonly #sweeper: DeliverySweeper;

  constructor(options: DeliveryNotifierOptions) {
    this.#o = options;
    const nowMs = options.nowMs ?? Date.now;
    this.#nowMs = nowMs;
    const { sinks, deliveries, logger } = options;
    const lanes = new SinkLanes(options.sinkConcurrency);
    const health = new HealthTracker({ store: options.health, nowMs });
    const attempts = new DeliveryAttempts({
      health,
      logger,
      policy: { scheduleS: options.retryScheduleS, random: options.random ?? Math.random },
      nowMs,
      metrics: options.metrics,
    });
    this.#lanes = lanes;
    this.#health = health;
    this.#attempts = attempts;
    this.#prompt = new PromptDelivery({ sinks, deliveries, logger, lanes, health, attempts, nowMs });
    this.#sweeper = new DeliverySweeper({
      sinks,
      deliveries,
      logger,
      lanes,
      health,
      attempts,
      timeoutMs: options.timeoutMs,
      sweepBudgetMs: options.sweepBudgetMs,
      maxAttemptsPerSweep: options.maxAttemptsPerSweep,
      nowMs,
    });
  }

  /** The configured sinks' names, in configuration order. */
  get sinkNames(): string[] {
    return this.#o.sinkConfigs.map((config) => config.name);
  }

  intentsFor(subject: SubjectView, status: string): DeliveryIntent[] {
    return selectIntents(subject, notificationEvent(subject, status), this.#o.sinkConfigs);
  }

  deliverPrompt(transition: AppliedTransition): Promise<void> {
    return this.#lanes.track(this.#prompt.deliver(transition)).then(() => undefined);
  }

  sweep(): Promise<SweepReport> {
    return this.#lanes.track(this.#sweeper.sweep(this.sinkNames));
  }

  /**
   * One sweep of one sink's deliveries, without the outbox recovery: the Node server runs one per
   * sink on its own timer, so a sink whose sweep hangs on time-outs never delays another's.
   */
  sweepSink(sink: string): Promise<SweepReport> {
    return this.#lanes.track(this.#sweeper.sweep([sink], false));
  }

  /** The outbox recovery alone (see {@link DeliveryStore.recoverOutbox}); returns deliveries recovered. */
  recover(): Promise<number> {
    return this.#lanes.track(this.#sweeper.recover(this.#nowMs(), this.#nowMs() + this.#o.sweepBudgetMs));
  }

  /**
   * Winds down for a shutdown: sweeps start no more attempts, and prompt deliveries still waiting
   * for their sink's lane are recorded pending (a sweep sends them later) instead of attempted.
   * Attempts in flight finish; {@link drain} resolves when they have.
   */
  close(): void {
    this.#lanes.close();
  }

  /** Resolves when every prompt delivery and sweep started so far has finished. */
  drain(): Promise<void> {
    return this.#lanes.drain();
  }

  /**
   * Notification attempts being sent right now: a process killed now leaves each for a later sweep
   * to send again (after its lease, or the prompt lease for a first attempt).
   */
  get attemptsInFlight(): number {
    return this.#attempts.inFlight;
  }

  /** The sink's health, at most `maxAgeMs` (a second by default) old. */
  sinkHealth(sink: string, maxAgeMs?: number): Promise<SinkHealth> {
    return this.#health.get(sink, maxAgeMs);
  }

  /** Notes a health change made elsewhere (an operator's enable or disable) at once. */
  rememberHealth(health: SinkHealth): SinkHealth {
    return this.#health.remember(health);
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
    return this.#lanes.lane(delivery.sink)(() =>
      this.#attempts.attempt(sink, delivery, notification, false, context),
    );
  }

  /** Sends a test notification to a sink now and reports what came of it. */
  async sendTest(
    sinkName: string,
    notification: Notification,
  ): Promise<{ result: AttemptResult; latencyMs: number } | null> {
    const sink = this.#o.sinks.get(sinkName);
    if (!sink) return null;
    return this.#lanes.lane(sinkName)(() => this.#attempts.sendTest(sink, notification));
  }
}
