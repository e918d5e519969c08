import { type Context, Hono } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import * as v from "valibot";
import { type Delivery, parseDeliveryId } from "../domain/delivery.js";
import { parseRunStepEvent } from "../domain/run-step-event.js";
import { isTerminalStatus } from "../domain/run-step-schema.js";
import type { SignatureVerifier } from "../domain/signature-verifier.js";
import type { Notifier } from "../notify/notifier.js";
import { describeError, type Logger } from "../observability/logger.js";
import type { DeliveryStore } from "../store/delivery-store.js";
import type { StepStore, StoredStep } from "../store/step-store.js";
import { InvalidCursorError, StoreUnavailableError } from "../store/store-errors.js";
import {
  DeliveryListQuerySchema,
  type DeliveryResponse,
  type ErrorCode,
  type ErrorResponse,
  type IngestResponse,
  ListQuerySchema,
  type RunRollupResponse,
  type StoredStepResponse,
} from "./api-schemas.js";
import { buildOpenApiDocument } from "./openapi-document.js";

/** What the app needs from its runtime; every runtime entry builds these once and passes them in. */
export interface AppDeps {
  readonly store: StepStore;
  readonly verifier: SignatureVerifier;
  readonly logger: Logger;
  /** Bearer tokens of the read and operator API; empty refuses every request. */
  readonly apiTokens: readonly string[];
  readonly maxBodyBytes: number;
  /** Fans out notifications; absent, terminal transitions notify no one. */
  readonly notifier?: Notifier;
  /** Backs the operator API's deliveries endpoints; absent, they answer 404. */
  readonly deliveries?: DeliveryStore;
  /** Clock in Unix seconds; injectable for tests. */
  readonly nowSeconds?: () => number;
}

// Seconds a sender is asked to wait when the store is throttled or unreachable.
const RETRY_AFTER_S = "5";
const utf8 = new TextDecoder("utf-8", { fatal: true });
const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

/**
 * The stepwatch HTTP API (SPEC §3, §5), independent of the runtime it is served from.
 */
