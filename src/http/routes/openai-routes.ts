import { type Context, Hono } from "hono";
import * as v from "valibot";
import type { SignatureVerifier } from "../../domain/signature-verifier.js";
import type { OpenAiIngest, OpenAiIngestAnswer } from "../../usecases/openai-ingest.js";
import { logFields } from "../request-log.js";
import { refused } from "../responses.js";
import { runAfterResponse } from "../run-after-response.js";
import { SIGNATURE_PARAMETERS, SIGNED_WEBHOOK_ERRORS, signedWebhookRoute } from "../signed-webhook.js";

/** What the OpenAI webhook route needs. */
export interface OpenAiRouteDeps {
  readonly ingest: OpenAiIngest;
  /** Verifies with OPENAI_WEBHOOK_SECRET (never WEBHOOK_SECRET). */
  readonly verifier: SignatureVerifier;
  readonly maxBodyBytes: number;
  readonly nowMs: () => number;
}

/** Answer to an OpenAI event (SPEC §9). */
const OpenAiEventResponseSchema = v.object({
  event_id: v.string(),
  type: v.string(),
  outcome: v.picklist(["accepted", "duplicate", "ignored"]),
});

type OpenAiEventResponse = v.InferOutput<typeof OpenAiEventResponseSchema>;

/** The thin event OpenAI sends, as documented (the body is verified over its raw bytes first). */
const OpenAiEventBodySchema = v.looseObject({
  id: v.string(),
  object: v.optional(v.literal("event")),
  created_at: v.pipe(v.number(), v.integer()),
  type: v.string(),
  data: v.looseObject({ id: v.optional(v.string()) }),
});

/**
 * `POST /v1/webhooks/openai` (SPEC §9): the URL an operator registers in OpenAI's dashboard. The
 * same signed edge as run steps; the answer comes once the event is recorded, and its subject is
 * fetched from OpenAI's API after it (the answer never waits for the API).
 */
export function openAiRoutes(deps: OpenAiRouteDeps): Hono {
  const routes = new Hono();
  signedWebhookRoute(
    routes,
    {
      operationId: "ingestOpenAiEvent",
      summary: "Receive an OpenAI platform webhook event",
      description:
        "Standard Webhooks-signed with OPENAI_WEBHOOK_SECRET. response.completed|failed|cancelled|incomplete and " +
        "agent.session.created|in_progress|action_required|idle|failed are recorded once by event id (a redelivery " +
        "is a duplicate) and their object is fetched from OpenAI's API after the answer; any other event type is " +
        "acknowledged as ignored. A relay may send the object inline as data (data.object set): it is validated and " +
        "needs no fetch. A refused body with a valid signature is quarantined: its error carries quarantine_id.",
      tags: ["Ingest"],
      security: "webhook",
      parameters: SIGNATURE_PARAMETERS,
      body: { schema: OpenAiEventBodySchema, description: "An OpenAI webhook event, signed" },
      responses: {
        200: { description: "Recorded, or acknowledged and ignored", schema: OpenAiEventResponseSchema },
      },
      errors: {
        ...SIGNED_WEBHOOK_ERRORS,
        413: "Body over MAX_BODY_BYTES",
        422: "JSON, but not an OpenAI webhook event (issues lists each problem with its path)",
      },
    },
    deps,
    async (c, request) => respond(c, await deps.ingest.ingest(request)),
  );
  return routes;
}

function respond(c: Context, answer: OpenAiIngestAnswer) {
  if (answer.kind === "refused")
    return refused(c, answer.refusal, answer.refusal.message, answer.quarantineId);
  const outcome = answer.kind === "ignored" ? "ignored" : answer.outcome;
  logFields(c, { event_id: answer.eventId, event_type: answer.type, outcome });
  if (answer.kind === "recorded" && answer.hydration) runAfterResponse(c, answer.hydration);
  return c.json<OpenAiEventResponse>({ event_id: answer.eventId, type: answer.type, outcome });
}
