import * as v from "valibot";

/** Every status a run step can have, in OpenAI's order. */
export const RUN_STEP_STATUSES = ["in_progress", "cancelled", "failed", "completed", "expired"] as const;

/** A run step status. */
export type RunStepStatus = (typeof RUN_STEP_STATUSES)[number];

/** The statuses after which a step never changes again. */
export const TERMINAL_STATUSES = ["completed", "failed", "cancelled", "expired"] as const;

/** A terminal run step status. */
export type TerminalStatus = (typeof TERMINAL_STATUSES)[number];

/** Upper bound of a timestamp: catches milliseconds sent where seconds are due. */
const MAX_UNIX_SECONDS = 10_000_000_000;

const TimestampSchema = v.pipe(
  v.number("must be a number"),
  v.integer("must be a whole number of seconds"),
  v.minValue(0, "must not be negative"),
  v.maxValue(MAX_UNIX_SECONDS, "must be Unix seconds, not milliseconds (at most 10^10)"),
);

const NullableTimestampSchema = v.nullable(TimestampSchema);

/** Absent is read as null: OpenAI's own streaming examples omit these fields. */
const AbsentAsNullTimestampSchema = v.optional(NullableTimestampSchema, null);

// Token counts are summed into a run's rollup and kept as DynamoDB numbers: beyond 2^53 − 1 a sum
// is no longer exact in JSON or JavaScript, and 1e200 is outside DynamoDB's number range.
const TokenCountSchema = v.pipe(
  v.number("must be a number"),
  v.integer("must be an integer"),
  v.minValue(0, "must not be negative"),
  v.maxValue(Number.MAX_SAFE_INTEGER, "must be at most 2^53 - 1 (9007199254740991)"),
);

/**
 * Most UTF-8 bytes of the ids that become keys and index attributes (step, run, thread and
 * assistant ids). DynamoDB limits a sort key to 1,024 bytes and a step id is part of two of them
 * (`rsk`, `obt`); OpenAI's ids are about 30 characters, so 512 leaves room for any producer.
 */
export const MAX_ID_BYTES = 512;

const nonEmpty = (what: string) =>
  v.pipe(v.string(`${what} must be a string`), v.minLength(1, `${what} must not be empty`));

// An id that is copied into keys and index attributes, so bounded by what DynamoDB accepts there.
const keyId = (what: string) =>
  v.pipe(nonEmpty(what), v.maxBytes(MAX_ID_BYTES, `${what} must be at most ${MAX_ID_BYTES} bytes (UTF-8)`));

/** Whether a JSON value is an object (not an array, not null). */
export const isPlainObject = (input: unknown): input is Record<string, unknown> =>
  typeof input === "object" && input !== null && !Array.isArray(input);

/**
 * A JSON object with these fields. Valibot's object schemas accept arrays (an array is an object to
 * `typeof`), and SPEC Appendix A says which containers are objects, so an array is refused first.
 */
export function jsonObject<const E extends v.ObjectEntries>(entries: E) {
  return v.pipe(
    v.custom<Record<string, unknown>>(isPlainObject, "must be an object"),
    v.looseObject(entries),
  );
}

/** `usage` of a run step: null while it is in progress. */
export const RunStepUsageSchema = jsonObject({
  prompt_tokens: TokenCountSchema,
  completion_tokens: TokenCountSchema,
  total_tokens: TokenCountSchema,
});

/** `last_error` of a failed step. */
export const LastErrorSchema = jsonObject({
  code: v.picklist(["server_error", "rate_limit_exceeded"], "must be server_error or rate_limit_exceeded"),
  message: v.string("must be a string"),
});

const METADATA_MAX_KEYS = 16;
const METADATA_MAX_KEY_LENGTH = 64;
const METADATA_MAX_VALUE_LENGTH = 512;

/**
 * Set of 16 key-value pairs at most; keys ≤ 64 characters, values strings ≤ 512. Checked over the
 * object's own keys as JSON.parse made them: Valibot's `record` skips keys named `__proto__`,
 * `constructor` and `prototype` (a guard against prototype pollution), which would let them past
 * every bound here.
 */
export const MetadataSchema = v.pipe(
  v.custom<Record<string, string>>(isPlainObject, "must be an object of string values"),
  // The same bounds in JSON Schema terms, for the OpenAPI document (rawCheck has no such form).
  v.metadata({
    type: "object",
    maxProperties: METADATA_MAX_KEYS,
    propertyNames: { maxLength: METADATA_MAX_KEY_LENGTH },
    additionalProperties: { type: "string", maxLength: METADATA_MAX_VALUE_LENGTH },
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const metadata = dataset.value;
    const keys = Object.keys(metadata);
    if (keys.length > METADATA_MAX_KEYS) addIssue({ message: `must have at most ${METADATA_MAX_KEYS} keys` });
    for (const key of keys) {
      const value: unknown = metadata[key];
      // A new array per issue: each enclosing schema prepends its own key to an issue's path in
      // place, so two issues sharing one array would each get the enclosing keys twice.
      const path = (): [v.ObjectPathItem] => [pathItem(metadata, key, value)];
      if (key.length > METADATA_MAX_KEY_LENGTH) {
        addIssue({
          message: `metadata keys must be at most ${METADATA_MAX_KEY_LENGTH} characters`,
          path: path(),
        });
      }
      if (typeof value !== "string") addIssue({ message: "metadata values must be strings", path: path() });
      else if (value.length > METADATA_MAX_VALUE_LENGTH) {
        addIssue({
          message: `metadata values must be at most ${METADATA_MAX_VALUE_LENGTH} characters`,
          path: path(),
        });
      }
    }
  }),
);