export function createApp(deps: AppDeps): Hono {
  const { store, verifier, logger, notifier } = deps;
  const nowSeconds = deps.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  const app = new Hono();

  const fail = (
    c: Context,
    status: 400 | 401 | 404 | 409 | 413 | 415 | 422 | 500 | 503,
    code: ErrorCode,
    message: string,
  ) => c.json<ErrorResponse>({ error: { code, message } }, status);

  app.onError((error, c) => {
    if (error instanceof HTTPException) return error.getResponse();
    if (error instanceof StoreUnavailableError) {
      logger.warn("store unavailable", { path: c.req.path, error: describeError(error.cause ?? error) });
      c.header("Retry-After", RETRY_AFTER_S);
      return fail(c, 503, "store_unavailable", "the store is throttled or unreachable; retry later");
    }
    if (error instanceof InvalidCursorError) return fail(c, 400, "invalid_request", error.message);
    logger.error("request failed", { method: c.req.method, path: c.req.path, error: describeError(error) });
    return fail(c, 500, "internal_error", "internal error");
  });
  app.notFound((c) => fail(c, 404, "not_found", `no route for ${c.req.method} ${c.req.path}`));

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    await store.ping();
    return c.json({ status: "ready" });
  });
  let openApi: unknown;
  app.get("/openapi.json", (c) => {
    openApi ??= buildOpenApiDocument();
    return c.json(openApi);
  });

  // Hono's bodyLimit guards bodies of unknown length as they stream in. A declared length is
  // checked from the header alone: bodyLimit reads `c.req.raw.body`, which makes @hono/node-server
  // build a full Request for every event, a measurable cost on the hot path (BENCHMARKS.md).
  const tooLarge = (c: Context) =>
    fail(c, 413, "payload_too_large", `body must be at most ${deps.maxBodyBytes} bytes`);
  const streamingLimit = bodyLimit({ maxSize: deps.maxBodyBytes, onError: tooLarge });
  const sizeLimit = async (c: Context, next: () => Promise<void>) => {
    const length = c.req.header("content-length");
    if (length === undefined || c.req.header("transfer-encoding") !== undefined)
      return streamingLimit(c, next);
    if (!/^\d{1,15}$/.test(length) || Number(length) > deps.maxBodyBytes) return tooLarge(c);
    await next();
  };

  app.post(
    "/v1/webhooks/run-steps",
    async (c, next) => {
      const type = c.req.header("content-type");
      if (!type || !JSON_MEDIA_TYPE.test(type)) {
        return fail(c, 415, "unsupported_media_type", "content-type must be application/json (UTF-8)");
      }
      await next();
    },
    sizeLimit,
    async (c) => {
      const body = new Uint8Array(await c.req.arrayBuffer());
      const check = await verifier.verify(
        {
          id: c.req.header("webhook-id") ?? c.req.header("svix-id"),
          timestamp: c.req.header("webhook-timestamp") ?? c.req.header("svix-timestamp"),
          signature: c.req.header("webhook-signature") ?? c.req.header("svix-signature"),
        },
        body,
        nowSeconds(),
      );
      if (!check.ok) return fail(c, 401, "invalid_signature", check.reason);

      let json: unknown;
      try {
        json = JSON.parse(utf8.decode(body));
      } catch {
        return fail(c, 400, "invalid_json", "body is not valid UTF-8 JSON");
      }
      const parsed = parseRunStepEvent(json);
      if (!parsed.ok) {
        return c.json<ErrorResponse>(
          {
            error: {
              code: "invalid_payload",
              message: "not a valid run step event",
              issues: [...parsed.issues],
            },
          },
          422,
        );
      }
      const { event } = parsed;
      if (event.kind === "delta") {
        return c.json<IngestResponse>({ step_id: event.stepId, status: null, outcome: "ignored" });
      }
      const { step } = event;
      const intents = notifier && isTerminalStatus(step.status) ? notifier.intentsFor(step) : [];
      const outcome = await store.apply({
        step,
        document: event.document,
        sentAt: check.timestamp,
        receivedAt: nowSeconds(),
        intents,
      });
      if (outcome === "conflict") {
        logger.warn("conflicting terminal status ignored", { step_id: step.id, status: step.status });
      }
      if (notifier && intents.length > 0 && (outcome === "created" || outcome === "updated")) {
        runAfterResponse(c, notifier.deliverPrompt({ step, document: event.document, intents }));
      }
      return c.json<IngestResponse>({ step_id: step.id, status: step.status, outcome });
    },
  );

  const auth = bearerAuth({
    token: [...deps.apiTokens],
    noAuthenticationHeader: { message: unauthorized("missing bearer token") },
    invalidAuthenticationHeader: { message: () => unauthorizedResponse("malformed Authorization header") },
    invalidToken: { message: unauthorized("invalid bearer token") },
  });
  app.use("/v1/run-steps/*", auth);
  app.use("/v1/runs/*", auth);
  app.use("/v1/deliveries", auth);
  app.use("/v1/deliveries/*", auth);

  app.get("/v1/run-steps/:step_id", async (c) => {
    const stepId = c.req.param("step_id");
    const stored = await store.getStep(stepId);
    if (!stored) return fail(c, 404, "not_found", `no step ${stepId}`);
    return c.json(toStepResponse(stored));
  });

  app.get("/v1/runs/:run_id/steps", async (c) => {
    const query = v.safeParse(ListQuerySchema, c.req.query());
    if (!query.success) return fail(c, 400, "invalid_request", query.issues[0].message);
    const page = await store.listRunSteps(
      c.req.param("run_id"),
      query.output.limit,
      query.output.cursor ?? null,
    );
    return c.json({ data: page.items.map(toStepResponse), next_cursor: page.nextCursor });
  });

  app.get("/v1/runs/:run_id", async (c) => {
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

  const deliveries = deps.deliveries;
  if (deliveries) {
    app.get("/v1/deliveries", async (c) => {
      const query = v.safeParse(DeliveryListQuerySchema, c.req.query());
      if (!query.success) return fail(c, 400, "invalid_request", query.issues[0].message);
      const { state, limit, cursor } = query.output;
      const page = await deliveries.listDeliveries(state, limit, cursor ?? null);
      return c.json({ data: page.items.map(toDeliveryResponse), next_cursor: page.nextCursor });
    });

    app.post("/v1/deliveries/:delivery_id/retry", async (c) => {
      const id = c.req.param("delivery_id");
      const parts = parseDeliveryId(id);
      const result = parts
        ? await deliveries.retry(parts.stepId, parts.sink, Date.now())
        : { kind: "not_found" as const };
      if (result.kind === "not_found") return fail(c, 404, "not_found", `no delivery ${id}`);
      if (result.kind === "not_dead") {
        return fail(
          c,
          409,
          "invalid_state",
          `delivery is ${result.delivery.state}; only dead deliveries are retried`,
        );
      }
      // Attempt it now rather than at the next sweep.
      if (notifier)
        runAfterResponse(
          c,
          notifier.sweep().then(
            () => undefined,
            () => undefined,
          ),
        );
      return c.json<DeliveryResponse>(toDeliveryResponse(result.delivery));
    });
  }

  return app;
}

function unauthorized(message: string): ErrorResponse {
  return { error: { code: "unauthorized", message } };
}

// A malformed header is still "not authenticated" to the caller: 401, as SPEC §5 says, not 400.
function unauthorizedResponse(message: string): Response {
  return new Response(JSON.stringify(unauthorized(message)), {
    status: 401,
    headers: { "content-type": "application/json" },
  });
}

// Workers must be told to keep the isolate alive for work after the response; Node simply runs it.
function runAfterResponse(c: Context, task: Promise<void>): void {
  let ctx: { waitUntil(promise: Promise<unknown>): void } | undefined;
  try {
    ctx = c.executionCtx;
  } catch {
    ctx = undefined;
  }
  ctx?.waitUntil(task);
}

/** The API's view of a delivery. */
export function toDeliveryResponse(d: Delivery): DeliveryResponse {
  return {
    id: d.id,
    step_id: d.stepId,
    run_id: d.runId,
    sink: d.sink,
    event: d.event,
    state: d.state,
    attempts: d.attempts,
    last_error: d.lastError,
    next_attempt_at: d.nextAttemptAt,
  };
}

function toStepResponse(stored: StoredStep): StoredStepResponse {
  // The document was validated as a RunStepObject when it was applied.
  return {
    ...(stored.document as Pick<StoredStepResponse, "id" | "object" | "status">),
    received_at: stored.receivedAt,
    updated_at: stored.updatedAt,
    conflicts: stored.conflicts,
    deliveries: stored.deliveries.map(toDeliveryResponse),
  };
}
