import { ATTEMPT_LOG_SIZE, type Delivery, type DeliveryAttempt } from "./delivery.js";

/** What one delivery attempt came to. `error` is safe to store and show: no URL, token or key. */
export type AttemptResult =
  | { readonly ok: true; readonly status?: number }
  | {
      readonly ok: false;
      /** Network error, time-out, 5xx, 408 or 429: worth another attempt. */
      readonly retryable: boolean;
      /** `410 Gone`: the endpoint is gone for good; the sink is disabled and the delivery parked. */
      readonly gone?: boolean;
      readonly error: string;
      readonly status?: number;
      /** The sink's `Retry-After`, in ms, when it sent one. */
      readonly retryAfterMs?: number;
    };

/** How failed attempts are retried (SPEC §6). */
export interface RetryPolicy {
  /** Seconds to wait before each retry (NOTIFY_RETRY_SCHEDULE). */
  readonly scheduleS: readonly number[];
  /** Jitter source in [0, 1). */
  readonly random: () => number;
}

/** The share of each delay that jitter may add or take away. */
export const RETRY_JITTER = 0.1;

/** What an attempt's timing was. */
export interface AttemptTiming {
  readonly startedMs: number;
  readonly endedMs: number;
}

/**
 * The delivery after one attempt: delivered on success; parked (pending, its sink disabled) on
 * `410 Gone`; dead at once on any other final failure; otherwise pending until the next delay of
 * the schedule (±10% jitter, or the sink's `Retry-After` when longer, capped at the schedule's
 * longest delay), or dead when the schedule is used up. The attempt joins the delivery's log.
 */
export function afterAttempt(
  delivery: Delivery,
  result: AttemptResult,
  timing: AttemptTiming,
  policy: RetryPolicy,
): Delivery {
  const attempt = delivery.attempts + 1;
  const entry: DeliveryAttempt = {
    attempt,
    at: timing.startedMs,
    status: result.status ?? null,
    latencyMs: Math.max(0, timing.endedMs - timing.startedMs),
    error: result.ok ? null : result.error,
  };
  const log = [...delivery.log, entry].slice(-ATTEMPT_LOG_SIZE);
  const base = { ...delivery, attempts: attempt, log };
  if (result.ok) return { ...base, state: "delivered", lastError: null, nextAttemptMs: null };
  const failed = { ...base, lastError: result.error };
  if (result.gone) return { ...failed, state: "pending", nextAttemptMs: timing.endedMs };
  if (!result.retryable) return { ...failed, state: "dead", nextAttemptMs: null };
  const delayS = policy.scheduleS[attempt - 1 - delivery.scheduleBase];
  if (delayS === undefined) {
    return {
      ...failed,
      state: "dead",
      lastError: `gave up after ${attempt} attempts: ${result.error}`,
      nextAttemptMs: null,
    };
  }
  const jittered = delayS * 1000 * (1 - RETRY_JITTER + 2 * RETRY_JITTER * policy.random());
  // A sink may ask for more time, but never for longer than the schedule would ever wait.
  const longestMs = Math.max(...policy.scheduleS) * 1000;
  const asked = Math.min(result.retryAfterMs ?? 0, longestMs);
  return {
    ...failed,
    state: "pending",
    nextAttemptMs: Math.round(timing.endedMs + Math.max(jittered, asked)),
  };
}

/** A dead delivery made pending again by an operator: due at `dueMs`, with a fresh schedule. */
export function revived(delivery: Delivery, dueMs: number): Delivery {
  return { ...delivery, state: "pending", scheduleBase: delivery.attempts, nextAttemptMs: dueMs };
}
