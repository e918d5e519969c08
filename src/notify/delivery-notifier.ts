import * as v from "valibot";
import type { DeliveryIntent } from "../domain/delivery.js";
import type { Notification } from "../domain/notification-payloads.js";
import { selectIntents } from "../domain/notification-routing.js";
import { type RunStep, RunStepSchema } from "../domain/run-step-schema.js";
import type { SinkConfig } from "../domain/sink-config-schema.js";
import { describeError, type Logger } from "../observability/logger.js";
import {
  type ClaimedStep,
  type DeliveryRecord,
  type DeliveryStore,
  newDeliveryRecord,
} from "../store/delivery-store.js";
import type { AppliedTransition, Notifier, SweepReport } from "./notifier.js";
import type { AttemptResult, Sink } from "./sink.js";

/** Settings of the notifier. */
export interface DeliveryNotifierOptions {
  readonly sinkConfigs: readonly SinkConfig[];
  readonly sinks: ReadonlyMap<string, Sink>;
  readonly store: DeliveryStore;
  readonly logger: Logger;
  /** Seconds to wait before each retry (NOTIFY_RETRY_SCHEDULE). */
  readonly retryScheduleS: readonly number[];
  /** How long a sweeper holds a claimed step before another may take it. */
  readonly leaseMs: number;
  /** Clock in Unix ms; injectable for tests. */
  readonly nowMs?: () => number;
  /** Jitter source in [0, 1); injectable for tests. */
  readonly random?: () => number;
}

const SWEEP_BATCH = 25;
const SWEEP_CONCURRENCY = 8;

/**
 * Delivers notifications: promptly from the instance that applied the terminal transition, and
 * later from sweepers for retries and for work a dead instance left behind. Every attempt's
 * outcome is written back in one conditional write per step.
 */
export class DeliveryNotifier implements Notifier {
  readonly #options: DeliveryNotifierOptions;
  readonly #nowMs: () => number;
  readonly #random: () => number;
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(options: DeliveryNotifierOptions) {
    this.#options = options;
    this.#nowMs = options.nowMs ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  intentsFor(step: RunStep): DeliveryIntent[] {
    return selectIntents(step, this.#options.sinkConfigs);
  }

  deliverPrompt(transition: AppliedTransition): Promise<void> {
    const records = transition.intents.map(newDeliveryRecord);
    // Started on the next turn of the event loop, so the webhook's answer goes out first. Version 0
    // is the one the applying write set; a sweeper can only take over after the lease.
    const task = nextTurn().then(() => this.#attemptAll(transition.step, transition.document, 0, records));
    return this.#track(task).then(() => undefined);
  }

  sweep(): Promise<SweepReport> {
    return this.#track(this.#sweep());
  }

  /** Resolves when every prompt delivery and sweep started so far has finished. */
  async drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  async #sweep(): Promise<SweepReport> {
    const now = this.#nowMs();
    const due = await this.#options.store.findDue(now, SWEEP_BATCH);
    let claimed = 0;
    let attempts = 0;
    const queue = [...due];
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const held = await this.#options.store.claim(next, this.#nowMs() + this.#options.leaseMs);
        if (!held) continue;
        claimed++;
        attempts += await this.#attemptClaimed(held);
      }
    };
    await Promise.all(Array.from({ length: Math.min(SWEEP_CONCURRENCY, queue.length) }, worker));
    return { due: due.length, claimed, attempts };
  }

  async #attemptClaimed(held: ClaimedStep): Promise<number> {
    const parsed = v.safeParse(RunStepSchema, held.document);
    if (!parsed.success) {
      // Cannot happen for documents this service stored; settle as dead rather than loop forever.
      const dead = held.deliveries.map((d) =>
        d.state === "pending" ? { ...d, state: "dead" as const, lastError: "stored step is unreadable" } : d,
      );
      await this.#options.store.settle(held.stepId, held.version, dead, this.#nowMs());
      return 0;
    }
    return this.#attemptAll(parsed.output, held.document, held.version, held.deliveries);
  }

  // Attempts every pending delivery that is due, concurrently, then settles them in one write.
  async #attemptAll(
    step: RunStep,
    document: Record<string, unknown>,
    version: number,
    records: readonly DeliveryRecord[],
  ): Promise<number> {
    const now = this.#nowMs();
    let attempted = 0;
    const settled = await Promise.all(
      records.map(async (record) => {
        if (record.state !== "pending" || (record.nextAttemptMs !== null && record.nextAttemptMs > now))
          return record;
        attempted++;
        return this.#attempt(step, document, record);
      }),
    );
    try {
      const held = await this.#options.store.settle(step.id, version, settled, this.#nowMs());
      if (!held) this.#options.logger.warn("delivery lease lost before settling", { step_id: step.id });
    } catch (error) {
      // The due index still points at this step; the next sweep after the lease retries it.
      this.#options.logger.error("could not record delivery attempts", {
        step_id: step.id,
        error: describeError(error),
      });
    }
    return attempted;
  }

  async #attempt(
    step: RunStep,
    document: Record<string, unknown>,
    record: DeliveryRecord,
  ): Promise<DeliveryRecord> {
    const sink = this.#options.sinks.get(record.sink);
    const attempt = record.attempts + 1;
    const started = this.#nowMs();
    let result: AttemptResult;
    if (sink) {
      const notification: Notification = { event: record.event, step, document };
      try {
        result = await sink.send(notification);
      } catch (error) {
        result = { ok: false, retryable: true, error: describeError(error) };
      }
    } else {
      result = { ok: false, retryable: false, error: "sink is no longer configured" };
    }
    const next = this.#next(record, attempt, result);
    this.#options.logger.info("delivery attempt", {
      sink: record.sink,
      step_id: step.id,
      event: record.event,
      attempt,
      outcome: next.state === "pending" ? "retry" : next.state,
      latency_ms: this.#nowMs() - started,
      status: result.status,
      error: result.ok ? undefined : result.error,
    });
    return next;
  }

  #next(record: DeliveryRecord, attempt: number, result: AttemptResult): DeliveryRecord {
    if (result.ok)
      return { ...record, state: "delivered", attempts: attempt, lastError: null, nextAttemptMs: null };
    const failed = { ...record, attempts: attempt, lastError: result.error };
    if (!result.retryable) return { ...failed, state: "dead", nextAttemptMs: null };
    const delayS = this.#options.retryScheduleS[attempt - 1 - record.scheduleBase];
    if (delayS === undefined) {
      return {
        ...failed,
        state: "dead",
        lastError: `gave up after ${attempt} attempts: ${result.error}`,
        nextAttemptMs: null,
      };
    }
    // ±10% jitter spreads retries of a burst; a longer Retry-After from the sink wins.
    const delayMs = Math.max(delayS * 1000 * (0.9 + 0.2 * this.#random()), result.retryAfterMs ?? 0);
    return { ...failed, state: "pending", nextAttemptMs: Math.round(this.#nowMs() + delayMs) };
  }

  #track<T>(task: Promise<T>): Promise<T> {
    this.#inFlight.add(task);
    const done = () => this.#inFlight.delete(task);
    task.then(done, done);
    return task;
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
