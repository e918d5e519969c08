/**
 * The sample objects `npm run openai-standin` serves and the thin events `npm run send-sample --
 * --openai <type>` sends for them: one sample per event type a newcomer would try, built from the
 * test fixtures (typed with the `openai` SDK's own types), so the samples and the tests agree.
 */
import type { TakenOpenAiEventType } from "../../src/domain/openai/openai-webhook-event.js";
import {
  completedResponse,
  failedResponse,
  failedSession,
  functionCallSession,
  idleSession,
  incompleteResponse,
  queuedResponse,
  RESPONSES,
  SESSIONS,
  type WireResponse,
} from "../../test/fixtures/openai-objects.js";

/** A response cancelled before it produced anything (the fixtures have none). */
const cancelledResponse: WireResponse = {
  ...queuedResponse,
  id: "resp_cancelled_sample",
  status: "cancelled",
};

/** What a sample event names: the kind of subject and the id the stand-in serves it under. */
export interface OpenAiSample {
  readonly kind: "response" | "agent_session";
  readonly id: string;
  /** What the stand-in's object shows, for the printed list. */
  readonly what: string;
}

/** The event types `send-sample --openai` takes, each with the subject the stand-in serves. */
export const OPENAI_SAMPLES: Readonly<Partial<Record<TakenOpenAiEventType, OpenAiSample>>> = {
  "response.completed": {
    kind: "response",
    id: completedResponse.id,
    what: "a completed response with one output item of every type",
  },
  "response.failed": { kind: "response", id: failedResponse.id, what: "a failed response (server_error)" },
  "response.incomplete": {
    kind: "response",
    id: incompleteResponse.id,
    what: "an incomplete response (max_output_tokens)",
  },
  "response.cancelled": { kind: "response", id: cancelledResponse.id, what: "a cancelled response" },
  "agent.session.action_required": {
    kind: "agent_session",
    id: functionCallSession.id,
    what: "an agent session waiting for a function call's output",
  },
  "agent.session.idle": { kind: "agent_session", id: idleSession.id, what: "an idle agent session" },
  "agent.session.failed": { kind: "agent_session", id: failedSession.id, what: "a failed agent session" },
};

/** The event types that have a sample, in the order they are listed. */
export const OPENAI_SAMPLE_TYPES = Object.keys(OPENAI_SAMPLES) as TakenOpenAiEventType[];

/** Every response the stand-in serves: the fixtures' and the cancelled sample. */
export const STANDIN_RESPONSES: readonly WireResponse[] = [...RESPONSES, cancelledResponse];

/** Every agent session the stand-in serves, with its items. */
export const STANDIN_SESSIONS = SESSIONS;
