import { toJsonSchema } from "@valibot/to-json-schema";
import type * as v from "valibot";
import {
  RunStepDeltaSchema,
  RunStepStreamEventSchema,
  RunStepWebhookEventSchema,
} from "../domain/run-step-event.js";
import { RunStepSchema } from "../domain/run-step-schema.js";
import {
  DeliveryResponseSchema,
  ErrorResponseSchema,
  IngestResponseSchema,
  pageSchema,
  RunRollupResponseSchema,
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
  401: "Missing or bad signature / bearer token",
  404: "Not found",
  413: "Body over MAX_BODY_BYTES",
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
            "Standard Webhooks: v1,<base64 HMAC-SHA256 of id.timestamp.body>, with webhook-id and webhook-timestamp",
        },
      },
      schemas: {
        RunStep: schema(RunStepSchema),
        RunStepStreamEvent: schema(RunStepStreamEventSchema),
        RunStepWebhookEvent: schema(RunStepWebhookEventSchema),
        RunStepDelta: schema(RunStepDeltaSchema),
        Delivery: schema(DeliveryResponseSchema),
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
          security: bearer,
          parameters: [
            {
              name: "state",
              in: "query",
              required: true,
              schema: { type: "string", enum: ["pending", "dead"] },
            },
            ...listParams,
          ],
          responses: {
            "200": json(pageSchema(DeliveryResponseSchema), "A page of deliveries"),
            ...errors(400, 401, 503),
          },
        },
      },
      "/v1/deliveries/{delivery_id}/retry": {
        post: {
          summary: "Retry a dead delivery now",
          security: bearer,
          parameters: [pathParam("delivery_id")],
          responses: {
            "200": json(DeliveryResponseSchema, "The delivery, pending again"),
            ...errors(401, 404, 503),
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
