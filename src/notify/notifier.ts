import type { DeliveryIntent } from "../domain/delivery.js";
import type { RunStep } from "../domain/run-step-schema.js";

/** A terminal transition that was just applied, with the notifications it made due. */
export interface AppliedTransition {
  readonly step: RunStep;
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

/** Decides who hears about a terminal step, and tells them. */
export interface Notifier {
  /** The sinks subscribed to this step's terminal status, after filters. */
  intentsFor(step: RunStep): DeliveryIntent[];
  /** Delivers a just-applied transition's notifications now; never rejects. */
  deliverPrompt(transition: AppliedTransition): Promise<void>;
  /** Attempts due deliveries of every sink until none is due or the sweep budget is spent. */
  sweep(): Promise<SweepReport>;
}
