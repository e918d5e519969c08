import { findTargetHandler } from "hono/utils/handler";
import { type DescribeRouteOptions, generateSpecs, resolver, uniqueSymbol } from "hono-openapi";
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
  QuarantineResponseSchema,
  SinkResponseSchema,
  StoredStepResponseSchema,
} from "./api-schemas.js";
import { type AppDeps, createApp } from "./create-app.js";
import {
  type DocumentedErrorStatus,
  type DocumentedResponse,
  ROUTE_DOC,
  type RouteDoc,
  type ValidatorDoc,
} from "./route-docs.js";

/**
 * Schemas that become named components: wherever one of these objects occurs inside another
 * schema, the document says `$ref` to it instead of repeating it.
 */
const COMPONENT_SCHEMAS: Record<string, v.GenericSchema> = {
  Error: ErrorResponseSchema,
  Delivery: DeliveryResponseSchema,
  Sink: SinkResponseSchema,
  StoredStep: StoredStepResponseSchema,
  QuarantinedRequest: QuarantineResponseSchema,
  RunStep: RunStepSchema,
  RunStepStreamEvent: RunStepStreamEventSchema,
  RunStepWebhookEvent: RunStepWebhookEventSchema,
  RunStepDelta: RunStepDeltaSchema,
};

// @valibot/to-json-schema's options (through hono-openapi and @standard-community/standard-openapi):
// JSON Schema 2020-12, the dialect of OpenAPI 3.1; the output side of each pipeline, so a query
// value read as digits and turned into a number is documented as the integer it stands for; cross-
// field rules (rawCheck) have no JSON Schema form and are described in prose instead.
const CONVERSION = {
  options: {
    target: "draft-2020-12",
    typeMode: "output",
    errorMode: "ignore",
    definitions: COMPONENT_SCHEMAS,
    overrideRef: ({ referenceId }: { referenceId: string }) => `#/components/schemas/${referenceId}`,
  },
};

// hono-openapi's own types (from openapi-types, which it depends on and this project does not).
type Operation = DescribeRouteOptions;
type Responses = NonNullable<Operation["responses"]>;
type ResponseObject = Exclude<Responses[string], { $ref: string }>;
/** The generated document. */
export type OpenApiDocument = Awaited<ReturnType<typeof generateSpecs>>;

const schemaOf = (schema: v.GenericSchema) => resolver(schema, CONVERSION);

const errorBody = { "application/json": { schema: { $ref: "#/components/schemas/Error" } } };

// One reusable response per error status, each with the API's error body.
const ERROR_RESPONSES: Record<DocumentedErrorStatus, [string, ResponseObject]> = {
  400: ["BadRequest", { description: "A bad request (invalid_json or invalid_request)", content: errorBody }],
  401: ["Unauthorized", { description: "Missing or bad credentials", content: errorBody }],
  404: ["NotFound", { description: "Not found", content: errorBody }],
  409: ["Conflict", { description: "Not in a state this action applies to", content: errorBody }],
  413: ["PayloadTooLarge", { description: "Body too large", content: errorBody }],
  415: ["UnsupportedMediaType", { description: "Content type is not JSON", content: errorBody }],
  422: ["UnprocessableContent", { description: "Not a valid run step event", content: errorBody }],
  503: [
    "StoreUnavailable",
    {
      description: "The store is throttled or unreachable; retry after Retry-After seconds",
      headers: {
        "Retry-After": { description: "Seconds to wait", schema: { type: "integer", minimum: 0 } },
      },
      content: errorBody,
    },
  ],
};

const SECURITY: Record<RouteDoc["security"], NonNullable<Operation["security"]>> = {
  bearer: [{ bearer: [] }],
  webhook: [{ standardWebhooks: [] }],
  public: [],
};

function response(doc: DocumentedResponse) {
  const media = doc.mediaType ?? "application/json";
  return {
    description: doc.description,
    ...(doc.schema
      ? { content: { [media]: { schema: schemaOf(doc.schema) } } }
      : doc.mediaType
        ? { content: { [media]: { schema: { type: "string" as const } } } }
        : {}),
  };
}

// A route's own documentation in hono-openapi's terms.
function operation(doc: RouteDoc): DescribeRouteOptions {
  const errors: Partial<Record<DocumentedErrorStatus, string | true>> = {
    ...(doc.security === "bearer" ? { 401: "Missing or bad bearer token" } : {}),
    ...doc.errors,
  };
  const responses: Responses = {};
  for (const [status, answer] of Object.entries(doc.responses)) responses[status] = response(answer);
  for (const [status, text] of Object.entries(errors)) {
    const [name] = ERROR_RESPONSES[Number(status) as DocumentedErrorStatus];
    responses[status] = {
      $ref: `#/components/responses/${name}`,
      ...(typeof text === "string" ? { description: text } : {}),
    };
  }
  return {
    operationId: doc.operationId,
    summary: doc.summary,
    // Stryker disable next-line ConditionalExpression: a `description: undefined` is dropped when the document is written as JSON; the spread is for the type.
    ...(doc.description === undefined ? {} : { description: doc.description }),
    tags: [...doc.tags],
    security: SECURITY[doc.security],
    ...(doc.parameters ? { parameters: doc.parameters as NonNullable<Operation["parameters"]> } : {}),
    ...(doc.body
      ? {
          requestBody: {
            required: true,
            description: doc.body.description,
            content: { "application/json": { schema: schemaOf(doc.body.schema) } },
          },
        }
      : {}),
    responses,
  };
}

