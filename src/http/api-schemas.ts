import * as v from "valibot";
import { RUN_STEP_STATUSES } from "../domain/run-step-schema.js";
import { SUBJECT_KIND_NAMES } from "../domain/subject.js";
import { ALL_EVENTS } from "../domain/subject-kinds.js";

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

/** What applying an event did to its step. */
export const OutcomeSchema = v.picklist(["created", "updated", "unchanged", "stale", "conflict", "ignored"]);

/** Unix seconds. */
export const unixSeconds = v.pipe(v.number(), v.integer());

/** A whole number of things. */
export const count = v.pipe(v.number(), v.integer(), v.minValue(0));

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
  /** The run step's id; null for a delivery about another kind of subject. */
  step_id: v.nullable(v.string()),
  /** What it is about: a run step, a response, or (by the OpenAI event that owes it) an agent session. */
  subject: v.object({ kind: v.picklist(SUBJECT_KIND_NAMES), id: v.string() }),
  run_id: v.string(),
  sink: v.string(),
  event: v.picklist(ALL_EVENTS),
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

/** A stored step: the RunStepObject as last applied plus what stepwatch knows of it. */
export const StoredStepResponseSchema = v.looseObject({
  id: v.string(),
  object: v.literal("thread.run.step"),
  status: v.picklist(RUN_STEP_STATUSES),
  /** When stepwatch first received it (Unix seconds). */
  received_at: unixSeconds,
  /** When stepwatch last applied it (Unix seconds). */
  updated_at: unixSeconds,
  /** Events that contradicted a terminal status already applied. */
  conflicts: count,
  deliveries: v.array(DeliveryResponseSchema),
});

/** A stored step in the API. */
export type StoredStepResponse = v.InferOutput<typeof StoredStepResponseSchema>;

/** A page of a list. */
export const pageSchema = <T extends v.GenericSchema>(item: T) =>
  v.object({ data: v.array(item), next_cursor: v.nullable(v.string()) });

/** Page size of a list request when `limit` is absent. */
export const DEFAULT_PAGE_SIZE = 20;

const LIMIT_MESSAGE = "limit must be a whole number from 1 to 100";

/**
 * `limit` and `cursor` of a list request. A query value is a string: digits only, then a number
 * (documented as the integer it stands for; the validator sees the string's pipeline).
 */
export const ListQuerySchema = v.object({
  limit: v.optional(
    v.pipe(
      v.string(LIMIT_MESSAGE),
      v.regex(/^\d+$/, LIMIT_MESSAGE),
      v.transform(Number),
      v.number(),
      v.integer(),
      v.minValue(1, LIMIT_MESSAGE),
      v.maxValue(100, LIMIT_MESSAGE),
      v.metadata({ default: DEFAULT_PAGE_SIZE }),
      v.description("page size"),
    ),
  ),
  cursor: v.optional(
    v.pipe(
      v.string("cursor must be a string"),
      v.minLength(1, "cursor must not be empty"),
      v.description("next_cursor of the previous page"),
    ),
  ),
});

/** A quarantined request: a signed one whose body was refused, kept for replay. */
export const QuarantineResponseSchema = v.object({
  id: v.string(),
  received_at: unixSeconds,
  /** After this it is gone (QUARANTINE_DAYS after it arrived). */
  expires_at: unixSeconds,
  webhook_id: v.string(),
  webhook_timestamp: unixSeconds,
  /** The status its sender was answered. */
  status: v.pipe(v.picklist([400, 413, 422]), v.metadata({ type: "integer" })),
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
