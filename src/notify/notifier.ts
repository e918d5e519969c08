import type { DeliveryIntent } from "../domain/delivery.js";
import type { RunStep } from "../domain/run-step-schema.js";

/** A terminal transition that was just applied, with the notifications it made due. */
export interface AppliedTransition {
  readonly step: RunStep;
  readonly document: Record<string, unknown>;
  readonly intents: readonly DeliveryIntent[];
}

/** What one sweep did. */
export interface SweepReport {
  /** Steps found with deliveries due. */
  readonly due: number;
  /** Of those, the ones this sweep claimed (others were taken by a concurrent sweeper). */
  readonly claimed: number;
  /** Delivery attempts made. */
  readonly attempts: number;
}

/** Decides who hears about a terminal step, and tells them. */
export interface Notifier {
  /** The sinks subscribed to this step's terminal status, after filters. */
  intentsFor(step: RunStep): DeliveryIntent[];
  /** Delivers a just-applied transition's notifications now; never rejects. */
  deliverPrompt(transition: AppliedTransition): Promise<void>;
  /** Finds due deliveries, claims each step with a lease, and attempts them. Safe to run anywhere, at once. */
  sweep(): Promise<SweepReport>;
}
