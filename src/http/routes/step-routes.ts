import { Hono } from "hono";
import * as v from "valibot";
import { TERMINAL_STATUSES } from "../../domain/run-step-schema.js";
import type { StepStore } from "../../store/step-store.js";
import type { DeliveryOperations } from "../../usecases/delivery-operations.js";
import { StepListQuerySchema } from "../api-schemas.js";
import { fail, toStepResponse } from "../responses.js";

// The latest time a listing reaches without `until`: the largest 13-digit Unix ms.
const LATEST_MS = 9_999_999_999_999;

/** `/v1/run-steps`: terminal steps across runs, and one step with its deliveries. */
export function stepRoutes(store: StepStore, operations: DeliveryOperations | undefined): Hono {
  const routes = new Hono();

  routes.get("/", async (c) => {
    const query = v.safeParse(StepListQuerySchema, c.req.query());
    if (!query.success) return fail(c, 400, "invalid_request", query.issues[0].message);
    const { status, since, until, assistant_id: assistantId, limit, cursor } = query.output;
    const page = await store.listTerminal({
      statuses: [...new Set(status ?? TERMINAL_STATUSES)],
      sinceMs: (since ?? 0) * 1000,
      untilMs: until === undefined ? LATEST_MS : until * 1000 + 999,
      assistantId,
      limit,
      cursor: cursor ?? null,
    });
    // Like a run's listing: each step's own fields; its deliveries are one GET of the step away.
    return c.json({
      data: page.items.map((stored) => toStepResponse(stored, [])),
      next_cursor: page.nextCursor,
    });
  });

  routes.get("/:step_id", async (c) => {
    const stepId = c.req.param("step_id");
    const stored = await store.getStep(stepId);
    if (!stored) return fail(c, 404, "not_found", `no step ${stepId}`);
    const step = {
      id: String(stored.document.id),
      runId: String(stored.document.run_id),
      status: stored.status,
      owedSinks: stored.owedSinks,
      appliedAtMs: stored.updatedAt * 1000,
    };
    return c.json(toStepResponse(stored, operations ? await operations.forStep(step) : []));
  });

  return routes;
}
