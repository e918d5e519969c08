import type { DeliveryIntent } from "../../src/domain/delivery.js";
import type { Notification } from "../../src/domain/notification-payloads.js";
import { RUN_STEP_KIND } from "../../src/domain/subjects/run-step-kind.js";
import type { AppliedTransition } from "../../src/notify/notifier.js";

/** A run step's notification, as the notifier renders it from the stored document. */
export function stepNotification(
  event: string,
  document: Record<string, unknown>,
  extra: Partial<Pick<Notification, "test" | "stalledAtMs">> = {},
): Notification {
  return { event, subjectId: String(document.id), subject: RUN_STEP_KIND.view(document), document, ...extra };
}

/** A run step's applied transition owing `intents`, as the ingest path hands it over. */
export function stepTransition(
  document: Record<string, unknown>,
  intents: readonly DeliveryIntent[],
  extra: Partial<Pick<AppliedTransition, "requestId" | "stalledAtMs">> = {},
): AppliedTransition {
  const subject = RUN_STEP_KIND.view(document);
  return {
    ref: { kind: "run_step", id: subject.id, runId: subject.runId },
    subject,
    document,
    intents,
    ...extra,
  };
}
