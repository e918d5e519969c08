import { Hono } from "hono";
import { type Metrics, QUARANTINE_COUNT_LIMIT } from "../../observability/metrics.js";
import type { DeliveryOperations } from "../../usecases/delivery-operations.js";
import type { RunStepIngest } from "../../usecases/run-step-ingest.js";
import { describe } from "../route-docs.js";

/**
 * `GET /metrics`: the Prometheus text format, with each sink's gauges (pending, dead, oldest pending
 * age, state) and the quarantine's size read from the store at scrape time: a few queries per sink, bounded. Mounted behind
 * bearer auth (METRICS_TOKEN, else the API's tokens).
 */
export function metricsRoutes(ops: DeliveryOperations, ingest: RunStepIngest, metrics: Metrics): Hono {
  const routes = new Hono();
  routes.get(
    // Stryker disable next-line StringLiteral: Hono routes "" exactly as "/" (both are /metrics once mounted).
    "/",
    describe({
      operationId: "getMetrics",
      summary: "Prometheus metrics",
      description:
        "Request and ingest counters, notification outcomes, and per sink the pending and dead deliveries, the " +
        "age of the oldest pending one and its state, read from the store at scrape time. Its bearer token is " +
        "METRICS_TOKEN when set, else one of the API's.",
      tags: ["Service"],
      security: "bearer",
      responses: {
        200: { description: "The Prometheus text exposition format", mediaType: "text/plain" },
      },
      // Stryker disable next-line BooleanLiteral: a listed status is documented whatever its value (`false` is outside RouteDoc's type).
      errors: { 503: true },
    }),
    async (c) => {
      const [sinks, quarantined] = await Promise.all([
        ops.sinks(),
        ingest.countQuarantined(QUARANTINE_COUNT_LIMIT),
      ]);
      const nowMs = ops.nowMs();
      const { contentType, body } = await metrics.render(
        sinks.map(({ config, health, backlog }) => ({
          name: config.name,
          state: health.state,
          pending: backlog.pending,
          dead: backlog.dead,
          oldestPendingAgeS:
            backlog.oldestPendingCreatedMs === null
              ? null
              : Math.max(0, (nowMs - backlog.oldestPendingCreatedMs) / 1000),
        })),
        quarantined,
      );
      return c.body(body, 200, { "content-type": contentType });
    },
  );
  return routes;
}
