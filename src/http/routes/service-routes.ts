import { Hono } from "hono";
import * as v from "valibot";
import type { Readiness } from "../readiness.js";
import { describe } from "../route-docs.js";

/**
 * `/healthz`, `/readyz` and `/openapi.json`: public, for load balancers, process managers and
 * clients. The document is served when given (the Worker serves it as a static asset instead).
 */
export function serviceRoutes(readiness: Readiness, openApiDocument: unknown): Hono {
  const routes = new Hono();
  routes.get(
    "/healthz",
    describe({
      operationId: "getHealth",
      summary: "The process is up",
      description: "Answers without touching the store: for liveness checks.",
      tags: ["Service"],
      security: "public",
      responses: { 200: { description: "Up", schema: v.object({ status: v.literal("ok") }) } },
      errors: {},
    }),
    (c) => c.json({ status: "ok" as const }),
  );
  routes.get(
    "/readyz",
    describe({
      operationId: "getReadiness",
      summary: "The store is reachable",
      description: "One read of the table: for readiness checks.",
      tags: ["Service"],
      security: "public",
      responses: { 200: { description: "Ready", schema: v.object({ status: v.literal("ready") }) } },
      // Stryker disable next-line BooleanLiteral: a listed status is documented whatever its value (`false` is outside RouteDoc's type).
      errors: { 503: true },
    }),
    async (c) => {
      await readiness.check();
      return c.json({ status: "ready" as const });
    },
  );
  if (openApiDocument)
    routes.get(
      "/openapi.json",
      describe({
        operationId: "getOpenApiDocument",
        summary: "This document",
        tags: ["Service"],
        security: "public",
        responses: {
          200: {
            description: "The OpenAPI 3.1 document",
            schema: v.pipe(v.record(v.string(), v.unknown()), v.description("An OpenAPI 3.1 document")),
          },
        },
        errors: {},
      }),
      (c) => c.json(openApiDocument),
    );
  return routes;
}
