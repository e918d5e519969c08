import type { Context } from "hono";
import { Hono } from "hono";
import * as v from "valibot";
import type { DeliveryActionResult, DeliveryOperations } from "../../usecases/delivery-operations.js";
import {
  count,
  DEFAULT_PAGE_SIZE,
  type DeliveryResponse,
  DeliveryResponseSchema,
  ListQuerySchema,
  pageSchema,
} from "../api-schemas.js";
import { fail, toDeliveryResponse } from "../responses.js";
import { describe, validate } from "../route-docs.js";

const SINK_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

/** `state`, `sink`, `limit` and `cursor` of the deliveries list. */
const DeliveryListQuerySchema = v.object({
  ...ListQuerySchema.entries,
  state: v.pipe(
    v.picklist(["pending", "dead"], "state must be pending or dead"),
    v.description("pending includes parked deliveries (pending ones of a disabled sink)"),
  ),
  sink: v.optional(
    v.pipe(
      v.string("sink must be a sink name"),
      v.regex(SINK_NAME, "sink must be a sink name"),
      v.description("Only this sink's"),
    ),
  ),
});

const timeBound = (name: string) =>
  v.optional(
    v.pipe(
      v.number(`${name} must be Unix seconds`),
      v.integer(`${name} must be Unix seconds`),
      v.minValue(0, `${name} must be Unix seconds`),
      v.maxValue(10_000_000_000, `${name} must be Unix seconds`),
    ),
  );

const BULK_LIMIT_MESSAGE = "limit must be a whole number from 1 to 1000";

/** Body of `POST /v1/deliveries/retry`: dead deliveries of one sink, by when they died. */
const BulkRetryRequestSchema = v.pipe(
  v.strictObject({
    sink: v.pipe(v.string("sink is required"), v.regex(SINK_NAME, "sink must be a sink name")),
    since: timeBound("since"),
    until: timeBound("until"),
    limit: v.optional(
      v.pipe(
        v.number(BULK_LIMIT_MESSAGE),
        v.integer(BULK_LIMIT_MESSAGE),
        v.minValue(1, BULK_LIMIT_MESSAGE),
        v.maxValue(1000, BULK_LIMIT_MESSAGE),
      ),
      1000,
    ),
  }),
  v.check(
    (body) => body.since === undefined || body.until === undefined || body.since <= body.until,
    "since must not be after until",
  ),
);

/** Answer to a bulk retry. */
const BulkRetryResponseSchema = v.object({
  /** Dead deliveries made pending again. */
  queued: count,
  /** Whether more dead deliveries match: call again to queue them. */
  more: v.boolean(),
});

type BulkRetryResponse = v.InferOutput<typeof BulkRetryResponseSchema>;

const actionErrors = {
  404: "No such delivery",
  409: "Not in a state this action applies to",
  503: true,
} as const;

/**
 * `/v1/deliveries`: list pending (parked included) and dead deliveries; retry a dead one now;
 * resend a delivered one; retry a sink's dead deliveries in bulk. Mounted behind the API's bearer auth.
 */
export function deliveryRoutes(ops: DeliveryOperations): Hono {
  const routes = new Hono();

  routes.get(
    // Stryker disable next-line StringLiteral: app.route mounts "" and "/" at the same path.
    "/",
    describe({
      operationId: "listDeliveries",
      summary: "Notification deliveries by state",
      tags: ["Deliveries"],
      security: "bearer",
      responses: {
        200: { description: "A page of deliveries", schema: pageSchema(DeliveryResponseSchema) },
      },
      errors: { 400: "A bad query parameter or cursor", 404: "No such sink", 503: true },
    }),
    validate("query", DeliveryListQuerySchema),
    async (c) => {
      const { state, sink, limit, cursor } = c.req.valid("query");
      if (sink !== undefined && !ops.hasSink(sink)) return fail(c, 404, "not_found", `no sink ${sink}`);
      const page = await ops.list(state, sink, limit ?? DEFAULT_PAGE_SIZE, cursor ?? null);
      return c.json({ data: page.items.map(toDeliveryResponse), next_cursor: page.nextCursor });
    },
  );

  routes.post(
    "/retry",
    describe({
      operationId: "retryDeadDeliveries",
      summary: "Retry a sink's dead deliveries in bulk",
      description:
        "Dead deliveries of one sink that died between since and until (Unix seconds, both optional) become " +
        "pending again, paced at 100 a second; at most limit (default and maximum 1000) per call, more says " +
        "whether to call again.",
      tags: ["Deliveries"],
      security: "bearer",
      responses: { 200: { description: "How many were queued", schema: BulkRetryResponseSchema } },
      errors: {
        400: "Body is not JSON (invalid_json) or not a valid request (invalid_request)",
        404: "No such sink",
        415: "Content type is not JSON",
        503: true,
      },
    }),
    // Hono's JSON validator would read a non-JSON body as {} and answer a malformed one outside
    // the API's error shape: both are decided here first (the parsed body is cached for it).
    async (c, next) => {
      const header = c.req.header("content-type");
      // The media type without its parameters (charset). split always gives a first element, and
      // any fallback but "" fails the test below as "" does.
      // Stryker disable next-line OptionalChaining,StringLiteral: see above.
      const type = header === undefined ? "" : (header.split(";")[0]?.trim() ?? "");
      if (!JSON_MEDIA_TYPE.test(type))
        return fail(c, 415, "unsupported_media_type", "content-type must be application/json");
      try {
        await c.req.json();
      } catch {
        return fail(c, 400, "invalid_json", "body must be a JSON object: { sink, since?, until?, limit? }");
      }
      await next();
    },
    validate("json", BulkRetryRequestSchema),
    async (c) => {
      const { sink, since, until, limit } = c.req.valid("json");
      if (!ops.hasSink(sink)) return fail(c, 404, "not_found", `no sink ${sink}`);
      const untilMs = until === undefined ? Number.MAX_SAFE_INTEGER : until * 1000 + 999;
      return c.json<BulkRetryResponse>(await ops.bulkRetry(sink, (since ?? 0) * 1000, untilMs, limit));
    },
  );

  routes.post(
    "/:delivery_id/retry",
    describe({
      operationId: "retryDelivery",
      summary: "Retry a dead delivery now",
      description: "Attempted at once, with a fresh retry schedule; answers the delivery after the attempt.",
      tags: ["Deliveries"],
      security: "bearer",
      responses: { 200: { description: "The delivery after the attempt", schema: DeliveryResponseSchema } },
      errors: actionErrors,
    }),
    async (c) => answer(c, await ops.retry(c.req.param("delivery_id"), { request_id: c.get("requestId") })),
  );

  routes.post(
    "/:delivery_id/resend",
    describe({
      operationId: "resendDelivery",
      summary: "Send a delivered notification again",
      description:
        "One attempt with the same webhook-id (receivers that have it drop it); the delivery stays delivered " +
        "and the attempt joins its recent_attempts.",
      tags: ["Deliveries"],
      security: "bearer",
      responses: { 200: { description: "The delivery after the attempt", schema: DeliveryResponseSchema } },
      errors: actionErrors,
    }),
    async (c) => answer(c, await ops.resend(c.req.param("delivery_id"), { request_id: c.get("requestId") })),
  );

  return routes;
}

function answer(c: Context, result: DeliveryActionResult) {
  if (result.kind === "not_found")
    return fail(c, 404, "not_found", `no delivery ${c.req.param("delivery_id")}`);
  if (result.kind === "invalid_state") return fail(c, 409, "invalid_state", result.message);
  return c.json<DeliveryResponse>(toDeliveryResponse(result.delivery));
}
