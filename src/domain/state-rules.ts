import { isTerminalStatus, type RunStepStatus } from "./run-step-schema.js";

/** What applying one snapshot did to the stored step. */
export type ApplyOutcome = "created" | "updated" | "unchanged" | "stale" | "conflict";

/**
 * Names the outcome of a snapshot that the store's conditional write refused, from the stored
 * status it met. The rules themselves (SPEC §4) are enforced by that write:
 * - absent → stored (`created`); a terminal snapshot replaces a non-terminal one (`updated`);
 * - between non-terminal snapshots the later `webhook-timestamp` wins (`updated`), others are `stale`;
 * - a terminal step never changes: the same status again is `unchanged`, another terminal status
 *   a `conflict`, an `in_progress` snapshot `stale`.
 */
export function outcomeOfRefusal(storedStatus: RunStepStatus, incomingStatus: RunStepStatus): ApplyOutcome {
  if (!isTerminalStatus(storedStatus) || !isTerminalStatus(incomingStatus)) return "stale";
  return storedStatus === incomingStatus ? "unchanged" : "conflict";
}
