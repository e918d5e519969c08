import * as v from "valibot";
import { checkJsonValues, type JsonValueIssue } from "./json-value-check.js";
import {
  jsonObject,
  RUN_STEP_STATUSES,
  type RunStep,
  RunStepSchema,
  type RunStepStatus,
} from "./run-step-schema.js";

const STEP_EVENT_SUFFIXES = ["created", ...RUN_STEP_STATUSES] as const;

/** Event names that carry a full run step, e.g. `thread.run.step.completed`. */
export const RUN_STEP_EVENT_NAMES = STEP_EVENT_SUFFIXES.map((s) => `thread.run.step.${s}` as const);

/** The streaming delta event: acknowledged, never stored. */
export const DELTA_EVENT_NAME = "thread.run.step.delta";

const DELTA_OBJECT = "thread.run.step.delta";

/** `thread.run.step.delta` payload: a fragment of step_details, not a snapshot. */
export const RunStepDeltaSchema = jsonObject({
  id: v.pipe(v.string("must be a string"), v.minLength(1, "must not be empty")),
  object: v.literal(DELTA_OBJECT, `must be "${DELTA_OBJECT}"`),
  delta: jsonObject({ step_details: v.optional(v.unknown()) }),
});

const StepEventNameSchema = v.picklist(
  RUN_STEP_EVENT_NAMES,
  `must be one of ${RUN_STEP_EVENT_NAMES.join(", ")}`,
);

// "created" announces a step that has just started; every other name is the status itself.
function statusOfEventName(name: (typeof RUN_STEP_EVENT_NAMES)[number]): RunStepStatus {
  const suffix = name.slice("thread.run.step.".length) as (typeof STEP_EVENT_SUFFIXES)[number];
  return suffix === "created" ? "in_progress" : suffix;
}

// The event's name must agree with the status of the step it carries.
function nameMatchesStatus<T extends { readonly data: RunStep }>(key: "event" | "type") {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const name = (dataset.value as unknown as Record<string, (typeof RUN_STEP_EVENT_NAMES)[number]>)[
      key
    ] as (typeof RUN_STEP_EVENT_NAMES)[number];
    const expected = statusOfEventName(name);
    if (dataset.value.data.status !== expected) {
      addIssue({
        message: `${key} "${name}" disagrees with data.status "${dataset.value.data.status}"`,
        path: [
          {
            type: "object",
            origin: "value",
            input: dataset.value as Record<string, unknown>,
            key: "data",
            value: dataset.value.data,
          },
        ],
      });
    }
  });
}

const StreamEventShape = v.looseObject({ event: StepEventNameSchema, data: RunStepSchema });

// The OpenAI-webhook envelope's own fields, the same whatever it carries.
const webhookEnvelope = {
  id: v.pipe(v.string("must be a string"), v.minLength(1, "must not be empty")),
  object: v.literal("event"),
  created_at: v.pipe(
    v.number("must be a number"),
    v.integer("must be whole seconds"),
    v.minValue(0, "must not be negative"),
  ),
} as const;

const WebhookEventShape = v.looseObject({
  ...webhookEnvelope,
  type: StepEventNameSchema,
  data: RunStepSchema,
});

/** A delta in the OpenAI-webhook envelope: ignored, but only once the envelope itself is valid. */
export const WebhookDeltaEventSchema = v.looseObject({
  ...webhookEnvelope,
  type: v.literal(DELTA_EVENT_NAME),
  data: RunStepDeltaSchema,
});

/** Stream-style event: `{ event: "thread.run.step.<status>", data: RunStepObject }`. */
export const RunStepStreamEventSchema = v.pipe(
  StreamEventShape,
  nameMatchesStatus<v.InferOutput<typeof StreamEventShape>>("event"),
);

/** OpenAI-webhook-style event: `{ id, object: "event", type, created_at, data: RunStepObject }`. */
export const RunStepWebhookEventSchema = v.pipe(
  WebhookEventShape,
  nameMatchesStatus<v.InferOutput<typeof WebhookEventShape>>("type"),
);

/** What a verified body turned out to be. */
export type RunStepEvent =
  /** A full snapshot; `document` is the step exactly as received, unknown fields included. */
  | { readonly kind: "snapshot"; readonly step: RunStep; readonly document: Record<string, unknown> }
  | { readonly kind: "delta"; readonly stepId: string };

/** Result of reading a body: the event, or every problem with a path. */
export type ParsedRunStepEvent =
  | { readonly ok: true; readonly event: RunStepEvent }
  | { readonly ok: false; readonly issues: readonly JsonValueIssue[] };

const MAX_ISSUES = 20;

/**
 * Reads a parsed JSON body as one of the accepted shapes: a bare RunStepObject, a stream-style
 * event, an OpenAI-webhook-style event, or a delta (in either envelope, or bare) to be ignored.
 * The shape is chosen by its discriminating key, so each failure is reported against the shape
 * the sender meant rather than as an unreadable union error.
 */
export function parseRunStepEvent(body: unknown): ParsedRunStepEvent {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { ok: false, issues: [{ path: "", message: "must be a JSON object" }] };
  }
  const valueIssues = checkJsonValues(body);
  if (valueIssues.length > 0) return { ok: false, issues: valueIssues };

  const record = body as Record<string, unknown>;
  if ("event" in record) {
    if (record.event === DELTA_EVENT_NAME) return parseDelta(RunStepDeltaSchema, record.data, "data", false);
    return parseSnapshot(RunStepStreamEventSchema, record, true);
  }
  if (record.object === "event") {
    if (record.type === DELTA_EVENT_NAME) return parseDelta(WebhookDeltaEventSchema, record, "", true);
    return parseSnapshot(RunStepWebhookEventSchema, record, true);
  }
  if (record.object === DELTA_OBJECT) return parseDelta(RunStepDeltaSchema, record, "", false);
  return parseSnapshot(RunStepSchema, record, false);
}

function parseSnapshot(
  schema: v.GenericSchema<unknown, RunStep | { data: RunStep }>,
  record: Record<string, unknown>,
  enveloped: boolean,
): ParsedRunStepEvent {
  const result = v.safeParse(schema, record);
  if (!result.success) return { ok: false, issues: toIssues(result.issues, "") };
  const step = enveloped ? (result.output as { data: RunStep }).data : (result.output as RunStep);
  const document = (enveloped ? record.data : record) as Record<string, unknown>;
  return { ok: true, event: { kind: "snapshot", step, document } };
}

function parseDelta(
  schema: v.GenericSchema<unknown, { id: string } | { data: { id: string } }>,
  input: unknown,
  prefix: string,
  enveloped: boolean,
): ParsedRunStepEvent {
  const result = v.safeParse(schema, input);
  if (!result.success) return { ok: false, issues: toIssues(result.issues, prefix) };
  const delta = enveloped
    ? (result.output as { data: { id: string } }).data
    : (result.output as { id: string });
  return { ok: true, event: { kind: "delta", stepId: delta.id } };
}

function toIssues(issues: readonly v.BaseIssue<unknown>[], prefix: string): JsonValueIssue[] {
  return issues.slice(0, MAX_ISSUES).map((issue) => {
    const path = v.getDotPath(issue) ?? "";
    return {
      path: prefix && path ? `${prefix}.${path}` : prefix || path,
      message: describe(issue),
    };
  });
}

// Valibot's messages name the expectation; missing keys deserve plainer words.
function describe(issue: v.BaseIssue<unknown>): string {
  if (issue.input === undefined && issue.kind === "schema") return "is required";
  return issue.message;
}
