import { Hono } from "hono";
import * as v from "valibot";
import type { OpenAiEventRecord } from "../../domain/openai/openai-event-record.js";
import { type ResponseObject, ResponseObjectSchema } from "../../domain/openai/response-object.js";
import { projectResponse } from "../../domain/openai/response-projection.js";
import type { OpenAiEventStore } from "../../store/openai-event-store.js";
import type { ResponseStore } from "../../store/response-store.js";
import type { SessionStore } from "../../store/session-store.js";
import type { DeliveryOperations } from "../../usecases/delivery-operations.js";
import type { OpenAiIngest } from "../../usecases/openai-ingest.js";
import { DeliveryResponseSchema, unixSeconds } from "../api-schemas.js";
import { fail, toDeliveryResponse } from "../responses.js";
import { describe } from "../route-docs.js";

const seconds = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));

/** One OpenAI event of a subject, with where its hydration stands. */
const EventResponseSchema = v.object({
  id: v.string(),
  type: v.string(),
  hydration: v.picklist(["pending", "hydrated", "not_found", "invalid"]),
  attempts: v.pipe(v.number(), v.integer()),
  last_error: v.nullable(v.string()),
  received_at: unixSeconds,
  hydrated_at: v.nullable(unixSeconds),
  next_attempt_at: v.nullable(unixSeconds),
});

/** A stored response: the Response as last fetched, plus what stepwatch knows of it (SPEC §9). */
const StoredResponseSchema = v.looseObject({
  id: v.string(),
  object: v.literal("response"),
  status: v.string(),
  received_at: unixSeconds,
  updated_at: unixSeconds,
  hydrated_at: unixSeconds,
  events: v.array(EventResponseSchema),
  deliveries: v.array(DeliveryResponseSchema),
});

/** `/v1/responses`: responses hydrated from OpenAI's platform webhooks. Behind the API's bearer auth. */
export function responseRoutes(deps: {
  readonly responses: ResponseStore;
  readonly events: OpenAiEventStore;
  readonly operations: DeliveryOperations | undefined;
}): Hono {
  const routes = new Hono();
  routes.get(
    "/:response_id",
    describe({
      operationId: "getResponse",
      summary: "A response as last fetched from OpenAI, with its events and deliveries",
      tags: ["Responses"],
      security: "bearer",
      responses: { 200: { description: "The stored response", schema: StoredResponseSchema } },
      errors: { 404: "No response of this id was hydrated", 503: true },
    }),
    async (c) => {
      const id = c.req.param("response_id");
      const stored = await deps.responses.get(id);
      if (!stored) return fail(c, 404, "not_found", `no response ${id}`);
      const [events, deliveries] = await Promise.all([
        deps.events.getMany(stored.eventIds),
        deps.operations && stored.terminalAtMs !== null
          ? deps.operations.forSubject({ kind: "response", id, runId: id }, `response.${stored.status}`, {
              owedSinks: stored.owedSinks,
              appliedAtMs: stored.terminalAtMs,
            })
          : [],
      ]);
      return c.json({
        ...stored.document,
        received_at: stored.receivedAt,
        updated_at: stored.updatedAt,
        hydrated_at: Math.floor(stored.hydratedAtMs / 1000),
        events: events.map(eventResponse),
        deliveries: deliveries.map(toDeliveryResponse),
      });
    },
  );
  return routes;
}

/** A stored agent session: the newest object fetched, with its events (SPEC §9). */
const StoredSessionSchema = v.looseObject({
  id: v.string(),
  status: v.string(),
  received_at: unixSeconds,
  updated_at: unixSeconds,
  hydrated_at: unixSeconds,
  events: v.array(EventResponseSchema),
});

