import type { TerminalStatus } from "./run-step-schema.js";

/** Name of the notification a terminal status produces. */
export type NotificationEvent = `run_step.${TerminalStatus}`;

/** Where one notification stands. An attempt in flight is still `pending`. */
export type DeliveryState = "pending" | "delivered" | "dead";

/** A notification owed to one sink, decided by the write that applies the terminal transition. */
export interface DeliveryIntent {
  readonly sink: string;
  readonly event: NotificationEvent;
}

/** One notification of one step to one sink, as the operator API shows it. */
export interface Delivery {
  readonly id: string;
  readonly stepId: string;
  readonly runId: string;
  readonly sink: string;
  readonly event: NotificationEvent;
  readonly state: DeliveryState;
  readonly attempts: number;
  readonly lastError: string | null;
  /** Unix seconds of the next attempt while pending, else null. */
  readonly nextAttemptAt: number | null;
}

/** The public id of a delivery: sink names cannot contain `:`, so it splits at the last one. */
export function deliveryId(stepId: string, sink: string): string {
  return `${stepId}:${sink}`;
}

/** Splits a delivery id into its step and sink, or null when it is not one. */
export function parseDeliveryId(id: string): { stepId: string; sink: string } | null {
  const at = id.lastIndexOf(":");
  if (at <= 0 || at === id.length - 1) return null;
  return { stepId: id.slice(0, at), sink: id.slice(at + 1) };
}
