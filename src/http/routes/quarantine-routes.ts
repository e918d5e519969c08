import { type Context, Hono } from "hono";
import * as v from "valibot";
import type { Refusal } from "../../domain/quarantined-request.js";
import type { RunStepIngest } from "../../usecases/run-step-ingest.js";
import { type ErrorResponse, ListQuerySchema } from "../api-schemas.js";
import { logFields } from "../request-log.js";
import { fail, toQuarantineResponse } from "../responses.js";
import { runAfterResponse } from "../run-after-response.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * `/v1/quarantine`: signed requests whose body was refused, kept for QUARANTINE_DAYS: list them,
 * read one with its raw body, replay one under today's rules, delete one.
 */
export function quarantineRoutes(ingest: RunStepIngest): Hono {
  const routes = new Hono();

  routes.get("/", async (c) => {
    const query = v.safeParse(ListQuerySchema, c.req.query());
    if (!query.success) return fail(c, 400, "invalid_request", query.issues[0].message);
    const page = await ingest.list(query.output.limit, query.output.cursor ?? null);
    return c.json({ data: page.items.map(toQuarantineResponse), next_cursor: page.nextCursor });
  });

  routes.get("/:id", async (c) => {
    const found = await ingest.inspect(c.req.param("id"));
    if (!found) return fail(c, 404, "not_found", `no quarantined request ${c.req.param("id")}`);
    return c.json({
      ...toQuarantineResponse(found.record),
      headers: found.record.headers,
      ...bodyOf(found.body),
    });
  });

  routes.post("/:id/replay", async (c) => {
    const id = c.req.param("id");
    const replayed = await ingest.replay(id, c.get("requestId"));
    switch (replayed.kind) {
      case "not_found":
        return fail(c, 404, "not_found", `no quarantined request ${id}`);
      case "already_replayed":
        return fail(c, 409, "already_replayed", `${id} was already replayed`);
      case "refused":
        return refusedAgain(c, replayed.refusal);
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
        const stepId = result.kind === "ignored" ? result.stepId : null;
        return c.json({ quarantine_id: id, step_id: stepId, status: null, outcome: "ignored" });
      }
    }
  });

  routes.delete("/:id", async (c) => {
    const id = c.req.param("id");
    if (!(await ingest.discard(id))) return fail(c, 404, "not_found", `no quarantined request ${id}`);
    return c.body(null, 204);
  });

  return routes;
}

function refusedAgain(c: Context, refusal: Refusal) {
  logFields(c, { error_code: refusal.code });
  const error: ErrorResponse["error"] = { code: refusal.code, message: `still refused: ${refusal.message}` };
  if (refusal.issues.length > 0) error.issues = [...refusal.issues];
  return c.json<ErrorResponse>({ error }, refusal.status);
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
