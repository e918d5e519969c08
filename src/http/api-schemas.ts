import * as v from "valibot";
import { RUN_STEP_STATUSES, TERMINAL_STATUSES } from "../domain/run-step-schema.js";

const ISSUE = v.object({ path: v.string(), message: v.string() });

/** Body of every error response. */
export const ErrorResponseSchema = v.object({
  error: v.object({
    code: v.picklist([
      "invalid_json",
      "invalid_payload",
      "invalid_signature",
      "payload_too_large",
      "unsupported_media_type",
      "store_unavailable",
      "unauthorized",
      "not_found",
      "invalid_request",
      "invalid_state",
      "already_replayed",
      "internal_error",
    ]),
    message: v.string(),
    issues: v.optional(v.array(ISSUE)),
    /** A signed request that was refused is kept: replay or inspect it under this id. */
    quarantine_id: v.optional(v.string()),
  }),
});

/** An error response body. */
export type ErrorResponse = v.InferOutput<typeof ErrorResponseSchema>;

/** Error codes the API answers with. */
export type ErrorCode = ErrorResponse["error"]["code"];

/** Answer to an accepted webhook. */
export const IngestResponseSchema = v.object({
  step_id: v.string(),
  status: v.nullable(v.picklist(RUN_STEP_STATUSES)),
  outcome: v.picklist(["created", "updated", "unchanged", "stale", "conflict", "ignored"]),
});

/** An accepted webhook's answer. */
export type IngestResponse = v.InferOutput<typeof IngestResponseSchema>;

const unixSeconds = v.pipe(v.number(), v.integer());

/** One attempt of a delivery, as its attempt log keeps it. */
export const DeliveryAttemptResponseSchema = v.object({
  attempt: v.pipe(v.number(), v.integer()),
  at: unixSeconds,
  /** The sink's HTTP status; null when it never answered. */
  status: v.nullable(v.pipe(v.number(), v.integer())),
  latency_ms: v.pipe(v.number(), v.integer()),
  error: v.nullable(v.string()),
});

/** A notification delivery as the operator API shows it. */
export const DeliveryResponseSchema = v.object({
  id: v.string(),
  step_id: v.string(),
  run_id: v.string(),
  sink: v.string(),
  event: v.picklist(TERMINAL_STATUSES.map((s) => `run_step.${s}` as const)),
  state: v.picklist(["pending", "parked", "delivered", "dead"]),
  attempts: v.pipe(v.number(), v.integer()),
  last_error: v.nullable(v.string()),
  next_attempt_at: v.nullable(unixSeconds),
  created_at: unixSeconds,
  /** The most recent attempts, oldest first (at most 10). */
  recent_attempts: v.array(DeliveryAttemptResponseSchema),
});

/** A delivery in the API. */
export type DeliveryResponse = v.InferOutput<typeof DeliveryResponseSchema>;

/** A sink's state and backlog (SPEC §6). */
export const SinkResponseSchema = v.object({
  name: v.string(),
  type: v.picklist(["webhook", "slack", "pagerduty", "console"]),
  state: v.picklist(["healthy", "failing", "disabled"]),
  consecutive_failures: v.pipe(v.number(), v.integer()),
  last_success: v.nullable(
    v.object({ at: unixSeconds, status: v.nullable(v.pipe(v.number(), v.integer())) }),
  ),
  last_failure: v.nullable(
    v.object({ at: unixSeconds, status: v.nullable(v.pipe(v.number(), v.integer())), error: v.string() }),
  ),
  /** When a failing sink is next probed. */
  next_probe_at: v.nullable(unixSeconds),
  disabled_reason: v.nullable(v.string()),
  pending: v.pipe(v.number(), v.integer()),
  oldest_pending_age_s: v.nullable(v.pipe(v.number(), v.integer())),
  /** whpk_ key of a webhook sink's signing_key (its v1a signatures), else null; described in openapi-document. */
  public_key: v.nullable(v.string()),
});

/** A sink in the API. */
export type SinkResponse = v.InferOutput<typeof SinkResponseSchema>;

/** Answer to `POST /v1/sinks/{name}/test`. */
export const SinkTestResponseSchema = v.object({
  sink: v.string(),
  ok: v.boolean(),
  status: v.nullable(v.pipe(v.number(), v.integer())),
  latency_ms: v.pipe(v.number(), v.integer()),
  error: v.nullable(v.string()),
  webhook_id: v.nullable(v.string()),
});

/** A sink test's answer. */
export type SinkTestResponse = v.InferOutput<typeof SinkTestResponseSchema>;

const timeBound = (name: string) =>
  v.optional(
    v.pipe(
      v.number(`${name} must be Unix seconds`),
      v.integer(`${name} must be Unix seconds`),
      v.minValue(0, `${name} must be Unix seconds`),
      v.maxValue(10_000_000_000, `${name} must be Unix seconds`),
    ),
  );

/** Body of `POST /v1/deliveries/retry`: dead deliveries of one sink, by when they died. */
export const BulkRetryRequestSchema = v.strictObject({
  sink: v.pipe(
    v.string("sink is required"),
    v.regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "sink must be a sink name"),
  ),
  since: timeBound("since"),
  until: timeBound("until"),
  limit: v.optional(
    v.pipe(
      v.number("limit must be a whole number from 1 to 1000"),
      v.integer("limit must be a whole number from 1 to 1000"),
      v.minValue(1, "limit must be a whole number from 1 to 1000"),
      v.maxValue(1000, "limit must be a whole number from 1 to 1000"),
    ),
    1000,
  ),
});

