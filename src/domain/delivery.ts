import type { SubjectKindName } from "./subject.js";

/** The notification a step that stayed in progress too long produces (the stalled-step watchdog). */
export const STALLED_EVENT = "run_step.stalled";

/**
 * Name of a notification: `<kind's event prefix>.<status>` (`run_step.failed`, `response.incomplete`,
 * `agent.session.action_required`), or a kind's `.stalled` watchdog notice. Which names exist is
 * declared by the subject kinds (`ALL_EVENTS` in subject-kinds.ts).
 */
export type NotificationEvent = string;

/** Whether a notification is the watchdog's stall notice of its kind. */
export const isStallEvent = (event: NotificationEvent): boolean => event.endsWith(".stalled");

/**
 * How a stall notification is told apart in keys and ids: appended to the sink's name, which
 * cannot contain `~`, so it can never be mistaken for a sink or a step id.
 */
export const STALLED_MARK = "~stalled";

/**
 * How a subject of another kind than a run step is told apart in keys and ids, the same way: a run
 * step's marks are empty, so every key and id written before there were other kinds still reads.
 */
export const KIND_MARK: Readonly<Record<SubjectKindName, string>> = {
  run_step: "",
  response: "~response",
  agent_session: "~agent_session",
};

/** The sink part of a delivery's key and id: the sink's name, then its kind's and stall marks. */
export const markedSink = (kind: SubjectKindName, sink: string, stalled: boolean): string =>
  `${sink}${KIND_MARK[kind]}${stalled ? STALLED_MARK : ""}`;

/** What a notification is about, as a delivery names it. */
export interface SubjectRef {
  readonly kind: SubjectKindName;
  /** The subject's id: a step, a response; for an agent session, the OpenAI event that owes it. */
  readonly id: string;
  readonly runId: string;
}

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

/**
 * One notification of one subject to one sink: the one record the notifier, the store and the API
 * share.
 */
export interface Delivery {
  readonly kind: SubjectKindName;
  /** The subject it is about: a step or response id, or for a session the event id that owes it. */
  readonly subjectId: string;
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
export function newDelivery(intent: DeliveryIntent, subject: SubjectRef, nowMs: number): Delivery {
  return {
    kind: subject.kind,
    subjectId: subject.id,
    runId: subject.runId,
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

/** Which of a subject's notifications to a sink: the one it owes, or the watchdog's stall notice. */
export interface DeliveryRef {
  readonly kind: SubjectKindName;
  readonly subjectId: string;
  readonly sink: string;
  readonly stalled?: boolean;
}

/** The reference of a delivery. */
export const refOf = (d: Delivery): Required<DeliveryRef> => ({
  kind: d.kind,
  subjectId: d.subjectId,
  sink: d.sink,
  stalled: isStallEvent(d.event),
});

/**
 * The public id of a delivery: `<subject>:<sink>` for a run step's notification, with its kind's
 * mark after the sink for other kinds (`resp_1:ops~response`) and `~stalled` for a stall notice.
 * Sink names cannot contain `:` or `~`, so it splits at the last `:`.
 */
export function deliveryId(ref: DeliveryRef): string {
  return `${ref.subjectId}:${markedSink(ref.kind, ref.sink, ref.stalled === true)}`;
}

/** Splits a delivery id into its subject, sink, kind and stall mark, or null when it is not one. */
export function parseDeliveryId(id: string): Required<DeliveryRef> | null {
  const at = id.lastIndexOf(":");
  if (at <= 0) return null;
  const marked = parseMarkedSink(id.slice(at + 1));
  return marked ? { ...marked, subjectId: id.slice(0, at) } : null;
}

/** Reads the sink part of a delivery's key or id (see {@link markedSink}); null when it is not one. */
export function parseMarkedSink(part: string): Omit<Required<DeliveryRef>, "subjectId"> | null {
  let sink = part;
  const stalled = sink.endsWith(STALLED_MARK);
  if (stalled) sink = sink.slice(0, -STALLED_MARK.length);
  let kind: SubjectKindName = "run_step";
  for (const [name, mark] of Object.entries(KIND_MARK) as [SubjectKindName, string][]) {
    if (mark !== "" && sink.endsWith(mark)) {
      kind = name;
      sink = sink.slice(0, -mark.length);
      break;
    }
  }
  return sink !== "" && !sink.includes("~") ? { kind, sink, stalled } : null;
}

/** Why a delivery whose subject is no longer stored (its retention ran out first) is dead. */
export const missingSubject = (d: Pick<Delivery, "kind">): string =>
  `stored ${d.kind.replace("_", " ")} is missing`;

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
