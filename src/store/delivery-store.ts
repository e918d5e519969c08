import type { Delivery, DeliveryIntent, DeliveryState, NotificationEvent } from "../domain/delivery.js";
import type { Page } from "./step-store.js";

/** The stored state of one delivery, as the notifier reads and writes it. */
export interface DeliveryRecord {
  readonly sink: string;
  readonly event: NotificationEvent;
  readonly state: DeliveryState;
  /** Attempts made so far. */
  readonly attempts: number;
  /** Attempts already made when the retry schedule last (re)started: a manual retry starts it again. */
  readonly scheduleBase: number;
  readonly lastError: string | null;
  /** Unix ms of the next attempt while pending; null when it is due at once or not pending. */
  readonly nextAttemptMs: number | null;
}

/** The record of a delivery just decided, before any attempt. */
export function newDeliveryRecord(intent: DeliveryIntent): DeliveryRecord {
  return { ...intent, state: "pending", attempts: 0, scheduleBase: 0, lastError: null, nextAttemptMs: null };
}

/** A step whose deliveries are due, as the due index shows it. */
export interface DueStep {
  readonly stepId: string;
  readonly dueMs: number;
}

/** A step whose deliveries this instance now holds, until the lease ends or it settles them. */
export interface ClaimedStep {
  readonly stepId: string;
  readonly version: number;
  readonly document: Record<string, unknown>;
  readonly deliveries: readonly DeliveryRecord[];
}

/** Outcome of a manual retry. */
export type RetryResult =
  | { readonly kind: "retried"; readonly delivery: Delivery }
  | { readonly kind: "not_found" }
  | { readonly kind: "not_dead"; readonly delivery: Delivery };

/** Where notification deliveries are kept: on the step item, claimed and settled conditionally. */
export interface DeliveryStore {
  /** Steps with deliveries due at or before `nowMs`, across every shard of the due index. */
  findDue(nowMs: number, limit: number): Promise<DueStep[]>;
  /** Takes a due step for this instance until `leaseUntilMs`; null when another instance got it first. */
  claim(due: DueStep, leaseUntilMs: number): Promise<ClaimedStep | null>;
  /**
   * Writes the deliveries back after attempts, in one conditional write on the version held.
   * Returns false when the hold was lost (the lease ran out and someone else claimed the step).
   */
  settle(
    stepId: string,
    version: number,
    deliveries: readonly DeliveryRecord[],
    nowMs: number,
  ): Promise<boolean>;
  listDeliveries(state: "pending" | "dead", limit: number, cursor: string | null): Promise<Page<Delivery>>;
  /** Makes a dead delivery pending again, due now, with a fresh retry schedule. */
  retry(stepId: string, sink: string, nowMs: number): Promise<RetryResult>;
}