const MessageCreationDetailsSchema = v.looseObject({
  type: v.literal("message_creation"),
  message_creation: jsonObject({ message_id: nonEmpty("message_id") }),
});

const CodeInterpreterOutputSchema = v.variant(
  "type",
  [
    v.looseObject({ type: v.literal("logs"), logs: v.string("must be a string") }),
    v.looseObject({ type: v.literal("image"), image: jsonObject({ file_id: nonEmpty("file_id") }) }),
  ],
  "must be a logs or image output",
);

const CodeInterpreterToolCallSchema = v.looseObject({
  id: nonEmpty("id"),
  type: v.literal("code_interpreter"),
  code_interpreter: jsonObject({
    input: v.string("must be a string"),
    outputs: v.array(CodeInterpreterOutputSchema, "must be an array"),
  }),
});

const ScoreSchema = v.pipe(
  v.number("must be a number"),
  v.minValue(0, "must be between 0 and 1"),
  v.maxValue(1, "must be between 0 and 1"),
);

const FileSearchToolCallSchema = v.looseObject({
  id: nonEmpty("id"),
  type: v.literal("file_search"),
  file_search: jsonObject({
    ranking_options: v.optional(
      jsonObject({
        ranker: v.picklist(["auto", "default_2024_08_21"], "must be auto or default_2024_08_21"),
        score_threshold: ScoreSchema,
      }),
    ),
    results: v.optional(
      v.array(
        jsonObject({
          file_id: nonEmpty("file_id"),
          file_name: v.string("must be a string"),
          score: ScoreSchema,
          content: v.optional(
            v.array(
              jsonObject({
                type: v.optional(v.literal("text")),
                text: v.optional(v.string("must be a string")),
              }),
            ),
          ),
        }),
      ),
    ),
  }),
});

const FunctionToolCallSchema = v.looseObject({
  id: nonEmpty("id"),
  type: v.literal("function"),
  function: jsonObject({
    name: v.string("must be a string"),
    arguments: v.string("must be a string"),
    output: v.nullable(v.string("must be a string or null")),
  }),
});

/** One tool call of a `tool_calls` step. */
export const ToolCallSchema = v.variant(
  "type",
  [CodeInterpreterToolCallSchema, FileSearchToolCallSchema, FunctionToolCallSchema],
  "must be a code_interpreter, file_search or function tool call",
);

const ToolCallsDetailsSchema = v.looseObject({
  type: v.literal("tool_calls"),
  tool_calls: v.array(ToolCallSchema, "must be an array"),
});

/** `step_details`: what the step did. */
export const StepDetailsSchema = v.variant(
  "type",
  [MessageCreationDetailsSchema, ToolCallsDetailsSchema],
  "must be message_creation or tool_calls details",
);

/** The timestamp field a terminal step must carry, by status. */
export const TERMINAL_TIMESTAMP = {
  completed: "completed_at",
  failed: "failed_at",
  cancelled: "cancelled_at",
  expired: "expired_at",
} as const satisfies Record<TerminalStatus, string>;

const RunStepObjectSchema = jsonObject({
  id: keyId("id"),
  object: v.literal("thread.run.step", 'must be "thread.run.step"'),
  created_at: TimestampSchema,
  assistant_id: keyId("assistant_id"),
  thread_id: keyId("thread_id"),
  run_id: keyId("run_id"),
  type: v.picklist(["message_creation", "tool_calls"], "must be message_creation or tool_calls"),
  status: v.picklist(RUN_STEP_STATUSES, `must be one of ${RUN_STEP_STATUSES.join(", ")}`),
  step_details: StepDetailsSchema,
  last_error: v.nullable(LastErrorSchema),
  expired_at: AbsentAsNullTimestampSchema,
  cancelled_at: NullableTimestampSchema,
  failed_at: NullableTimestampSchema,
  completed_at: NullableTimestampSchema,
  metadata: v.optional(v.nullable(MetadataSchema), null),
  usage: v.nullable(RunStepUsageSchema),
});

/**
 * OpenAI's `RunStepObject`, validated in full, plus the cross-field rules: `step_details.type`
 * equals `type`, and a terminal step carries the timestamp of its status (a failed one also
 * `last_error`). Unknown fields are accepted; the caller keeps the original JSON for storage.
 */
export const RunStepSchema = v.pipe(
  RunStepObjectSchema,
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const step = dataset.value;
    if (step.step_details.type !== step.type) {
      addIssue({
        message: `must equal the step's type "${step.type}"`,
        path: [
          pathItem(step, "step_details", step.step_details),
          pathItem(step.step_details, "type", step.step_details.type),
        ],
      });
    }
    // Stryker disable next-line ConditionalExpression,StringLiteral: in_progress has no TERMINAL_TIMESTAMP and is not "failed", so the checks below add nothing for it anyway.
    if (step.status === "in_progress") return;
    const field = TERMINAL_TIMESTAMP[step.status];
    if (step[field] === null) {
      addIssue({
        message: `is required when status is "${step.status}"`,
        path: [pathItem(step, field, null)],
      });
    }
    if (step.status === "failed" && step.last_error === null) {
      addIssue({
        message: 'is required when status is "failed"',
        path: [pathItem(step, "last_error", null)],
      });
    }
  }),
);

/** A validated run step. */
export type RunStep = v.InferOutput<typeof RunStepSchema>;

// Cross-field issues point at the field they are about, not at the whole step.
function pathItem(input: unknown, key: string, value: unknown): v.ObjectPathItem {
  // Stryker disable next-line StringLiteral: issues are read through getDotPath, which uses only the key.
  return { type: "object", origin: "value", input: input as Record<string, unknown>, key, value };
}

/** Whether a status is terminal. */
export function isTerminalStatus(status: RunStepStatus): status is TerminalStatus {
  return status !== "in_progress";
}
