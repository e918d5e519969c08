import { Hono } from "hono";
import * as v from "valibot";
import type { StepStore } from "../../store/step-store.js";
import {
  count,
  DEFAULT_PAGE_SIZE,
  ListQuerySchema,
  pageSchema,
  StoredStepResponseSchema,
  unixSeconds,
} from "../api-schemas.js";
import { fail, toStepResponse } from "../responses.js";
import { describe, validate } from "../route-docs.js";

const TokenSumsSchema = v.object({
  prompt_tokens: count,
  completion_tokens: count,
  total_tokens: count,
});

/** A run's rollup: step counts by status and summed usage, each step counted once. */
export const RunRollupResponseSchema = v.object({
  run_id: v.string(),
  thread_id: v.string(),
  assistant_id: v.string(),
  steps: v.object({
    total: count,
    in_progress: count,
    completed: count,
    failed: count,
    cancelled: count,
    expired: count,
  }),
  usage: TokenSumsSchema,
  first_created_at: unixSeconds,
  last_updated_at: unixSeconds,
});

type RunRollupResponse = v.InferOutput<typeof RunRollupResponseSchema>;

/** `/v1/runs`: a run's rollup and its steps in order. Mounted behind the API's bearer auth. */
export function runRoutes(store: StepStore): Hono {
  const routes = new Hono();

  routes.get(
    "/:run_id/steps",
    describe({
      operationId: "listRunSteps",
      summary: "A run's steps in created_at order",
      description: "Each step without its deliveries (GET the step for those).",
      tags: ["Steps"],
      security: "bearer",
      responses: { 200: { description: "A page of steps", schema: pageSchema(StoredStepResponseSchema) } },
      errors: { 400: "A bad limit or cursor", 503: true },
    }),
    validate("query", ListQuerySchema),
    async (c) => {
      const { limit, cursor } = c.req.valid("query");
      const page = await store.listRunSteps(
        c.req.param("run_id"),
        limit ?? DEFAULT_PAGE_SIZE,
        cursor ?? null,
      );
      // A listing shows each step's own fields; its deliveries are one GET of the step away.
      return c.json({
        data: page.items.map((stored) => toStepResponse(stored, [])),
        next_cursor: page.nextCursor,
      });
    },
  );

  routes.get(
    "/:run_id",
    describe({
      operationId: "getRun",
      summary: "A run's rollup",
      tags: ["Steps"],
      security: "bearer",
      responses: {
        200: { description: "Counts by status and summed usage", schema: RunRollupResponseSchema },
      },
      errors: { 404: "No step of this run was received", 503: true },
    }),
    async (c) => {
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
    },
  );

  return routes;
}
