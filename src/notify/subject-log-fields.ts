import type { Delivery } from "../domain/delivery.js";
import type { LogFields } from "../observability/logger.js";

/** The log fields naming a subject: `step_id` for a run step, as every line said before other kinds. */
export function subjectLogFields(kind: Delivery["kind"], id: string): LogFields {
  return kind === "run_step" ? { step_id: id } : { subject_kind: kind, subject_id: id };
}
