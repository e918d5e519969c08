import { Hono } from "hono";
import * as v from "valibot";
import { TERMINAL_STATUSES } from "../../domain/run-step-schema.js";
import type { StepStore } from "../../store/step-store.js";
import type { DeliveryOperations } from "../../usecases/delivery-operations.js";
import { DEFAULT_PAGE_SIZE, ListQuerySchema, pageSchema, StoredStepResponseSchema } from "../api-schemas.js";
import { fail, toStepResponse } from "../responses.js";
import { describe, validate } from "../route-docs.js";

// The latest time a listing reaches without `until`: the largest 13-digit Unix ms.
const LATEST_MS = 9_999_999_999_999;

const unixSecondsParam = (name: string) =>
  v.optional(
    v.pipe(
      v.string(`${name} must be Unix seconds`),
      v.regex(/^\d{1,11}$/, `${name} must be Unix seconds`),
      v.transform(Number),
      v.number(),
      v.integer(),
      v.maxValue(10_000_000_000, `${name} must be Unix seconds`),
      v.minValue(0),
      v.description(`Unix seconds (${name === "since" ? "from" : "to"}, included)`),
    ),
  );

const STATUS_MESSAGE = `status must be among ${TERMINAL_STATUSES.join(", ")} (comma-separated)`;
const STATUS_NAME = `\\s*(?:${TERMINAL_STATUSES.join("|")})\\s*`;

/** Query of `GET /v1/run-steps`: terminal steps across runs, newest first. */
const StepListQuerySchema = v.pipe(
  v.object({
    ...ListQuerySchema.entries,
    status: v.optional(
      v.pipe(
        v.string(STATUS_MESSAGE),
        v.regex(new RegExp(`^${STATUS_NAME}(?:,${STATUS_NAME})*$`), STATUS_MESSAGE),
        v.description("Comma-separated terminal statuses; all four when absent"),
        v.examples(["failed", "failed,expired"]),
        v.transform((value) =>
          value.split(",").map((item) => item.trim() as (typeof TERMINAL_STATUSES)[number]),
        ),
      ),
    ),
    since: unixSecondsParam("since"),
    until: unixSecondsParam("until"),
    assistant_id: v.optional(
      v.pipe(
        v.string("assistant_id must be a string"),
        v.minLength(1, "assistant_id must not be empty"),
        v.maxLength(512, "assistant_id is too long"),
        v.description("One assistant's steps only"),
      ),
    ),
  }),
  v.check(
    (query) => query.since === undefined || query.until === undefined || query.since <= query.until,
    "since must not be after until",
  ),
);

/** `/v1/run-steps`: terminal steps across runs, and one step with its deliveries. */
export function stepRoutes(store: StepStore, operations: DeliveryOperations | undefined): Hono {
  const routes = new Hono();

  routes.get(
    // Stryker disable next-line StringLiteral: app.route mounts "" and "/" at the same path.
    "/",
    describe({
      operationId: "listTerminalSteps",
      summary: "Terminal steps across runs, newest first",
      description:
        "By when stepwatch applied the terminal status (in_progress steps are listed per run). Each step " +
        "without its deliveries (GET the step for those).",
      tags: ["Steps"],
      security: "bearer",
      responses: { 200: { description: "A page of steps", schema: pageSchema(StoredStepResponseSchema) } },
      errors: { 400: "A bad query parameter or cursor", 503: true },
    }),
    validate("query", StepListQuerySchema),
    async (c) => {
      const { status, since, until, assistant_id: assistantId, limit, cursor } = c.req.valid("query");
      const page = await store.listTerminal({
        statuses: [...new Set(status ?? TERMINAL_STATUSES)],
        sinceMs: (since ?? 0) * 1000,
        untilMs: until === undefined ? LATEST_MS : until * 1000 + 999,
        assistantId,
        limit: limit ?? DEFAULT_PAGE_SIZE,
        cursor: cursor ?? null,
      });
      // Like a run's listing: each step's own fields; its deliveries are one GET of the step away.
      return c.json({
        data: page.items.map((stored) => toStepResponse(stored, [])),
        next_cursor: page.nextCursor,
      });
    },
  );

  routes.get(
    "/:step_id",
    describe({
      operationId: "getStep",
      summary: "A stored step with its deliveries",
      tags: ["Steps"],
      security: "bearer",
      responses: { 200: { description: "The step as last applied", schema: StoredStepResponseSchema } },
      errors: { 404: "No such step", 503: true },
    }),
    async (c) => {
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
    },
  );

  return routes;
}
