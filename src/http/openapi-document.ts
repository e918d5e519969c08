import { toJsonSchema } from "@valibot/to-json-schema";
import type * as v from "valibot";
import {
  RunStepDeltaSchema,
  RunStepStreamEventSchema,
  RunStepWebhookEventSchema,
} from "../domain/run-step-event.js";
import { RunStepSchema } from "../domain/run-step-schema.js";
import {
  BulkRetryRequestSchema,
  BulkRetryResponseSchema,
  DeliveryResponseSchema,
  ErrorResponseSchema,
  IngestResponseSchema,
  pageSchema,
  QuarantineDetailResponseSchema,
  QuarantineResponseSchema,
  ReplayResponseSchema,
  RunRollupResponseSchema,
  SinkResponseSchema,
  SinkTestResponseSchema,
  StoredStepResponseSchema,
} from "./api-schemas.js";

// Cross-field rules (rawCheck) have no JSON Schema form; they are described in prose instead.
const schema = (s: v.GenericSchema) => toJsonSchema(s, { target: "openapi-3.0", errorMode: "ignore" });

const json = (s: v.GenericSchema, description: string) => ({
  description,
  content: { "application/json": { schema: schema(s) } },
});

const errors = (...codes: number[]) =>
  Object.fromEntries(
    codes.map((code) => [String(code), json(ErrorResponseSchema, ERROR_TEXT[code] ?? "error")]),
  );

const ERROR_TEXT: Record<number, string> = {
  400: "Body is not JSON, or a bad query parameter",
  409: "Not in a state this action applies to (a delivery's state, an already replayed request)",
  401: "Missing or bad signature / bearer token",
  404: "Not found",
  413: "Body over MAX_BODY_BYTES, or its stored form over DynamoDB's 400 KB item limit",
  415: "Content type is not JSON",
  422: "JSON, but not a valid run step event (issues lists each problem with its path)",
  503: "The store is throttled or unreachable; retry after Retry-After seconds",
};

const bearer = [{ bearer: [] }];
const pathParam = (name: string) => ({ name, in: "path", required: true, schema: { type: "string" } });
const listParams = [
  { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 100, default: 20 } },
  {
    name: "cursor",
    in: "query",
    schema: { type: "string" },
    description: "next_cursor of the previous page",
  },
];

