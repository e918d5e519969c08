import { Hono } from "hono";
import * as v from "valibot";
import type { StepStore } from "../../store/step-store.js";
import { ListQuerySchema, type RunRollupResponse } from "../api-schemas.js";
import { fail, toStepResponse } from "../responses.js";

/** `/v1/runs`: a run's rollup and its steps in order. */
export function runRoutes(store: StepStore): Hono {
  const routes = new Hono();

  routes.get("/:run_id/steps", async (c) => {
    const query = v.safeParse(ListQuerySchema, c.req.query());
    if (!query.success) return fail(c, 400, "invalid_request", query.issues[0].message);
    const page = await store.listRunSteps(
      c.req.param("run_id"),
      query.output.limit,
      query.output.cursor ?? null,
    );
    // A listing shows each step's own fields; its deliveries are one GET of the step away.
    return c.json({
      data: page.items.map((stored) => toStepResponse(stored, [])),
      next_cursor: page.nextCursor,
    });
  });

  routes.get("/:run_id", async (c) => {
    const runId = c.req.param("run_id");
    const rollup = await store.getRunRollup(runId);
    if (!rollup) return fail(c, 404, "not_found", `no run ${runId}`);
    return c.json<RunRollupResponse>({
      run_id: rollup.runId,
      thread_id: rollup.threadId,
      assistant_id: rollup.assistantId,
      steps: { ...rollup.steps },
      usage: { ...rollup.usage },
      first_created_at: rollup.firstCreatedAt,
      last_updated_at: rollup.lastUpdatedAt,
    });
  });

  return routes;
}
