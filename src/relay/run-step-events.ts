import { bytesToBase64 } from "../domain/webhook-secret.js";

/** The run step snapshot events the relay forwards (SPEC §3); `.delta` only when asked. */
export const RUN_STEP_SNAPSHOT_EVENTS = [
  "thread.run.step.created",
  "thread.run.step.in_progress",
  "thread.run.step.completed",
  "thread.run.step.failed",
  "thread.run.step.cancelled",
  "thread.run.step.expired",
] as const;

const DELTA_EVENT = "thread.run.step.delta";
const SNAPSHOTS: ReadonlySet<string> = new Set(RUN_STEP_SNAPSHOT_EVENTS);
// A Map, not an object literal: a status such as "constructor" must find nothing, not Object's own.
const STATUS_EVENT: ReadonlyMap<unknown, string> = new Map([
  ["in_progress", "thread.run.step.in_progress"],
  ["completed", "thread.run.step.completed"],
  ["failed", "thread.run.step.failed"],
  ["cancelled", "thread.run.step.cancelled"],
  ["expired", "thread.run.step.expired"],
]);

/** One event on its way to stepwatch: the webhook body and what keeps it ordered and de-duplicated. */
export interface RelayEvent {
  /** The `webhook-id`: derived from the content, so every redelivery (and every replay) is one message. */
  readonly id: string;
  /** Events of one step are sent one after another, in the order they were seen. */
  readonly stepId: string;
  /** The stream event name, `thread.run.step.<…>`. */
  readonly event: string;
  /** The JSON body: the stream-style event `{ "event", "data" }` SPEC §3 accepts. */
  readonly body: string;
}

/** Which events to forward. */
export interface ExtractOptions {
  /** Forward `thread.run.step.delta` too (stepwatch acknowledges and ignores them). Default false. */
  readonly includeDeltas?: boolean;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * The relay event for one Assistants stream event (`event` name plus its data, as an object or as
 * the raw JSON text of an SSE `data:` field), or null when it is not a run step event to forward.
 */
export async function runStepEventOf(
  event: string,
  data: unknown,
  options: ExtractOptions = {},
): Promise<RelayEvent | null> {
  const wanted = SNAPSHOTS.has(event) || (options.includeDeltas === true && event === DELTA_EVENT);
  if (!wanted) return null;
  let parsed: unknown = data;
  if (typeof data === "string") {
    try {
      parsed = JSON.parse(data);
    } catch {
      // Not JSON (`[DONE]`, a torn line): it stays a string, which is no step either.
    }
  }
  if (!isRecord(parsed) || typeof parsed.id !== "string") return null;
  return await relayEvent(event, parsed.id, JSON.stringify({ event, data: parsed }));
}

/**
 * Run step events found in a JSON response of the run step list
 * (`GET …/threads/{thread}/runs/{run}/steps`) or retrieve (`…/steps/{step}`) endpoints: each step
 * becomes the snapshot event of its status.
 */
export async function runStepEventsOfJson(json: unknown): Promise<RelayEvent[]> {
  const steps = isRecord(json) && json.object === "list" && Array.isArray(json.data) ? json.data : [json];
  const out: RelayEvent[] = [];
  for (const step of steps) {
    if (!isRecord(step) || step.object !== "thread.run.step" || typeof step.id !== "string") continue;
    const event = STATUS_EVENT.get(step.status);
    if (!event) continue;
    out.push(await relayEvent(event, step.id, JSON.stringify({ event, data: step })));
  }
  return out;
}

/** Matches the run step list and retrieve paths, under any base path (`/v1`, `/openai`, …). */
const RUN_STEPS_PATH = /\/threads\/[^/]+\/runs\/[^/]+\/steps(?:\/[^/]+)?\/?$/;

/** Whether a request path is a run step list or retrieve call whose JSON answer holds run steps. */
export function isRunStepsPath(pathname: string): boolean {
  return RUN_STEPS_PATH.test(pathname);
}

const encoder = new TextEncoder();

async function relayEvent(event: string, stepId: string, body: string): Promise<RelayEvent> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(body)));
  const id = `msg_${bytesToBase64(digest.subarray(0, 18)).replace(/\+/g, "-").replace(/\//g, "_")}`;
  return { id, stepId, event, body };
}
