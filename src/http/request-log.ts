import type { Context, MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { LogFields, Logger, LogLevel } from "../observability/logger.js";

declare module "hono" {
  interface ContextVariableMap {
    /** This request's id: `X-Request-Id` when the caller sent a valid one, else generated. */
    requestId: string;
    /** What the handler adds to the request's log line (step, outcome, refusal reason, …). */
    logFields: LogFields;
  }
}

/** A caller's `X-Request-Id` is used when it is 1–128 of these characters, else one is generated. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

// Probes hit these every few seconds; their lines are debug so they do not drown the rest.
const QUIET_ROUTES = new Set(["/healthz", "/readyz"]);

/**
 * One structured line per request (time, request id, method, route pattern, status, latency, and
 * what the handler added), written when the answer is ready; the request id is echoed in
 * `X-Request-Id` and carried by every line the request causes.
 */
export function requestLog(
  logger: Logger,
  nowMs: () => number,
  onAnswered: (answer: AnsweredRequest) => void,
): MiddlewareHandler {
  return async (c, next) => {
    const started = nowMs();
    const given = c.req.header("x-request-id");
    const requestId = given !== undefined && REQUEST_ID.test(given) ? given : crypto.randomUUID();
    c.set("requestId", requestId);
    c.set("logFields", {});
    // Set before the handler builds its answer, so it is part of it: changing a response's headers
    // afterwards makes @hono/node-server build a full Response and costs a third of the throughput.
    c.header("X-Request-Id", requestId);
    await next();
    const status = c.res.status;
    const route = routePath(c, -1);
    const level: LogLevel =
      status >= 500 ? "error" : status >= 400 ? "warn" : QUIET_ROUTES.has(route) ? "debug" : "info";
    const latencyMs = nowMs() - started;
    const fields = c.get("logFields");
    // Built only when it will be written: at LOG_LEVEL=warn the hot path of 200s writes nothing.
    // Stryker disable next-line ConditionalExpression: the logger drops a line below its level itself; this only saves building it
    if (logger.enabled(level)) {
      logger[level]("request", {
        request_id: requestId,
        method: c.req.method,
        route,
        status,
        latency_ms: latencyMs,
        ...fields,
      });
    }
    onAnswered({ method: c.req.method, route, status, latencyMs, fields });
  };
}

/** What the request log knows of an answered request, for whoever counts requests. */
export interface AnsweredRequest {
  readonly method: string;
  readonly route: string;
  readonly status: number;
  readonly latencyMs: number;
  readonly fields: LogFields;
}

/** Adds fields to this request's log line. */
export function logFields(c: Context, fields: LogFields): void {
  c.set("logFields", { ...c.get("logFields"), ...fields });
}
