import type { RunStepStatus } from "../run-step-schema.js";

/**
 * An item's status in the run step vocabulary (SPEC §4: in_progress, completed, failed,
 * cancelled, expired). Each item type has its own words for "working" (searching, interpreting,
 * generating, calling), all in_progress. `incomplete` (the item was cut off: the output budget ran
 * out, or the response was interrupted) becomes `expired`, not `failed`: the item did not fail and
 * carries no error, it stopped before finishing and never will, which is what `expired` says of a
 * run step. `settled` is the status the item takes when it has none of its own, and when its own
 * is not terminal while its parent has settled for good (a failed response leaves items marked
 * in_progress: left so, they would stay open steps forever and trip the stall watchdog).
 * An unknown status word is read as in_progress unless the parent settles it.
 */
export function itemStepStatus(
  itemStatus: string | null | undefined,
  settled: RunStepStatus | null,
  fallback: RunStepStatus,
): RunStepStatus {
  const own = mapped(itemStatus);
  if (own === null) return settled ?? fallback;
  if (own === "in_progress" && settled !== null) return settled;
  return own;
}

function mapped(status: string | null | undefined): RunStepStatus | null {
  switch (status) {
    case undefined:
    case null:
      return null;
    case "completed":
      return "completed";
    case "failed":
      return "failed";
    case "cancelled":
      return "cancelled";
    case "incomplete":
      return "expired";
    default:
      return "in_progress";
  }
}
