import type { DeliveryIntent, SubjectRef } from "../domain/delivery.js";
import type { SubjectView } from "../domain/subject.js";

/** A transition that was just applied (a terminal step or response, a session's event), with the notifications it made due. */
export interface AppliedTransition {
  /** What the deliveries are about: for an agent session, the event that owes them. */
  readonly ref: SubjectRef;
  readonly subject: SubjectView;
  /** The stored object the notifications carry. */
  readonly document: Record<string, unknown>;
  readonly intents: readonly DeliveryIntent[];
  /** The request that applied it: its attempts' log lines carry the same id. */
  readonly requestId?: string;
  /** Unix ms the watchdog had found the step stalled before it ended; its notifications say so. */
  readonly stalledAtMs?: number | null;
}

/** What one sweep did. Every attempt counts once, under exactly one outcome. */
export interface SweepReport {
  /** Deliveries the outbox recovery wrote for transitions whose instance died before recording them. */
  readonly recovered: number;
  /** Delivery attempts made (probes included). */
  readonly attempts: number;
  readonly delivered: number;
  /** Failed and scheduled again. */
  readonly retrying: number;
  readonly dead: number;
  /** Answered `410 Gone`: the sink is disabled and the delivery parked. */
  readonly parked: number;
  /** Attempts that were probes of a failing sink. */
  readonly probes: number;
  readonly durationMs: number;
  /** It stopped on its time or attempt budget rather than for want of due work: sweep again soon. */
  readonly exhausted: boolean;
}

/** Decides who hears about a subject's transition, and tells them. */
export interface Notifier {
  /** The sinks subscribed to the notification this subject's reaching `status` owes, after filters. */
  intentsFor(subject: SubjectView, status: string): DeliveryIntent[];
  /** Delivers a just-applied transition's notifications now; never rejects. */
  deliverPrompt(transition: AppliedTransition): Promise<void>;
  /** Attempts due deliveries of every sink until none is due or the sweep budget is spent. */
  sweep(): Promise<SweepReport>;
}
