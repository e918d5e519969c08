import { Hono } from "hono";
import * as v from "valibot";
import { RUN_STEP_STATUSES } from "../../domain/run-step-schema.js";
import type { RunStepIngest } from "../../usecases/run-step-ingest.js";
import {
  DEFAULT_PAGE_SIZE,
  ListQuerySchema,
  OutcomeSchema,
  pageSchema,
  QuarantineResponseSchema,
} from "../api-schemas.js";
import { logFields } from "../request-log.js";
import { fail, refused, toQuarantineResponse } from "../responses.js";
import { describe, validate } from "../route-docs.js";
import { runAfterResponse } from "../run-after-response.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** One quarantined request with its headers and raw body (text, or base64 when not UTF-8). */
const QuarantineDetailResponseSchema = v.object({
  ...QuarantineResponseSchema.entries,
  headers: v.record(v.string(), v.string()),
  body: v.optional(v.string()),
  body_base64: v.optional(v.string()),
});

/** What a replay did. */
const ReplayResponseSchema = v.object({
  quarantine_id: v.string(),
  step_id: v.nullable(v.string()),
  status: v.nullable(v.picklist(RUN_STEP_STATUSES)),
  outcome: OutcomeSchema,
});

const NOT_FOUND = "No such quarantined request (or it expired)";

/**
 * `/v1/quarantine`: signed requests whose body was refused, kept for QUARANTINE_DAYS: list them,
 * read one with its raw body, replay one under today's rules, delete one.
 */
export function quarantineRoutes(ingest: RunStepIngest): Hono {
  const routes = new Hono();

  routes.get(
    // Stryker disable next-line StringLiteral: app.route mounts "" and "/" at the same path.
    "/",
    describe({
      operationId: "listQuarantine",
      summary: "Signed requests whose body was refused, newest first",
      description:
        "A request with a valid signature answered 400, 413 or 422 is kept for QUARANTINE_DAYS (default 14) with " +
        "its raw body, signature headers and issues; a sender's retries of one webhook-id are one record.",
      tags: ["Quarantine"],
      security: "bearer",
      responses: {
        200: { description: "A page of quarantined requests", schema: pageSchema(QuarantineResponseSchema) },
      },
      errors: { 400: "A bad limit or cursor", 503: true },
    }),
    validate("query", ListQuerySchema),
    async (c) => {
      const { limit, cursor } = c.req.valid("query");
      const page = await ingest.list(limit ?? DEFAULT_PAGE_SIZE, cursor ?? null);
      return c.json({ data: page.items.map(toQuarantineResponse), next_cursor: page.nextCursor });
    },
  );

  routes.get(
    "/:id",
    describe({
      operationId: "getQuarantined",
      summary: "A quarantined request with its headers and raw body",
      tags: ["Quarantine"],
      security: "bearer",
      responses: {
        200: {
          description: "body as text, or body_base64 when it is not UTF-8",
          schema: QuarantineDetailResponseSchema,
        },
      },
      errors: { 404: NOT_FOUND, 503: true },
    }),
    async (c) => {
      const found = await ingest.inspect(c.req.param("id"));
      if (!found) return fail(c, 404, "not_found", `no quarantined request ${c.req.param("id")}`);
      return c.json({
        ...toQuarantineResponse(found.record),
        headers: found.record.headers,
        ...bodyOf(found.body),
      });
    },
  );

  routes.post(
    "/:id/replay",
    describe({
      operationId: "replayQuarantined",
      summary: "Replay a quarantined request under today's rules",
      description:
        "Validated again; when valid it is applied with its original webhook-timestamp, as if it had arrived " +
        "then, and notifies like any event. Still invalid: the same error shape as ingest, and the record stays.",
      tags: ["Quarantine"],
      security: "bearer",
      responses: { 200: { description: "What applying it did", schema: ReplayResponseSchema } },
      errors: {
        400: "Still not JSON",
        404: NOT_FOUND,
        409: "Already replayed (already_replayed)",
        413: "Its stored form is still over DynamoDB's item limit",
        422: "Still not a valid run step event",
        503: true,
      },
    }),
    async (c) => {
      const id = c.req.param("id");
      const replayed = await ingest.replay(id, c.get("requestId"));
      switch (replayed.kind) {
        case "not_found":
          return fail(c, 404, "not_found", `no quarantined request ${id}`);
        case "already_replayed":
          return fail(c, 409, "already_replayed", `${id} was already replayed`);
        case "refused":
          return refused(c, replayed.refusal, `still refused: ${replayed.refusal.message}`);
        case "replayed": {
          const { result } = replayed;
          if (result.kind === "applied") {
            if (result.notifications) runAfterResponse(c, result.notifications);
            logFields(c, { quarantine_id: id, step_id: result.stepId, outcome: result.outcome });
            return c.json({
              quarantine_id: id,
              step_id: result.stepId,
              status: result.status,
              outcome: result.outcome,
            });
          }
          return c.json({ quarantine_id: id, step_id: result.stepId, status: null, outcome: "ignored" });
        }
      }
    },
  );

  routes.delete(
    "/:id",
    describe({
      operationId: "deleteQuarantined",
      summary: "Delete a quarantined request",
      tags: ["Quarantine"],
      security: "bearer",
      responses: { 204: { description: "Deleted" } },
      errors: { 404: NOT_FOUND, 503: true },
    }),
    async (c) => {
      const id = c.req.param("id");
      if (!(await ingest.discard(id))) return fail(c, 404, "not_found", `no quarantined request ${id}`);
      return c.body(null, 204);
    },
  );

  return routes;
}

// The body as text when it is UTF-8 (almost always: it was sent as JSON), else base64.
function bodyOf(body: Uint8Array): { body: string } | { body_base64: string } {
  try {
    return { body: utf8.decode(body) };
  } catch {
    let binary = "";
    for (const byte of body) binary += String.fromCharCode(byte);
    return { body_base64: btoa(binary) };
  }
}
