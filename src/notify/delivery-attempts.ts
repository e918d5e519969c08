import { type Delivery, missingSubject } from "../domain/delivery.js";
import type { Notification } from "../domain/notification-payloads.js";
import { type AttemptResult, afterAttempt, type RetryPolicy } from "../domain/retry-policy.js";
import { SUBJECT_KINDS } from "../domain/subject-kinds.js";
import { describeError, type LogFields, type Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { SubjectDocument } from "../store/delivery-store.js";
import type { HealthTracker } from "./health-tracker.js";
import type { Sink } from "./sink.js";
import { subjectLogFields } from "./subject-log-fields.js";

/** What {@link DeliveryAttempts} works with. */
export interface DeliveryAttemptsOptions {
  readonly health: HealthTracker;
  readonly logger: Logger;
  readonly policy: RetryPolicy;
  /** Clock in Unix ms. */
  readonly nowMs: () => number;
  /** Counts attempts, where the runtime keeps counters. */
  readonly metrics?: Metrics | undefined;
}

/**
 * One attempt at a time: sends a delivery's notification, applies the retry policy to what came of
 * it, records the sink's health, counts it and writes its log line. The caller holds the sink's lane
 * and writes the delivery back.
 */
export class DeliveryAttempts {
  readonly #o: DeliveryAttemptsOptions;
  #attempting = 0;

  constructor(options: DeliveryAttemptsOptions) {
    this.#o = options;
  }

  /** Attempts being sent right now. */
  get inFlight(): number {
    return this.#attempting;
  }

  /** Attempts a stored delivery with its subject's stored document (dead when the subject is gone). */
  async attemptStored(
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
    return this.attempt(sink, delivery, notificationOf(delivery, stored), probe);
  }

  /** Sends `notification` for `delivery` and returns the delivery as it stands after the attempt. */
  async attempt(
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

  /** Sends a test notification (no delivery of its own) and records the sink's health from it. */
  async sendTest(
    sink: Sink,
    notification: Notification,
  ): Promise<{ result: AttemptResult; latencyMs: number }> {
    const started = this.#o.nowMs();
    const result = await sendSafely(sink, notification);
    const ended = this.#o.nowMs();
    await this.#o.health.record(sink.name, result, ended, false);
    return { result, latencyMs: ended - started };
  }

  async #attemptCounted(
    sink: Sink,
    delivery: Delivery,
    notification: Notification,
    probe: boolean,
    context: LogFields,
  ): Promise<Delivery> {
    const startedMs = this.#o.nowMs();
    const result = await sendSafely(sink, notification);
    const endedMs = this.#o.nowMs();
    const after = afterAttempt(delivery, result, { startedMs, endedMs }, this.#o.policy);
    try {
      await this.#o.health.record(sink.name, result, endedMs, probe);
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
      ...subjectLogFields(delivery.kind, delivery.subjectId),
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
}

/**
 * What a stored delivery sends: its subject's stored document as its kind reads it, leniently. It
 * is not validated again: a document valid when its intent was written stays sendable however the
 * schemas have moved since (a tightened schema never kills queued deliveries).
 */
export function notificationOf(delivery: Delivery, stored: SubjectDocument): Notification {
  const { document, stalledAtMs } = stored;
  const subject = SUBJECT_KINDS[delivery.kind].view(document);
  return { event: delivery.event, subjectId: delivery.subjectId, subject, document, stalledAtMs };
}

async function sendSafely(sink: Sink, notification: Notification): Promise<AttemptResult> {
  try {
    return await sink.send(notification);
  } catch (error) {
    // Sinks classify their own failures; anything they throw is a bug or a refusal before sending.
    return { ok: false, retryable: false, error: `could not send: ${describeError(error)}` };
  }
}

function outcomeOf(after: Delivery, result: AttemptResult): string {
  if (!result.ok && result.gone) return "parked";
  return after.state === "pending" ? "retry" : after.state;
}
