import { type Context, Hono } from "hono";
import type { DeliveryOperations, SinkView } from "../../usecases/delivery-operations.js";
import {
  pageSchema,
  type SinkResponse,
  SinkResponseSchema,
  type SinkTestResponse,
  SinkTestResponseSchema,
} from "../api-schemas.js";
import { fail, toSinkResponse, toSinkTestResponse } from "../responses.js";
import { describe, type RouteDoc } from "../route-docs.js";

// Every route on one sink reads its health and backlog from the store.
const oneSink = (operationId: string, summary: string, description: string): RouteDoc => ({
  operationId,
  summary,
  description,
  tags: ["Sinks"],
  security: "bearer",
  responses: { 200: { description: "The sink", schema: SinkResponseSchema } },
  errors: { 404: "No such sink", 503: true },
});

/**
 * `/v1/sinks`: every sink's state and backlog; disable, enable and test one. Mounted behind the
 * API's bearer auth.
 */
export function sinkRoutes(ops: DeliveryOperations, nowMs: () => number): Hono {
  const routes = new Hono();
  const one = (c: Context, view: SinkView | null) =>
    view
      ? c.json<SinkResponse>(toSinkResponse(view, nowMs()))
      : fail(c, 404, "not_found", `no sink ${c.req.param("name")}`);

  routes.get(
    // Stryker disable next-line StringLiteral: app.route mounts "" and "/" at the same path.
    "/",
    describe({
      operationId: "listSinks",
      summary: "Every sink's state and backlog",
      description: "All sinks on one page: next_cursor is always null.",
      tags: ["Sinks"],
      security: "bearer",
      responses: { 200: { description: "The configured sinks", schema: pageSchema(SinkResponseSchema) } },
      errors: { 503: true },
    }),
    async (c) => {
      const now = nowMs();
      return c.json({
        data: (await ops.sinks()).map((view) => toSinkResponse(view, now)),
        next_cursor: null,
      });
    },
  );
  routes.get(
    "/:name",
    describe(
      oneSink(
        "getSink",
        "A sink's state and backlog",
        "healthy; failing after 5 failed attempts in a row (probed one attempt at a time, on a backoff); " +
          "disabled by 410 Gone or an operator (its deliveries parked). public_key is the whpk_ key (base64 " +
          "of the Ed25519 public key) a webhook sink with a signing_key signs v1a signatures for, for its " +
          "receivers to verify with; null for other sinks. The whsk_ and whsec_ values are never shown.",
      ),
    ),
    async (c) => one(c, await ops.sink(c.req.param("name"))),
  );
  routes.post(
    "/:name/disable",
    describe(
      oneSink(
        "disableSink",
        "Disable a sink: its deliveries are parked",
        "Its deliveries are parked (not attempted) until it is enabled; its state is disabled, with " +
          'disabled_reason "disabled by an operator".',
      ),
    ),
    async (c) => one(c, await ops.disable(c.req.param("name"))),
  );
  routes.post(
    "/:name/enable",
    describe(
      oneSink(
        "enableSink",
        "Enable a sink: healthy again, its parked deliveries drain",
        "Its failures are forgotten (consecutive_failures 0); the next sweeps deliver its parked deliveries.",
      ),
    ),
    async (c) => one(c, await ops.enable(c.req.param("name"))),
  );
  routes.post(
    "/:name/test",
    describe({
      operationId: "testSink",
      summary: "Send a test notification to a sink",
      description:
        "Marked as a test (test: true in a webhook body, [test] elsewhere), signed like any other.",
      tags: ["Sinks"],
      security: "bearer",
      responses: { 200: { description: "What the attempt came to", schema: SinkTestResponseSchema } },
      errors: {
        404: "No such sink",
        503: "The store is throttled or unreachable: the test may have been sent, its outcome is not recorded",
      },
    }),
    async (c) => {
      const name = c.req.param("name");
      const result = await ops.test(name);
      if (!result) return fail(c, 404, "not_found", `no sink ${name}`);
      return c.json<SinkTestResponse>(toSinkTestResponse(name, result));
    },
  );
  return routes;
}
