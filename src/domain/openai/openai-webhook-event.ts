import * as v from "valibot";
import { checkJsonValues, type JsonValueIssue } from "../json-value-check.js";
import { isPlainObject, jsonObject } from "../run-step-schema.js";
import { type AgentSessionObject, AgentSessionSchema } from "./agent-session-object.js";
import { issuesOf, openAiId, UnixSecondsSchema } from "./openai-fields.js";
import { type ResponseObject, ResponseObjectSchema } from "./response-object.js";

/** The event types stepwatch hydrates, by the kind of subject they name (SPEC §9). */
export const TAKEN_OPENAI_EVENT_TYPES = {
  "response.completed": "response",
  "response.failed": "response",
  "response.cancelled": "response",
  "response.incomplete": "response",
  "agent.session.created": "agent_session",
  "agent.session.in_progress": "agent_session",
  "agent.session.action_required": "agent_session",
  "agent.session.idle": "agent_session",
  "agent.session.failed": "agent_session",
} as const;

/** A taken event type. */
export type TakenOpenAiEventType = keyof typeof TAKEN_OPENAI_EVENT_TYPES;

/** What an event is about: a response, an agent session, or nothing stepwatch keeps. */
export type OpenAiEventKind = (typeof TAKEN_OPENAI_EVENT_TYPES)[TakenOpenAiEventType] | "ignored";

/**
 * A well-formed event type: dot-separated lowercase words, as every OpenAI type is
 * (`fine_tuning.job.succeeded`). Bounded because an ignored type is still counted by type.
 */
const EventTypeSchema = v.pipe(
  v.string("must be a string"),
  v.maxLength(128, "must be at most 128 characters"),
  v.regex(/^[a-z0-9_]+(?:\.[a-z0-9_]+)+$/, "must be a dotted lowercase event type"),
);

/**
 * The thin envelope. `object` is optional because the SDK's and OpenAI's reference mark it so for
 * the response.* and realtime events (the published examples omit it); when present it must be
 * "event". `data` must be an object but its content is only read for taken types: other types'
 * data need not have an `id` (realtime.call.incoming carries `call_id`).
 */
const EnvelopeSchema = jsonObject({
  id: openAiId("id"),
  object: v.optional(v.literal("event", 'must be "event"')),
  created_at: UnixSecondsSchema,
  type: EventTypeSchema,
  data: jsonObject({}),
});

const TakenDataSchema = jsonObject({ id: openAiId("data.id") });

/** An event as read; `data` is exactly as received, unknown fields included. */
export type OpenAiWebhookEvent = {
  readonly id: string;
  readonly type: string;
  readonly createdAt: number;
  readonly data: Record<string, unknown>;
} & (
  | {
      readonly kind: "response";
      readonly subjectId: string;
      /** The full Response when a relay sent it inline as `data`, else undefined. */
      readonly inline: ResponseObject | undefined;
    }
  | {
      readonly kind: "agent_session";
      readonly subjectId: string;
      /** The full AgentSession when a relay sent it inline as `data`, else undefined. */
      readonly inline: AgentSessionObject | undefined;
    }
  | {
      readonly kind: "ignored";
      /** `data.id` when it is a safe id (for the log line), else null. */
      readonly subjectId: string | null;
      readonly inline: undefined;
    }
);

/** Result of reading a verified body: the event, or every problem with a path. */
export type ParsedOpenAiWebhookEvent =
  | { readonly ok: true; readonly event: OpenAiWebhookEvent }
  | { readonly ok: false; readonly issues: readonly JsonValueIssue[] };

const isTaken = (type: string): type is TakenOpenAiEventType => Object.hasOwn(TAKEN_OPENAI_EVENT_TYPES, type);

/**
 * Reads a parsed JSON body as an OpenAI thin webhook event `{id, object: "event", created_at,
 * type, data: {id, …}}`. Taken types need a safe `data.id`, the subject to hydrate; any other
 * well-formed type is `ignored` (acknowledged, never stored). A relay may send the full object
 * as `data` (`data.object` is "response" / "agent.session"): it is then validated and exposed as
 * `inline`, and a response's status must be the one the event type names.
 */
export function parseOpenAiWebhookEvent(json: unknown): ParsedOpenAiWebhookEvent {
  if (!isPlainObject(json)) return { ok: false, issues: [{ path: "", message: "must be a JSON object" }] };
  const valueIssues = checkJsonValues(json);
  if (valueIssues.length > 0) return { ok: false, issues: valueIssues };
  const envelope = v.safeParse(EnvelopeSchema, json);
  if (!envelope.success) return { ok: false, issues: issuesOf(envelope.issues) };
  const { id, type, created_at: createdAt } = envelope.output;
  const data = json.data as Record<string, unknown>;
  const base = { id, type, createdAt, data };

  if (!isTaken(type)) {
    const subject = v.safeParse(openAiId("data.id"), data.id);
    return {
      ok: true,
      event: {
        ...base,
        kind: "ignored",
        subjectId: subject.success ? subject.output : null,
        inline: undefined,
      },
    };
  }
  const taken = v.safeParse(TakenDataSchema, data);
  if (!taken.success) return { ok: false, issues: issuesOf(taken.issues, "data") };
  const subjectId = taken.output.id;
  const kind = TAKEN_OPENAI_EVENT_TYPES[type];

  if (kind === "response") {
    if (data.object === undefined)
      return { ok: true, event: { ...base, kind, subjectId, inline: undefined } };
    const inline = v.safeParse(ResponseObjectSchema, data);
    if (!inline.success) return { ok: false, issues: issuesOf(inline.issues, "data") };
    // response.<status>: a relayed object must be in the status its event announces.
    const announced = type.slice("response.".length);
    if (inline.output.status !== announced) {
      return {
        ok: false,
        issues: [
          {
            path: "data.status",
            message: `type "${type}" disagrees with data.status "${inline.output.status}"`,
          },
        ],
      };
    }
    return { ok: true, event: { ...base, kind, subjectId, inline: inline.output } };
  }
  if (data.object === undefined) return { ok: true, event: { ...base, kind, subjectId, inline: undefined } };
  // Sessions cycle, so a relayed session may have moved on from the status its event named.
  const inline = v.safeParse(AgentSessionSchema, data);
  if (!inline.success) return { ok: false, issues: issuesOf(inline.issues, "data") };
  return { ok: true, event: { ...base, kind, subjectId, inline: inline.output } };
}
