import type { Hono } from "hono";
import { findTargetHandler } from "hono/utils/handler";
import * as v from "valibot";
import { ErrorResponseSchema } from "../../src/http/api-schemas.js";
import { ROUTE_DOC, type RouteDoc } from "../../src/http/route-docs.js";

/** A response that its route's documentation does not describe. */
export class NonConformingResponseError extends Error {
  override readonly name = "NonConformingResponseError";
}

interface DocumentedRoute {
  readonly method: string;
  readonly pattern: RegExp;
  readonly path: string;
  readonly doc: RouteDoc;
}

// Hono's `:name` segments as a regular expression over a request path.
const toPattern = (path: string) => new RegExp(`^${path.replace(/:[^/]+/g, "[^/]+").replace(/\/$/, "")}/?$`);

/** The documented routes of an app, as createApp mounted them. */
export function documentedRoutes(app: Hono): DocumentedRoute[] {
  const routes: DocumentedRoute[] = [];
  for (const route of app.routes) {
    const handler = findTargetHandler(route.handler) as unknown as Record<PropertyKey, unknown>;
    const doc = handler[ROUTE_DOC] as RouteDoc | { target: string } | undefined;
    if (!doc || "target" in doc) continue;
    routes.push({ method: route.method, pattern: toPattern(route.path), path: route.path, doc });
  }
  return routes;
}

/**
 * Checks an answer of `app` against its route's documentation: its status must be one the route
 * documents, and its body must parse with the documented schema (the Valibot schema the OpenAPI
 * document is generated from) or, for an error, the API's error body. Paths no route documents
 * (unknown routes, the console's files) are left alone.
 */
export async function checkConformance(
  routes: readonly DocumentedRoute[],
  method: string,
  path: string,
  response: Response,
): Promise<void> {
  const route = routes.find((r) => r.method === method && r.pattern.test(path));
  if (!route) return;
  const { doc } = route;
  const where = `${method} ${path} (${doc.operationId}) answered ${response.status}`;
  const errors: Record<number, unknown> = {
    ...(doc.security === "bearer" ? { 401: true } : {}),
    ...doc.errors,
  };
  const documented = doc.responses[response.status];
  // An error is documented by its description or `true` (the shared one); nothing else documents it.
  const error = errors[response.status];
  if (!documented && error !== true && typeof error !== "string")
    throw new NonConformingResponseError(`${where}, a status it does not document`);
  const type = response.headers.get("content-type") ?? "";
  if (!documented) {
    const parsed = v.safeParse(ErrorResponseSchema, await response.clone().json());
    if (!parsed.success)
      throw new NonConformingResponseError(`${where} without the error body: ${v.summarize(parsed.issues)}`);
    return;
  }
  if (documented.mediaType && !type.startsWith(documented.mediaType))
    throw new NonConformingResponseError(`${where} as ${type}, not ${documented.mediaType}`);
  if (!documented.schema) {
    if (!documented.mediaType && (await response.clone().text()) !== "")
      throw new NonConformingResponseError(`${where} with a body it does not document`);
    return;
  }
  if (!type.startsWith("application/json"))
    throw new NonConformingResponseError(`${where} as ${type}, not JSON`);
  const parsed = v.safeParse(documented.schema, await response.clone().json());
  if (!parsed.success)
    throw new NonConformingResponseError(
      `${where} with a body its schema refuses: ${v.summarize(parsed.issues)}`,
    );
}

/**
 * Makes every `app.request` of a test check its answer with `checkConformance`, so each route the
 * HTTP tests reach is held to its documentation.
 */
export function enforceConformance(app: Hono): void {
  const routes = documentedRoutes(app);
  const request = app.request;
  app.request = async (input, init, env, executionCtx) => {
    const response = await request(input, init, env, executionCtx);
    const url = input instanceof Request ? input.url : String(input);
    const method = (input instanceof Request ? input.method : init?.method) ?? "GET";
    await checkConformance(routes, method.toUpperCase(), new URL(url, "http://localhost").pathname, response);
    return response;
  };
}
