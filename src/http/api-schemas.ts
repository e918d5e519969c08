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
      "internal_error",
    ]),
    message: v.string(),
    issues: v.optional(v.array(ISSUE)),
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

/** A notification delivery as the operator API shows it. */
export const DeliveryResponseSchema = v.object({
  id: v.string(),
  step_id: v.string(),
  run_id: v.string(),
  sink: v.string(),
  event: v.picklist(TERMINAL_STATUSES.map((s) => `run_step.${s}` as const)),
  state: v.picklist(["pending", "delivered", "dead"]),
  attempts: v.number(),
  last_error: v.nullable(v.string()),
  next_attempt_at: v.nullable(v.number()),
});

/** A delivery in the API. */
export type DeliveryResponse = v.InferOutput<typeof DeliveryResponseSchema>;

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

/** Parsed list parameters. */
export type ListQuery = v.InferOutput<typeof ListQuerySchema>;

/** `state`, `limit` and `cursor` of the deliveries list. */
export const DeliveryListQuerySchema = v.object({
  ...ListQuerySchema.entries,
  state: v.picklist(["pending", "dead"], "state must be pending or dead"),
});
