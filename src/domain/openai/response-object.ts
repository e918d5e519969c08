import * as v from "valibot";
import { jsonObject, MetadataSchema } from "../run-step-schema.js";
import { nonEmptyString, openAiId, TokenCountSchema, UnixSecondsSchema } from "./openai-fields.js";

/** Every status of a Responses API response, in its lifecycle's order. */
export const RESPONSE_STATUSES = [
  "queued",
  "in_progress",
  "completed",
  "failed",
  "cancelled",
  "incomplete",
] as const;

/** A response's status. */
export type ResponseStatus = (typeof RESPONSE_STATUSES)[number];

/** The statuses a response never leaves (SPEC §9: never back, never between terminals). */
export const RESPONSE_TERMINAL_STATUSES = ["completed", "failed", "cancelled", "incomplete"] as const;

/** A terminal response status. */
export type ResponseTerminalStatus = (typeof RESPONSE_TERMINAL_STATUSES)[number];

/** Whether a response in this status can still change. */
export function isTerminalResponseStatus(status: ResponseStatus): status is ResponseTerminalStatus {
  return (RESPONSE_TERMINAL_STATUSES as readonly string[]).includes(status);
}

/**
 * A status's place in the one-way order queued (0) < in_progress (1) < any terminal (2). A
 * snapshot of a lower rank than the stored one is stale; two different terminals are a conflict,
 * which the rank alone does not decide (equal ranks), so the state rules compare statuses too.
 */
export function responseStatusRank(status: ResponseStatus): 0 | 1 | 2 {
  if (status === "queued") return 0;
  return status === "in_progress" ? 1 : 2;
}

/**
 * One output item, only as far as a projection reads it. `type` is open (OpenAI adds item types
 * often), `id` is optional (function_call and custom_tool_call may lack one) and becomes a step
 * key, `status` is an open string (each item type has its own vocabulary) or null.
 */
export const ResponseOutputItemSchema = jsonObject({
  type: nonEmptyString("type"),
  id: v.optional(openAiId("id")),
  status: v.optional(v.nullable(v.string("must be a string"))),
});

/** An output item as read. */
export type ResponseOutputItem = v.InferOutput<typeof ResponseOutputItemSchema>;

/** `usage` of a response: input → prompt, output → completion tokens in a run's rollup. */
export const ResponseUsageSchema = jsonObject({
  input_tokens: TokenCountSchema,
  output_tokens: TokenCountSchema,
  total_tokens: TokenCountSchema,
});

// Absent is read as null: compatible servers omit what OpenAI sends as null.
const absentAsNull = <S extends v.GenericSchema>(schema: S) => v.optional(v.nullable(schema), null);

/**
 * What stepwatch reads from a Response (`GET /responses/{id}`), every unknown field kept. Codes
 * and reasons are open strings, not the SDK's closed unions, so a new error code OpenAI adds is
 * still shown rather than turning a hydration into `invalid`.
 */
export const ResponseObjectSchema = jsonObject({
  id: openAiId("id"),
  object: v.literal("response", 'must be "response"'),
  created_at: UnixSecondsSchema,
  status: v.picklist(RESPONSE_STATUSES, `must be one of ${RESPONSE_STATUSES.join(", ")}`),
  model: v.pipe(nonEmptyString("model"), v.maxLength(255, "model must be at most 255 characters")),
  output: v.array(ResponseOutputItemSchema, "must be an array"),
  error: absentAsNull(
    jsonObject({ code: v.string("must be a string"), message: v.string("must be a string") }),
  ),
  incomplete_details: absentAsNull(
    jsonObject({ reason: v.optional(v.nullable(v.string("must be a string"))) }),
  ),
  usage: absentAsNull(ResponseUsageSchema),
  metadata: absentAsNull(MetadataSchema),
  prompt: absentAsNull(jsonObject({ id: openAiId("prompt.id") })),
  conversation: absentAsNull(jsonObject({ id: openAiId("conversation.id") })),
});

/** A response as read (unknown fields kept). */
export type ResponseObject = v.InferOutput<typeof ResponseObjectSchema>;
