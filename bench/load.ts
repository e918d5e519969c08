import autocannon, { type AutocannonRequest, type AutocannonResult } from "autocannon";
import type { SignedEvent } from "./events.js";

/** The ingest route. */
export const INGEST_PATH = "/v1/webhooks/run-steps";

const OUTCOME = /"outcome":"([a-z]+)"/;

/** Tallies ingest answers by outcome (`http_<status>` when the body names none). */
export function outcomeCounter() {
  const counts: Record<string, number> = {};
  return {
    counts,
    record(status: number, body: string): string {
      const outcome = OUTCOME.exec(body)?.[1] ?? `http_${status}`;
      counts[outcome] = (counts[outcome] ?? 0) + 1;
      return outcome;
    },
    /** Answers that stored something: new steps and transitions. */
    applied: () => (counts.created ?? 0) + (counts.updated ?? 0),
  };
}

/** A fixed request for autocannon. */
export function staticRequest(event: SignedEvent): AutocannonRequest {
  return { method: "POST", path: INGEST_PATH, headers: event.headers, body: event.body };
}

/**
 * Runs autocannon where every request is a different event, taken from `nextEvent` as the
 * connection is about to send it (so no two requests carry the same step), and `onAnswer` sees
 * each answer with that event's step id.
 */
export function runUniqueEvents(options: {
  url: string;
  connections: number;
  seconds: number;
  /** Sends exactly this many requests instead of running for `seconds`. */
  amount?: number;
  overallRate?: number;
  /** The route; the run step ingest route by default. */
  path?: string;
  nextEvent: () => SignedEvent;
  onAnswer: (status: number, body: string, stepId: string) => void;
}): Promise<AutocannonResult> {
  const path = options.path ?? INGEST_PATH;
  const request: AutocannonRequest = {
    method: "POST",
    path,
    setupRequest(req, context) {
      const event = options.nextEvent();
      // One request in flight per connection (no pipelining), so the context names its event.
      context.stepId = event.stepId;
      return { ...req, headers: event.headers, body: event.body };
    },
    onResponse(status, body, context) {
      options.onAnswer(status, body, String(context.stepId));
    },
  };
  return autocannon({
    url: `${options.url}${path}`,
    connections: options.connections,
    ...(options.amount ? { amount: options.amount } : { duration: options.seconds }),
    timeout: 10,
    ...(options.overallRate ? { overallRate: options.overallRate } : {}),
    requests: [request],
  });
}

/** Runs autocannon over a fixed set of requests, each connection cycling through them. */
export function runStatic(options: {
  url: string;
  connections: number;
  seconds: number;
  requests: AutocannonRequest[];
}): Promise<AutocannonResult> {
  return autocannon({
    url: `${options.url}${INGEST_PATH}`,
    connections: options.connections,
    duration: options.seconds,
    timeout: 10,
    requests: options.requests,
  });
}