// Runs nothing: the app is built only to read its routes, and no request ever reaches it.
const unused = new Proxy(
  {},
  {
    get() {
      throw new Error("the app built for the OpenAPI document answers no requests");
    },
  },
) as never;

/** Every route of the app as createApp mounts it when all optional parts are given. */
function documentedApp() {
  const deps: AppDeps = {
    store: unused,
    verifier: unused,
    logger: unused,
    ingest: unused,
    operations: unused,
    metrics: unused,
    openai: { ingest: unused, verifier: unused, events: unused, responses: unused, sessions: unused },
    // Stryker disable next-line ArrayDeclaration: no request reaches this app, so its tokens are never compared.
    apiTokens: [],
    maxBodyBytes: 0,
    openApiDocument: {},
  };
  const app = createApp(deps);
  // Hand each route's documentation to hono-openapi under its own marker.
  for (const route of app.routes) {
    const handler = findTargetHandler(route.handler) as unknown as Record<PropertyKey, unknown>;
    const doc = handler[ROUTE_DOC] as RouteDoc | ValidatorDoc | undefined;
    if (!doc) continue;
    handler[uniqueSymbol] =
      "target" in doc ? { target: doc.target, ...schemaOf(doc.schema) } : { spec: operation(doc) };
  }
  return app;
}

/** The OpenAPI 3.1 document of the API, generated from the routes and their Valibot schemas. */
export async function buildOpenApiDocument(): Promise<OpenApiDocument> {
  const used = new Set<string>();
  const spec = await generateSpecs(documentedApp(), {
    excludeStaticFile: false,
    // Stryker disable next-line BooleanLiteral: hono-openapi adds its default only where a route documents no 400, and every validated route here does.
    defaultValidationErrorResponse: false,
    documentation: {
      info: {
        title: "stepwatch",
        version: "1",
        description:
          "Signed OpenAI run step webhooks and OpenAI platform webhooks (responses, agent sessions) in; latest " +
          "state, run rollups and notification deliveries out. " +
          "Every error answers {error: {code, message}}.",
      },
      servers: [{ url: "/", description: "The stepwatch instance serving this document" }],
      tags: [
        { name: "Ingest", description: "Signed run step events from OpenAI or a relay" },
        { name: "Steps", description: "Stored steps and run rollups" },
        { name: "Deliveries", description: "Notifications to sinks and their retries" },
        { name: "Sinks", description: "Where notifications go, and their health" },
        { name: "Quarantine", description: "Signed requests whose body was refused, kept for replay" },
        {
          name: "Responses",
          description:
            "Responses and agent sessions hydrated from OpenAI's platform webhooks, and their producers' state",
        },
        { name: "Service", description: "Health, readiness, metrics and this document" },
      ],
      components: {
        securitySchemes: {
          bearer: {
            type: "http",
            scheme: "bearer",
            description: "One of API_TOKEN's comma-separated tokens (METRICS_TOKEN's for /metrics when set)",
          },
          standardWebhooks: {
            type: "apiKey",
            in: "header",
            name: "webhook-signature",
            description:
              "Standard Webhooks, with webhook-id and webhook-timestamp: space-separated v1,<base64 HMAC-SHA256 " +
              "of id.timestamp.body> (whsec_ secrets) and/or v1a,<base64 Ed25519 signature of id.timestamp.body> " +
              "(whpk_ public keys); other versions are ignored; more than 16 signatures in one header is a 401.",
          },
        },
      },
    },
  });
  // Only the error responses some route refers to. (Today every one of them is, so the filters below
  // keep all: marked equivalent until a status falls out of use.)
  const text = JSON.stringify(spec.paths);
  for (const [, [name]] of Object.entries(ERROR_RESPONSES)) {
    // Stryker disable next-line ConditionalExpression,StringLiteral: every error response is referred to by some route (see above).
    if (text.includes(`"#/components/responses/${name}"`)) used.add(name);
  }
  const responses: Record<string, ResponseObject> = {};
  // Stryker disable next-line ConditionalExpression: every error response is referred to by some route (see above).
  for (const [name, answer] of Object.values(ERROR_RESPONSES)) if (used.has(name)) responses[name] = answer;
  return { ...spec, components: { ...spec.components, responses } } as OpenApiDocument;
}