/** Answer to a bulk retry. */
export const BulkRetryResponseSchema = v.object({
  /** Dead deliveries made pending again. */
  queued: v.pipe(v.number(), v.integer()),
  /** Whether more dead deliveries match: call again to queue them. */
  more: v.boolean(),
});

/** A stored step: the RunStepObject as last applied plus what stepwatch knows of it. */
export const StoredStepResponseSchema = v.looseObject({
  id: v.string(),
  object: v.literal("thread.run.step"),
  status: v.picklist(RUN_STEP_STATUSES),
  received_at: v.number(),
  updated_at: v.number(),
  conflicts: v.number(),
  deliveries: v.array(DeliveryResponseSchema),
});

/** A stored step in the API. */
export type StoredStepResponse = v.InferOutput<typeof StoredStepResponseSchema>;

const TokenSums = v.object({
  prompt_tokens: v.number(),
  completion_tokens: v.number(),
  total_tokens: v.number(),
});

/** A run's rollup: step counts by status and summed usage, each step counted once. */
export const RunRollupResponseSchema = v.object({
  run_id: v.string(),
  thread_id: v.string(),
  assistant_id: v.string(),
  steps: v.object({
    total: v.number(),
    in_progress: v.number(),
    completed: v.number(),
    failed: v.number(),
    cancelled: v.number(),
    expired: v.number(),
  }),
  usage: TokenSums,
  first_created_at: v.number(),
  last_updated_at: v.number(),
});

/** A run rollup in the API. */
export type RunRollupResponse = v.InferOutput<typeof RunRollupResponseSchema>;

/** A page of a list. */
export const pageSchema = <T extends v.GenericSchema>(item: T) =>
  v.object({ data: v.array(item), next_cursor: v.nullable(v.string()) });

/** `limit` and `cursor` of a list request. */
export const ListQuerySchema = v.object({
  limit: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d+$/, "limit must be a whole number from 1 to 100"),
      v.transform(Number),
      v.minValue(1, "limit must be a whole number from 1 to 100"),
      v.maxValue(100, "limit must be a whole number from 1 to 100"),
    ),
    "20",
  ),
  cursor: v.optional(v.pipe(v.string(), v.minLength(1, "cursor must not be empty"))),
});

/** `state`, `sink`, `limit` and `cursor` of the deliveries list. */
export const DeliveryListQuerySchema = v.object({
  ...ListQuerySchema.entries,
  state: v.picklist(["pending", "dead"], "state must be pending or dead"),
  sink: v.optional(
    v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "sink must be a sink name")),
  ),
});

const unixSecondsParam = (name: string) =>
  v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d{1,11}$/, `${name} must be Unix seconds`),
      v.transform(Number),
      v.maxValue(10_000_000_000, `${name} must be Unix seconds`),
    ),
  );

/** Query of `GET /v1/run-steps`: terminal steps across runs, newest first. */
export const StepListQuerySchema = v.pipe(
  v.object({
    ...ListQuerySchema.entries,
    status: v.optional(
      v.pipe(
        v.string(),
        v.transform((value) => value.split(",").map((item) => item.trim())),
        v.array(
          v.picklist(
            TERMINAL_STATUSES,
            `status must be among ${TERMINAL_STATUSES.join(", ")} (comma-separated)`,
          ),
        ),
        v.minLength(1, "status must not be empty"),
      ),
    ),
    since: unixSecondsParam("since"),
    until: unixSecondsParam("until"),
    assistant_id: v.optional(
      v.pipe(
        v.string(),
        v.minLength(1, "assistant_id must not be empty"),
        v.maxLength(512, "assistant_id is too long"),
      ),
    ),
  }),
  v.check(
    (query) => query.since === undefined || query.until === undefined || query.since <= query.until,
    "since must not be after until",
  ),
);

/** A quarantined request: a signed one whose body was refused, kept for replay. */
export const QuarantineResponseSchema = v.object({
  id: v.string(),
  received_at: unixSeconds,
  /** After this it is gone (QUARANTINE_DAYS after it arrived). */
  expires_at: unixSeconds,
  webhook_id: v.string(),
  webhook_timestamp: unixSeconds,
  /** The status its sender was answered. */
  status: v.picklist([400, 413, 422]),
  error: v.object({
    code: v.picklist(["invalid_json", "invalid_payload", "payload_too_large"]),
    message: v.string(),
    issues: v.optional(v.array(ISSUE)),
  }),
  body_bytes: v.pipe(v.number(), v.integer()),
  state: v.picklist(["quarantined", "replayed"]),
  replayed_at: v.nullable(unixSeconds),
  replay: v.nullable(v.object({ step_id: v.nullable(v.string()), outcome: v.string() })),
});

/** The API's view of a quarantined request. */
export type QuarantineResponse = v.InferOutput<typeof QuarantineResponseSchema>;

/** One quarantined request with its headers and raw body (text, or base64 when not UTF-8). */
export const QuarantineDetailResponseSchema = v.object({
  ...QuarantineResponseSchema.entries,
  headers: v.record(v.string(), v.string()),
  body: v.optional(v.string()),
  body_base64: v.optional(v.string()),
});

/** What a replay did. */
export const ReplayResponseSchema = v.object({
  quarantine_id: v.string(),
  step_id: v.nullable(v.string()),
  status: v.nullable(v.picklist(RUN_STEP_STATUSES)),
  outcome: v.picklist(["created", "updated", "unchanged", "stale", "conflict", "ignored"]),
});
