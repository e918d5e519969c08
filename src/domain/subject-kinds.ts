import type { SubjectKind, SubjectKindName } from "./subject.js";
import { AGENT_SESSION_KIND } from "./subjects/agent-session-kind.js";
import { RESPONSE_KIND } from "./subjects/response-kind.js";
import { RUN_STEP_KIND } from "./subjects/run-step-kind.js";

/** Every subject kind, by name: the one place a new producer's kind is added. */
export const SUBJECT_KINDS: Readonly<Record<SubjectKindName, SubjectKind>> = {
  run_step: RUN_STEP_KIND,
  response: RESPONSE_KIND,
  agent_session: AGENT_SESSION_KIND,
};

/** The name of a notification: `<kind's event prefix>.<status>` (`run_step.failed`, `response.incomplete`). */
export const eventName = (kind: SubjectKind, status: string): string => `${kind.eventPrefix}.${status}`;

/** Every notification a sink can subscribe to by full name, the watchdog's `.stalled` ones included. */
export const ALL_EVENTS: readonly string[] = Object.values(SUBJECT_KINDS).flatMap((kind) =>
  [...kind.notifiable, "stalled"].map((status) => eventName(kind, status)),
);

/**
 * The kind and status word a notification name is about, or null when it names none
 * (`agent.session.idle` → agent_session, idle).
 */
export function parseEventName(event: string): { kind: SubjectKind; status: string } | null {
  for (const kind of Object.values(SUBJECT_KINDS)) {
    if (!event.startsWith(`${kind.eventPrefix}.`)) continue;
    const status = event.slice(kind.eventPrefix.length + 1);
    if (status === "stalled" || kind.notifiable.includes(status)) return { kind, status };
  }
  return null;
}
