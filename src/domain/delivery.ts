import type { TerminalStatus } from "./run-step-schema.js";

/** The notification a step that stayed in progress too long produces (the stalled-step watchdog). */
export const STALLED_EVENT = "run_step.stalled";

/** Name of a notification: one per terminal status, and the watchdog's `run_step.stalled`. */
export type NotificationEvent = `run_step.${TerminalStatus}` | typeof STALLED_EVENT;

/**
 * How a stall notification is told apart in keys and ids: appended to the sink's name, which
 * cannot contain `~`, so it can never be mistaken for a sink or a step id.
 */
export const STALLED_MARK = "~stalled";

/**
 * Where one notification stands as stored. An attempt in flight is still `pending`; a pending
 * delivery to a disabled sink is shown as `parked` (see {@link deliveryView}).
 */
export type DeliveryState = "pending" | "delivered" | "dead";

/** A delivery's state as the operator API shows it. */
export type DeliveryViewState = DeliveryState | "parked";

/** A notification owed to one sink, decided by the write that applies the terminal transition. */
export interface DeliveryIntent {
  readonly sink: string;
  readonly event: NotificationEvent;
}

/** One attempt to deliver a notification, as the attempt log keeps it. */
export interface DeliveryAttempt {
  /** 1 for the first attempt of the delivery, counting every attempt since. */
  readonly attempt: number;
  /** Unix ms the attempt started. */
  readonly at: number;
  /** The sink's HTTP status, when it answered. */
  readonly status: number | null;
  readonly latencyMs: number;
  /** What went wrong, safe to show (no URL, token or key); null when delivered. */
  readonly error: string | null;
}

/** How many attempts a delivery keeps in its log: the most recent ones. */
export const ATTEMPT_LOG_SIZE = 10;

/** One notification of one step to one sink: the one record the notifier, the store and the API share. */
export interface Delivery {
  readonly stepId: string;
  readonly runId: string;
  readonly sink: string;
  readonly event: NotificationEvent;
  readonly state: DeliveryState;
  /** Attempts made so far. */
  readonly attempts: number;
  /** Attempts already made when the retry schedule last (re)started: a manual retry starts it again. */
  readonly scheduleBase: number;
  readonly lastError: string | null;
  /** Unix ms of the next attempt while pending (or the end of an operator's hold on it); else null. */
  readonly nextAttemptMs: number | null;
  /** Unix ms the delivery was first recorded. */
  readonly createdAtMs: number;
  /** The most recent attempts, oldest first, at most {@link ATTEMPT_LOG_SIZE}. */
  readonly log: readonly DeliveryAttempt[];
  /** Store version; every change to a delivery is conditional on the version its writer read. */
  readonly version: number;
}

/** A new delivery, before any attempt. */
export function newDelivery(intent: DeliveryIntent, stepId: string, runId: string, nowMs: number): Delivery {
  return {
    stepId,
    runId,
    sink: intent.sink,
    event: intent.event,
    state: "pending",
    attempts: 0,
    scheduleBase: 0,
    lastError: null,
    nextAttemptMs: nowMs,
    createdAtMs: nowMs,
    log: [],
    version: 0,
  };
}

/** Which of a step's notifications to a sink: the terminal one, or the watchdog's stall notice. */
export interface DeliveryRef {
  readonly stepId: string;
  readonly sink: string;
  readonly stalled?: boolean;
}

/**
 * The public id of a delivery: `<step>:<sink>`, or `<step>:<sink>~stalled` for a stall notice.
 * Sink names cannot contain `:`, so it splits at the last one.
 */
export function deliveryId(stepId: string, sink: string, event?: NotificationEvent): string {
  return `${stepId}:${sink}${event === STALLED_EVENT ? STALLED_MARK : ""}`;
}

/** Splits a delivery id into its step, sink and kind, or null when it is not one. */
export function parseDeliveryId(id: string): Required<DeliveryRef> | null {
  const at = id.lastIndexOf(":");
  if (at <= 0 || at === id.length - 1) return null;
  const tail = id.slice(at + 1);
  const stalled = tail.endsWith(STALLED_MARK);
  const sink = stalled ? tail.slice(0, -STALLED_MARK.length) : tail;
  return sink ? { stepId: id.slice(0, at), sink, stalled } : null;
}

/** The state an operator sees: a pending delivery to a disabled sink is parked, not due. */
export function deliveryView(
  delivery: Delivery,
  sinkDisabled: boolean,
): { state: DeliveryViewState; nextAttemptMs: number | null } {
  if (delivery.state === "pending" && sinkDisabled) return { state: "parked", nextAttemptMs: null };
  return {
    state: delivery.state,
    nextAttemptMs: delivery.state === "pending" ? delivery.nextAttemptMs : null,
  };
}
