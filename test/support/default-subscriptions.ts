/**
 * A sink's default `on`, written out (SPEC §6, §9): every kind's notifications (a run step's by
 * their bare status words), and PagerDuty's, what pages a person. Tests compare the parsed
 * configuration with these literals, so a change to the defaults must change them on purpose.
 */
export const DEFAULT_ON = [
  "completed",
  "failed",
  "cancelled",
  "expired",
  "response.completed",
  "response.failed",
  "response.cancelled",
  "response.incomplete",
  "agent.session.action_required",
  "agent.session.failed",
  "agent.session.idle",
];

/** PagerDuty's default `on`. */
export const PAGERDUTY_DEFAULT_ON = [
  "failed",
  "expired",
  "response.failed",
  "agent.session.action_required",
  "agent.session.failed",
];
