import type { Context } from "hono";
import { deliveryId, refOf } from "../domain/delivery.js";
import type { QuarantinedRequest, Refusal } from "../domain/quarantined-request.js";
import type { StoredStep } from "../store/step-store.js";
import type { DeliveryView, SinkTestResult, SinkView } from "../usecases/delivery-operations.js";
import type {
  DeliveryResponse,
  ErrorCode,
  ErrorResponse,
  QuarantineResponse,
  SinkResponse,
  SinkTestResponse,
  StoredStepResponse,
} from "./api-schemas.js";
import { logFields } from "./request-log.js";

/** Status codes of error answers. */
export type ErrorStatus = 400 | 401 | 404 | 409 | 413 | 415 | 422 | 500 | 503;

/**
 * The answer to a refused body (ingest, or a replay still refused): the API's error shape with the
 * refusal's issues, and the quarantine id when the request was kept.
 */
export function refused(c: Context, refusal: Refusal, message: string, quarantineId?: string) {
  logFields(c, {
    error_code: refusal.code,
    ...(quarantineId ? { quarantine_id: quarantineId } : {}),
    ...(refusal.issues.length > 0 ? { issues: refusal.issues.length } : {}),
  });
  const error: ErrorResponse["error"] = { code: refusal.code, message };
  if (refusal.issues.length > 0) error.issues = [...refusal.issues];
  // Stryker disable next-line ConditionalExpression: an undefined quarantine_id is left out of the JSON anyway.
  if (quarantineId) error.quarantine_id = quarantineId;
  return c.json<ErrorResponse>({ error }, refusal.status);
}

/** An error answer in the API's one error shape. */
export function fail(c: Context, status: ErrorStatus, code: ErrorCode, message: string) {
  logFields(c, { error_code: code });
  return c.json<ErrorResponse>({ error: { code, message } }, status);
}

const seconds = (ms: number) => Math.floor(ms / 1000);
const secondsUp = (ms: number) => Math.ceil(ms / 1000);

/** The API's view of a delivery. */
export function toDeliveryResponse(view: DeliveryView): DeliveryResponse {
  const d = view.delivery;
  return {
    id: deliveryId(refOf(d)),
    // A run step's id, as before there were other kinds; null for a response's or a session's.
    step_id: d.kind === "run_step" ? d.subjectId : null,
    subject: { kind: d.kind, id: d.subjectId },
    run_id: d.runId,
    sink: d.sink,
    event: d.event,
    state: view.state,
    attempts: d.attempts,
    last_error: d.lastError,
    next_attempt_at: view.nextAttemptMs === null ? null : secondsUp(view.nextAttemptMs),
    created_at: seconds(d.createdAtMs),
    recent_attempts: d.log.map((a) => ({
      attempt: a.attempt,
      at: seconds(a.at),
      status: a.status,
      latency_ms: Math.round(a.latencyMs),
      error: a.error,
    })),
  };
}

/** The API's view of a sink. */
export function toSinkResponse(view: SinkView, nowMs: number): SinkResponse {
  const { health, backlog } = view;
  return {
    name: view.config.name,
    type: view.config.type,
    state: health.state,
    consecutive_failures: health.consecutiveFailures,
    last_success: health.lastSuccess
      ? { at: seconds(health.lastSuccess.atMs), status: health.lastSuccess.status }
      : null,
    last_failure: health.lastFailure
      ? {
          at: seconds(health.lastFailure.atMs),
          status: health.lastFailure.status,
          error: health.lastFailure.error,
        }
      : null,
    next_probe_at:
      health.state === "failing" && health.nextProbeAtMs !== null ? secondsUp(health.nextProbeAtMs) : null,
    // Stryker disable next-line ConditionalExpression: the store removes the reason when it enables a sink, so no other state has one.
    disabled_reason: health.state === "disabled" ? health.disabledReason : null,
    pending: backlog.pending,
    oldest_pending_age_s:
      backlog.oldestPendingCreatedMs === null
        ? null
        : Math.max(0, seconds(nowMs - backlog.oldestPendingCreatedMs)),
    public_key: view.publicKey,
  };
}

/** The API's view of a sink test. */
export function toSinkTestResponse(sink: string, result: SinkTestResult): SinkTestResponse {
  return {
    sink,
    ok: result.ok,
    status: result.status,
    latency_ms: Math.round(result.latencyMs),
    error: result.error,
    webhook_id: result.webhookId,
  };
}

/** The API's view of a stored step: its document as last applied, with stepwatch's own fields. */
export function toStepResponse(stored: StoredStep, deliveries: readonly DeliveryView[]): StoredStepResponse {
  // The document was validated as a RunStepObject when it was applied.
  return {
    ...(stored.document as Pick<StoredStepResponse, "id" | "object" | "status">),
    received_at: stored.receivedAt,
    updated_at: stored.updatedAt,
    conflicts: stored.conflicts,
    deliveries: deliveries.map(toDeliveryResponse),
  };
}

/** The API's view of a quarantined request (without its body). */
export function toQuarantineResponse(record: QuarantinedRequest): QuarantineResponse {
  const { refusal, replay } = record;
  return {
    id: record.id,
    received_at: seconds(record.receivedAtMs),
    expires_at: record.expiresAt,
    webhook_id: record.webhookId,
    webhook_timestamp: record.webhookTimestamp,
    status: refusal.status,
    error: {
      code: refusal.code,
      message: refusal.message,
      ...(refusal.issues.length > 0 ? { issues: [...refusal.issues] } : {}),
    },
    body_bytes: record.bodyBytes,
    state: replay ? "replayed" : "quarantined",
    replayed_at: replay ? seconds(replay.atMs) : null,
    replay: replay ? { step_id: replay.stepId, outcome: replay.outcome } : null,
  };
}