/** The OpenAPI 3.0 description of the API, generated from the Valibot schemas that validate it. */
export function buildOpenApiDocument(): Record<string, unknown> {
  return {
    openapi: "3.0.3",
    info: {
      title: "stepwatch",
      version: "1",
      description:
        "Signed OpenAI run step webhooks in; latest step state, run rollups and notification deliveries out.",
    },
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer" },
        standardWebhooks: {
          type: "apiKey",
          in: "header",
          name: "webhook-signature",
          description:
            "Standard Webhooks, with webhook-id and webhook-timestamp: space-separated v1,<base64 HMAC-SHA256 of " +
            "id.timestamp.body> (whsec_ secrets) and/or v1a,<base64 Ed25519 signature of id.timestamp.body> " +
            "(whpk_ public keys); other versions are ignored; more than 16 signatures in one header is a 401.",
        },
      },
      schemas: {
        RunStep: schema(RunStepSchema),
        RunStepStreamEvent: schema(RunStepStreamEventSchema),
        RunStepWebhookEvent: schema(RunStepWebhookEventSchema),
        RunStepDelta: schema(RunStepDeltaSchema),
        Delivery: schema(DeliveryResponseSchema),
        Sink: schema(SinkResponseSchema),
        Error: schema(ErrorResponseSchema),
      },
    },
    paths: {
      "/v1/webhooks/run-steps": {
        post: {
          summary: "Receive a run step event",
          description:
            "A bare RunStepObject, a stream-style {event, data} or an OpenAI-webhook-style {object: event, type, data}. " +
            "step_details.type must equal type; a terminal step needs the timestamp of its status, a failed one last_error; " +
            "an event name must agree with data.status. thread.run.step.delta is acknowledged and ignored.",
          security: [{ standardWebhooks: [] }],
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: {
                  oneOf: [
                    { $ref: "#/components/schemas/RunStep" },
                    { $ref: "#/components/schemas/RunStepStreamEvent" },
                    { $ref: "#/components/schemas/RunStepWebhookEvent" },
                  ],
                },
              },
            },
          },
          responses: {
            "200": json(IngestResponseSchema, "Applied or safely ignored"),
            ...errors(400, 401, 413, 415, 422, 503),
          },
        },
      },
      "/v1/run-steps": {
        get: {
          summary: "Terminal steps across runs, newest first",
          description:
            "By when stepwatch applied the terminal status. status: comma-separated terminal statuses (default " +
            "all four; in_progress steps are listed per run); since and until: Unix seconds, both included; " +
            "assistant_id: one assistant's only. Each step without its deliveries (GET the step for those).",
          security: bearer,
          parameters: [
            { name: "status", in: "query", schema: { type: "string" }, example: "failed" },
            { name: "since", in: "query", schema: { type: "integer", minimum: 0 } },
            { name: "until", in: "query", schema: { type: "integer", minimum: 0 } },
            { name: "assistant_id", in: "query", schema: { type: "string" } },
            ...listParams,
          ],
          responses: {
            "200": json(pageSchema(StoredStepResponseSchema), "A page of steps"),
            ...errors(400, 401, 503),
          },
        },
      },
      "/v1/run-steps/{step_id}": {
        get: {
          summary: "A stored step",
          security: bearer,
          parameters: [pathParam("step_id")],
          responses: {
            "200": json(StoredStepResponseSchema, "The step as last applied"),
            ...errors(401, 404, 503),
          },
        },
      },
      "/v1/runs/{run_id}/steps": {
        get: {
          summary: "A run's steps in created_at order",
          security: bearer,
          parameters: [pathParam("run_id"), ...listParams],
          responses: {
            "200": json(pageSchema(StoredStepResponseSchema), "A page of steps"),
            ...errors(400, 401, 503),
          },
        },
      },
      "/v1/runs/{run_id}": {
        get: {
          summary: "A run's rollup",
          security: bearer,
          parameters: [pathParam("run_id")],
          responses: {
            "200": json(RunRollupResponseSchema, "Counts by status and summed usage"),
            ...errors(401, 404, 503),
          },
        },
      },
      "/v1/deliveries": {
        get: {
          summary: "Notification deliveries by state",
          description:
            "pending includes parked deliveries (pending ones of a disabled sink, shown with state parked).",
          security: bearer,
          parameters: [
            {
              name: "state",
              in: "query",
              required: true,
              schema: { type: "string", enum: ["pending", "dead"] },
            },
            { name: "sink", in: "query", schema: { type: "string" }, description: "only this sink's" },
            ...listParams,
          ],
          responses: {
            "200": json(pageSchema(DeliveryResponseSchema), "A page of deliveries"),
            ...errors(400, 401, 404, 503),
          },
        },
      },
      "/v1/deliveries/retry": {
        post: {
          summary: "Retry a sink's dead deliveries in bulk",
          description:
            "Dead deliveries of one sink that died between since and until (Unix seconds, both optional) become " +
            "pending again, paced at 100 a second; at most limit (default and maximum 1000) per call, more says " +
            "whether to call again.",
          security: bearer,
          requestBody: {
            required: true,
            content: { "application/json": { schema: schema(BulkRetryRequestSchema) } },
          },
          responses: {
            "200": json(BulkRetryResponseSchema, "How many were queued"),
            ...errors(400, 401, 404, 503),
          },
        },
      },
      "/v1/deliveries/{delivery_id}/retry": {
        post: {
          summary: "Retry a dead delivery now",
          description:
            "Attempted at once, with a fresh retry schedule; answers the delivery after the attempt.",
          security: bearer,
          parameters: [pathParam("delivery_id")],
          responses: {
            "200": json(DeliveryResponseSchema, "The delivery after the attempt"),
            ...errors(401, 404, 409, 503),
          },
        },
      },
      "/v1/deliveries/{delivery_id}/resend": {
        post: {
          summary: "Send a delivered notification again",
          description:
            "One attempt with the same webhook-id (receivers that have it drop it); the delivery stays delivered " +
            "and the attempt joins its recent_attempts.",
          security: bearer,
          parameters: [pathParam("delivery_id")],
          responses: {
            "200": json(DeliveryResponseSchema, "The delivery after the attempt"),
            ...errors(401, 404, 409, 503),
          },
        },
      },
      "/v1/sinks": {
        get: {
          summary: "Every sink's state and backlog",
          security: bearer,
          responses: {
            "200": json(pageSchema(SinkResponseSchema), "The configured sinks"),
            ...errors(401, 503),
          },
        },
      },
      "/v1/sinks/{name}": {
        get: {
          summary: "A sink's state and backlog",
          description:
            "healthy; failing after 5 failed attempts in a row (probed one attempt at a time, on a backoff); " +
            "disabled by 410 Gone or an operator (its deliveries parked). public_key is the whpk_ key (base64 " +
            "of the Ed25519 public key) a webhook sink with a signing_key signs v1a signatures for, for its " +
            "receivers to verify with; null for other sinks. The whsk_ and whsec_ values are never shown.",
          security: bearer,
          parameters: [pathParam("name")],
          responses: { "200": json(SinkResponseSchema, "The sink"), ...errors(401, 404, 503) },
        },
      },
      "/v1/sinks/{name}/disable": {
        post: {
          summary: "Disable a sink: its deliveries are parked",
          security: bearer,
          parameters: [pathParam("name")],
          responses: { "200": json(SinkResponseSchema, "The sink"), ...errors(401, 404, 503) },
        },
      },
      "/v1/sinks/{name}/enable": {
        post: {
          summary: "Enable a sink: healthy again, its parked deliveries drain",
          security: bearer,
          parameters: [pathParam("name")],
          responses: { "200": json(SinkResponseSchema, "The sink"), ...errors(401, 404, 503) },
        },
      },
      "/v1/sinks/{name}/test": {
        post: {
          summary: "Send a test notification to a sink",
          description:
            "Marked as a test (test: true in a webhook body, [test] elsewhere), signed like any other.",
          security: bearer,
          parameters: [pathParam("name")],
          responses: {
            "200": json(SinkTestResponseSchema, "What the attempt came to"),
            ...errors(401, 404, 503),
          },
        },
      },
      "/v1/quarantine": {
        get: {
          summary: "Signed requests whose body was refused, newest first",
          description:
            "A request with a valid signature answered 400, 413 or 422 is kept for QUARANTINE_DAYS (default 14) with " +
            "its raw body, signature headers and issues; a sender's retries of one webhook-id are one record.",
          security: bearer,
          parameters: listParams,
          responses: {
            "200": json(pageSchema(QuarantineResponseSchema), "A page of quarantined requests"),
            ...errors(400, 401, 503),
          },
        },
      },
      "/v1/quarantine/{id}": {
        get: {
          summary: "A quarantined request with its headers and raw body",
          security: bearer,
          parameters: [pathParam("id")],
          responses: {
            "200": json(QuarantineDetailResponseSchema, "body as text, or body_base64 when it is not UTF-8"),
            ...errors(401, 404, 503),
          },
        },
        delete: {
          summary: "Delete a quarantined request",
          security: bearer,
          parameters: [pathParam("id")],
          responses: { "204": { description: "Deleted" }, ...errors(401, 404, 503) },
        },
      },
      "/v1/quarantine/{id}/replay": {
        post: {
          summary: "Replay a quarantined request under today's rules",
          description:
            "Validated again; when valid it is applied with its original webhook-timestamp, as if it had arrived " +
            "then, and notifies like any event. Still invalid: the same error shape as ingest, and the record stays.",
          security: bearer,
          parameters: [pathParam("id")],
          responses: {
            "200": json(ReplayResponseSchema, "What applying it did"),
            ...errors(400, 401, 404, 409, 413, 422, 503),
          },
        },
      },
      "/healthz": { get: { summary: "Process is up", responses: { "200": { description: "ok" } } } },
      "/readyz": {
        get: {
          summary: "Table is reachable",
          responses: { "200": { description: "ready" }, ...errors(503) },
        },
      },
    },
  };
}
