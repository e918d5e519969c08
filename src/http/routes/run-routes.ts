import { Hono } from "hono";
import * as v from "valibot";
import type { ResponseStore } from "../../store/response-store.js";
import type { RunRollup, StepStore } from "../../store/step-store.js";
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
import { responseProjection } from "./response-routes.js";

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

// A page of a response's projected steps goes on from this position (SPEC §9: its output items).
const RESPONSE_CURSOR = /^r(\d{1,6})$/;

/**
 * `/v1/runs`: a run's rollup and its steps in order. Mounted behind the API's bearer auth. A
 * response is a run too (SPEC §9): its rollup and steps are projected from the stored response.
 */
export function runRoutes(store: StepStore, responses?: ResponseStore): Hono {
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
      const runId = c.req.param("run_id");
      const size = limit ?? DEFAULT_PAGE_SIZE;
      // A response's page (its cursor says so), or its first page when no step has this run id.
      if (cursor && RESPONSE_CURSOR.test(cursor)) {
        const projected = await projectedSteps(runId, cursor, size);
        if (projected) return c.json(projected);
      }
      const page = await store.listRunSteps(runId, size, cursor ?? null);
      if (page.items.length === 0 && !cursor) {
        const projected = await projectedSteps(runId, null, size);
        if (projected) return c.json(projected);
      }
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
      const rollup = (await store.getRunRollup(runId)) ?? (await responseRollup(runId));
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

  // A response's steps, in output order, when `runId` names a stored response; else null.
  async function projectedSteps(runId: string, cursor: string | null, limit: number) {
    const position = cursor === null ? 0 : Number(RESPONSE_CURSOR.exec(cursor)?.[1] ?? Number.NaN);
    if (!responses || Number.isNaN(position)) return null;
    const stored = await responses.get(runId);
    const projection = stored && responseProjection(stored.document);
    if (!stored || !projection) return null;
    const steps = projection.steps.slice(position, position + limit);
    const next = position + limit < projection.steps.length ? `r${position + limit}` : null;
    return {
      data: steps.map((step) => ({
        ...step,
        object: "thread.run.step",
        usage: null,
        metadata: null,
        received_at: stored.receivedAt,
        updated_at: stored.updatedAt,
        conflicts: 0,
        deliveries: [],
      })),
      next_cursor: next,
    };
  }

  // A response's rollup: its steps counted by status, its usage (SPEC §9: input → prompt tokens).
  async function responseRollup(runId: string): Promise<RunRollup | null> {
    const stored = responses ? await responses.get(runId) : null;
    const projection = stored && responseProjection(stored.document);
    if (!stored || !projection) return null;
    const steps = { total: 0, in_progress: 0, completed: 0, failed: 0, cancelled: 0, expired: 0 };
    for (const step of projection.steps) {
      steps.total++;
      steps[step.status]++;
    }
    const { run } = projection;
    return {
      runId: run.run_id,
      threadId: run.thread_id,
      assistantId: run.assistant_id,
      steps,
      usage: run.usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
      firstCreatedAt: run.created_at,
      lastUpdatedAt: stored.updatedAt,
    };
  }

  return routes;
}
