import { type Context, Hono } from "hono";
import * as v from "valibot";
import {
  DELTA_EVENT_NAME,
  RunStepDeltaSchema,
  RunStepStreamEventSchema,
  RunStepWebhookEventSchema,
  WebhookDeltaEventSchema,
} from "../../domain/run-step-event.js";
import { RUN_STEP_STATUSES, RunStepSchema } from "../../domain/run-step-schema.js";
import type { SignatureVerifier } from "../../domain/signature-verifier.js";
import type { IngestAnswer, RunStepIngest } from "../../usecases/run-step-ingest.js";
import { OutcomeSchema } from "../api-schemas.js";
import { logFields } from "../request-log.js";
import { refused } from "../responses.js";
import { runAfterResponse } from "../run-after-response.js";
import { SIGNATURE_PARAMETERS, SIGNED_WEBHOOK_ERRORS, signedWebhookRoute } from "../signed-webhook.js";

/** What the ingest route needs. */
export interface IngestRouteDeps {
  readonly ingest: RunStepIngest;
  readonly verifier: SignatureVerifier;
  readonly maxBodyBytes: number;
  /** Clock in Unix ms. */
  readonly nowMs: () => number;
}

/** Answer to an accepted webhook. */
const IngestResponseSchema = v.object({
  step_id: v.string(),
  /** null when the event was a delta, acknowledged and ignored. */
  status: v.nullable(v.picklist(RUN_STEP_STATUSES)),
  outcome: OutcomeSchema,
});

type IngestResponse = v.InferOutput<typeof IngestResponseSchema>;

/**
 * What a sender may post, for the document only: the body is verified over its raw bytes first and
 * then read by `parseRunStepEvent`, which picks the shape by its discriminating key.
 */
const RunStepEventBodySchema = v.union([
  RunStepSchema,
  RunStepStreamEventSchema,
  RunStepWebhookEventSchema,
  RunStepDeltaSchema,
  v.looseObject({ event: v.literal(DELTA_EVENT_NAME), data: RunStepDeltaSchema }),
  WebhookDeltaEventSchema,
]);

/**
 * `POST /v1/webhooks/run-steps` (SPEC §3): media type, declared size and what the signature
 * headers decide alone are decided before the body is read, then the signature over the raw bytes,
 * then the use case.
 */
export function ingestRoutes(deps: IngestRouteDeps): Hono {
  const routes = new Hono();
  signedWebhookRoute(
    routes,
    {
      operationId: "ingestRunStepEvent",
      summary: "Receive a run step event",
      description:
        "A bare RunStepObject, a stream-style {event, data} or an OpenAI-webhook-style {object: event, type, data}. " +
        "Rules across fields: step_details.type must equal type; a terminal step needs the timestamp of its " +
        "status, a failed one last_error; an event name must agree with data.status. thread.run.step.delta " +
        "(bare or in either envelope) is acknowledged and ignored. A refused body with a valid signature is " +
        "quarantined: its error carries quarantine_id.",
      tags: ["Ingest"],
      security: "webhook",
      parameters: SIGNATURE_PARAMETERS,
      body: { schema: RunStepEventBodySchema, description: "A run step event, signed" },
      responses: { 200: { description: "Applied or safely ignored", schema: IngestResponseSchema } },
      errors: {
        ...SIGNED_WEBHOOK_ERRORS,
        413: "Body over MAX_BODY_BYTES, or its stored form over DynamoDB's 400 KB item limit",
        422: "JSON, but not a valid run step event (issues lists each problem with its path)",
      },
    },
    deps,
    async (c, request) => respond(c, await deps.ingest.ingest(request)),
  );
  return routes;
}

function respond(c: Context, answer: IngestAnswer) {
  switch (answer.kind) {
    case "refused":
      return refused(c, answer.refusal, answer.refusal.message, answer.quarantineId);
    case "ignored":
      logFields(c, { step_id: answer.stepId, outcome: "ignored" });
      return c.json<IngestResponse>({ step_id: answer.stepId, status: null, outcome: "ignored" });
    case "applied":
      logFields(c, {
        step_id: answer.stepId,
        run_id: answer.runId,
        step_status: answer.status,
        outcome: answer.outcome,
      });
      if (answer.notifications) runAfterResponse(c, answer.notifications);
      return c.json<IngestResponse>({
        step_id: answer.stepId,
        status: answer.status,
        outcome: answer.outcome,
      });
  }
}
