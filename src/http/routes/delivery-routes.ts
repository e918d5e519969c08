import type { Context } from "hono";
import { Hono } from "hono";
import * as v from "valibot";
import type { DeliveryActionResult, DeliveryOperations } from "../../usecases/delivery-operations.js";
import {
  BulkRetryRequestSchema,
  type BulkRetryResponseSchema,
  DeliveryListQuerySchema,
  type DeliveryResponse,
} from "../api-schemas.js";
import { fail, toDeliveryResponse } from "../responses.js";

type BulkRetryResponse = v.InferOutput<typeof BulkRetryResponseSchema>;

/**
 * `/v1/deliveries`: list pending (parked included) and dead deliveries; retry a dead one now;
 * resend a delivered one; retry a sink's dead deliveries in bulk. Mounted behind the API's bearer auth.
 */
export function deliveryRoutes(ops: DeliveryOperations): Hono {
  const routes = new Hono();

  routes.get("/", async (c) => {
    const query = v.safeParse(DeliveryListQuerySchema, c.req.query());
    if (!query.success) return fail(c, 400, "invalid_request", query.issues[0].message);
    const { state, sink, limit, cursor } = query.output;
    if (sink !== undefined && !ops.hasSink(sink)) return fail(c, 404, "not_found", `no sink ${sink}`);
    const page = await ops.list(state, sink, limit, cursor ?? null);
    return c.json({ data: page.items.map(toDeliveryResponse), next_cursor: page.nextCursor });
  });

  routes.post("/retry", async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return fail(c, 400, "invalid_json", "body must be a JSON object: { sink, since?, until?, limit? }");
    }
    const parsed = v.safeParse(BulkRetryRequestSchema, body);
    if (!parsed.success) return fail(c, 400, "invalid_request", parsed.issues[0].message);
    const { sink, since, until, limit } = parsed.output;
    if (!ops.hasSink(sink)) return fail(c, 404, "not_found", `no sink ${sink}`);
    const sinceMs = (since ?? 0) * 1000;
    const untilMs = until === undefined ? Number.MAX_SAFE_INTEGER : until * 1000 + 999;
    if (sinceMs > untilMs) return fail(c, 400, "invalid_request", "since must not be after until");
    return c.json<BulkRetryResponse>(await ops.bulkRetry(sink, sinceMs, untilMs, limit));
  });

  routes.post("/:delivery_id/retry", async (c) =>
    answer(c, await ops.retry(c.req.param("delivery_id"), { request_id: c.get("requestId") })),
  );
  routes.post("/:delivery_id/resend", async (c) =>
    answer(c, await ops.resend(c.req.param("delivery_id"), { request_id: c.get("requestId") })),
  );

  return routes;
}

function answer(c: Context, result: DeliveryActionResult) {
  if (result.kind === "not_found")
    return fail(c, 404, "not_found", `no delivery ${c.req.param("delivery_id")}`);
  if (result.kind === "invalid_state") return fail(c, 409, "invalid_state", result.message);
  return c.json<DeliveryResponse>(toDeliveryResponse(result.delivery));
}
