import { type DeliveryIntent, type NotificationEvent, STALLED_EVENT } from "./delivery.js";
import type { RunStep, TerminalStatus } from "./run-step-schema.js";
import type { SinkConfig } from "./sink-config-schema.js";

/** The notification a terminal status produces. */
export function notificationEvent(status: TerminalStatus): NotificationEvent {
  return `run_step.${status}`;
}

/**
 * The sinks that must hear about a step reaching a terminal status: subscribed to that status
 * (`on`), and matching every filter given (`assistant_id` among those listed, each `metadata` pair).
 */
export function selectIntents(step: RunStep, sinks: readonly SinkConfig[]): DeliveryIntent[] {
  // Stryker disable next-line ConditionalExpression,StringLiteral: `on` lists terminal statuses only (OnSchema), so no sink matches in_progress anyway; this guard narrows the type.
  if (step.status === "in_progress") return [];
  return select(step, sinks, step.status, notificationEvent(step.status));
}

/** The sinks that must hear that a step stalled: subscribed to `stalled`, and matching every filter. */
export function selectStallIntents(step: RunStep, sinks: readonly SinkConfig[]): DeliveryIntent[] {
  return select(step, sinks, "stalled", STALLED_EVENT);
}

function select(
  step: RunStep,
  sinks: readonly SinkConfig[],
  subscription: SinkConfig["on"][number],
  event: NotificationEvent,
): DeliveryIntent[] {
  const intents: DeliveryIntent[] = [];
  for (const sink of sinks) {
    if (!sink.on.includes(subscription)) continue;
    const filter = sink.filter;
    if (filter?.assistant_id && !filter.assistant_id.includes(step.assistant_id)) continue;
    if (filter?.metadata) {
      const metadata = step.metadata ?? {};
      const matches = Object.entries(filter.metadata).every(
        ([key, value]) => Object.hasOwn(metadata, key) && metadata[key] === value,
      );
      if (!matches) continue;
    }
    intents.push({ sink: sink.name, event });
  }
  return intents;
}