/** `/v1/agent-sessions`: Agents API sessions hydrated from their events. Behind the API's bearer auth. */
export function sessionRoutes(deps: {
  readonly sessions: SessionStore;
  readonly events: OpenAiEventStore;
}): Hono {
  const routes = new Hono();
  routes.get(
    "/:session_id",
    describe({
      operationId: "getAgentSession",
      summary: "An agent session as last fetched from OpenAI, with its events",
      description:
        "The newest object (by last_active_at, then event time). Each event's notification carries the session as " +
        "that event's hydration fetched it; its deliveries are listed under GET /v1/deliveries.",
      tags: ["Responses"],
      security: "bearer",
      responses: { 200: { description: "The stored session", schema: StoredSessionSchema } },
      errors: { 404: "No session of this id was hydrated", 503: true },
    }),
    async (c) => {
      const id = c.req.param("session_id");
      const stored = await deps.sessions.get(id);
      if (!stored) return fail(c, 404, "not_found", `no agent session ${id}`);
      const events = await deps.events.getMany(stored.eventIds);
      return c.json({
        ...stored.document,
        received_at: stored.receivedAt,
        updated_at: stored.updatedAt,
        hydrated_at: Math.floor(stored.hydratedAtMs / 1000),
        events: events.map(eventResponse),
      });
    },
  );
  return routes;
}

const eventResponse = (e: OpenAiEventRecord) => ({
  id: e.id,
  type: e.type,
  hydration: e.hydration,
  attempts: e.attempts,
  last_error: e.lastError,
  received_at: Math.floor(e.receivedAtMs / 1000),
  hydrated_at: seconds(e.hydratedAtMs),
  next_attempt_at: seconds(e.nextAttemptMs),
});

/** A producer's state (SPEC §9): whether its API answers, and what waits for it. */
const SourceResponseSchema = v.object({
  name: v.string(),
  state: v.picklist(["ok", "unauthorized", "failing", "unconfigured", "unknown"]),
  last_success_at: v.nullable(unixSeconds),
  last_failure: v.nullable(v.object({ at: unixSeconds, error: v.string() })),
  pending_hydrations: v.pipe(v.number(), v.integer()),
  oldest_pending_age_s: v.nullable(v.pipe(v.number(), v.integer())),
});

/** `/v1/sources`: each live producer's state. Behind the API's bearer auth. */
export function sourceRoutes(deps: {
  readonly ingest: OpenAiIngest;
  readonly events: OpenAiEventStore;
  readonly nowMs: () => number;
}): Hono {
  const routes = new Hono();
  routes.get(
    "/",
    describe({
      operationId: "listSources",
      summary: "Live producers: their API's state and pending hydrations",
      description:
        "state is this instance's last word on the API (unauthorized: OPENAI_API_KEY was refused and events wait); " +
        "pending_hydrations and oldest_pending_age_s are read from the table, the same on every instance.",
      tags: ["Responses"],
      security: "bearer",
      responses: {
        200: { description: "Each producer", schema: v.object({ data: v.array(SourceResponseSchema) }) },
      },
      errors: { 503: true },
    }),
    async (c) => {
      const source = deps.ingest.source;
      const backlog = await deps.events.backlog();
      const now = deps.nowMs();
      return c.json({
        data: [
          {
            name: source.name,
            state: source.state,
            last_success_at: seconds(source.lastSuccessAtMs),
            last_failure: source.lastFailure
              ? { at: Math.floor(source.lastFailure.atMs / 1000), error: source.lastFailure.error }
              : null,
            pending_hydrations: backlog.pending,
            oldest_pending_age_s:
              backlog.oldestReceivedMs === null
                ? null
                : Math.max(0, Math.floor((now - backlog.oldestReceivedMs) / 1000)),
          },
        ],
      });
    },
  );
  return routes;
}

/** The run and steps a stored response projects to (SPEC §9), or null when it reads as no response. */
export function responseProjection(document: Record<string, unknown>) {
  const parsed = v.safeParse(ResponseObjectSchema, document);
  return parsed.success ? projectResponse(parsed.output as ResponseObject) : null;
}
