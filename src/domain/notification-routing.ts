import type { DeliveryIntent, NotificationEvent } from "./delivery.js";
import type { SinkConfig } from "./sink-config-schema.js";
import { STALLED, type SubjectView } from "./subject.js";
import { eventName, SUBJECT_KINDS } from "./subject-kinds.js";

/** The notification a subject reaching `status` produces, or null when that status owes none. */
export function notificationEvent(
  subject: Pick<SubjectView, "kind">,
  status: string,
): NotificationEvent | null {
  const kind = SUBJECT_KINDS[subject.kind];
  return kind.notifiable.includes(status) ? eventName(kind, status) : null;
}

/**
 * Whether a sink's `on` takes a notification: by its full name (`response.failed`), or, for a run
 * step, by the bare status word every sink was configured with before there were other kinds.
 */
export function subscribes(
  on: readonly string[],
  subject: Pick<SubjectView, "kind">,
  event: NotificationEvent,
): boolean {
  if (on.includes(event)) return true;
  const prefix = `${SUBJECT_KINDS.run_step.eventPrefix}.`;
  return subject.kind === "run_step" && event.startsWith(prefix) && on.includes(event.slice(prefix.length));
}

/** Whether a subject passes every filter of a sink (`assistant_id`, `model`, `prompt_id`, `metadata`). */
export function passesFilter(filter: SinkConfig["filter"], subject: SubjectView): boolean {
  if (!filter) return true;
  if (filter.assistant_id && !filter.assistant_id.includes(subject.assistantId)) return false;
  if (filter.model && !(subject.model !== null && filter.model.includes(subject.model))) return false;
  if (filter.prompt_id && !(subject.promptId !== null && filter.prompt_id.includes(subject.promptId)))
    return false;
  if (filter.metadata) {
    const metadata = subject.metadata ?? {};
    const matches = Object.entries(filter.metadata).every(
      ([key, value]) => Object.hasOwn(metadata, key) && metadata[key] === value,
    );
    if (!matches) return false;
  }
  return true;
}

/** The sinks that must hear of `event` about this subject: subscribed to it, and matching every filter. */
export function selectIntents(
  subject: SubjectView,
  event: NotificationEvent | null,
  sinks: readonly SinkConfig[],
): DeliveryIntent[] {
  if (event === null) return [];
  return sinks
    .filter((sink) => subscribes(sink.on, subject, event) && passesFilter(sink.filter, subject))
    .map((sink) => ({ sink: sink.name, event }));
}

/** The sinks that must hear that a subject stalled: subscribed to its kind's `stalled`, and matching every filter. */
export function selectStallIntents(subject: SubjectView, sinks: readonly SinkConfig[]): DeliveryIntent[] {
  return selectIntents(subject, eventName(SUBJECT_KINDS[subject.kind], STALLED), sinks);
}
