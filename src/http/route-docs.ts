import { sValidator } from "@hono/standard-validator";
import type { MiddlewareHandler, ValidationTargets } from "hono";
import type * as v from "valibot";
import { fail } from "./responses.js";

/**
 * Marks the middlewares that carry a route's documentation. The OpenAPI generator
 * (openapi-document.ts) finds them on the app's routes and hands them to hono-openapi; runtime
 * bundles never import hono-openapi, whose entry module pulls in every schema vendor's JSON Schema
 * converter (zod's among them, about 87 KiB gzip: the Worker's budget could not carry it).
 */
export const ROUTE_DOC = Symbol("stepwatch.route-doc");

/** Statuses documented with the API's error body. */
export type DocumentedErrorStatus = 400 | 401 | 404 | 409 | 413 | 415 | 422 | 503;

/** One documented answer: a JSON body of this schema, another media type, or none. */
export interface DocumentedResponse {
  readonly description: string;
  readonly schema?: v.GenericSchema;
  /** Defaults to application/json; a non-JSON body is documented as a string. */
  readonly mediaType?: string;
}

/** What a route documents about itself; request parameters and bodies come from its validators. */
export interface RouteDoc {
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tags: readonly string[];
  /** bearer: the API's tokens (adds 401); webhook: a Standard Webhooks signature; public: none. */
  readonly security: "bearer" | "webhook" | "public";
  /** Parameters no validator reads (e.g. headers checked by hand). */
  readonly parameters?: readonly object[];
  /** A body no validator reads (the signed ingest body is verified over its raw bytes first). */
  readonly body?: { readonly schema: v.GenericSchema; readonly description: string };
  readonly responses: Readonly<Record<number, DocumentedResponse>>;
  /** Error answers, each with the API's error body and, where given, what it means on this route. */
  readonly errors: Readonly<Partial<Record<DocumentedErrorStatus, string | true>>>;
}

/** A route's documentation, as a middleware that does nothing at run time. */
export type DescribedMiddleware = MiddlewareHandler & { readonly [ROUTE_DOC]: RouteDoc };

/** A validator's target and schema, recorded for the OpenAPI document. */
export interface ValidatorDoc {
  readonly target: keyof ValidationTargets;
  readonly schema: v.GenericSchema;
}

/** Documents the route it is mounted on (see RouteDoc). */
export function describe(doc: RouteDoc): DescribedMiddleware {
  const middleware: MiddlewareHandler = async (_c, next) => {
    await next();
  };
  return Object.assign(middleware, { [ROUTE_DOC]: doc });
}

/**
 * Validates a part of the request with a Valibot schema (via @hono/standard-validator), answering
 * the API's `400 invalid_request` with the first issue's message; the schema also documents it.
 */
export function validate<T extends keyof ValidationTargets, S extends v.GenericSchema>(target: T, schema: S) {
  const middleware = sValidator(target, schema, (result, c) => {
    if (!result.success)
      // Stryker disable next-line StringLiteral,OptionalChaining: a failed result always has an issue (Valibot adds the issues it fails with); the fallback is for the type.
      return fail(c, 400, "invalid_request", result.error[0]?.message ?? "invalid request");
  });
  const doc: ValidatorDoc = { target, schema };
  return Object.assign(middleware, { [ROUTE_DOC]: doc });
}
