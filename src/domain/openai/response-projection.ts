import type { RunStepStatus } from "../run-step-schema.js";
import { itemStepStatus } from "./item-step-status.js";
import type { ResponseObject, ResponseOutputItem, ResponseStatus } from "./response-object.js";
import { stepError } from "./step-error.js";

/** A step projected from a producer's item: a run step's fields plus its place among its siblings. */
export interface ProjectedStep {
  readonly id: string;
  readonly run_id: string;
  readonly thread_id: string;
  readonly assistant_id: string;
  /** `message_creation`, `tool_calls`, or the item's own type (web_search_call, reasoning, …). */
  readonly type: string;
  readonly status: RunStepStatus;
  readonly step_details: Readonly<Record<string, unknown>>;
  /** Items carry no timestamp: the parent's created_at, so a re-fetch never moves a step. */
  readonly created_at: number;
  /** The item's index among the parent's items: steps of one run sort by (created_at, position). */
  readonly position: number;
  /** The item's own error, or the parent's error for a step that failed with it; else null. */
  readonly last_error: { readonly code: string; readonly message: string } | null;
}

/** A response as a run (SPEC §9). */
export interface ProjectedResponseRun {
  readonly run_id: string;
  readonly thread_id: string;
  readonly assistant_id: string;
  readonly status: ResponseStatus;
  readonly usage: {
    readonly prompt_tokens: number;
    readonly completion_tokens: number;
    readonly total_tokens: number;
  } | null;
  readonly created_at: number;
  readonly model: string;
  readonly prompt_id: string | null;
}

/** The run and steps of one response. */
export interface ResponseProjection {
  readonly run: ProjectedResponseRun;
  readonly steps: readonly ProjectedStep[];
}

// The step status of every item once the response has settled for good.
const SETTLED: Record<ResponseStatus, RunStepStatus | null> = {
  queued: null,
  in_progress: null,
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
  incomplete: "expired",
};

/**
 * Projects a response onto the run-and-step model (SPEC §9, following OpenAI's migration guide:
 * Runs → Responses, Run steps → Items): run_id = response id, thread_id = conversation id or the
 * response id, assistant_id = prompt id or model, usage input → prompt and output → completion
 * tokens. Each output item with an id is a step, in output order; items without one (a
 * function_call may lack it) cannot be addressed and are left to the stored object.
 */
export function projectResponse(response: ResponseObject): ResponseProjection {
  const run: ProjectedResponseRun = {
    run_id: response.id,
    thread_id: response.conversation?.id ?? response.id,
    assistant_id: response.prompt?.id ?? response.model,
    status: response.status,
    usage: response.usage
      ? {
          prompt_tokens: response.usage.input_tokens,
          completion_tokens: response.usage.output_tokens,
          total_tokens: response.usage.total_tokens,
        }
      : null,
    created_at: response.created_at,
    model: response.model,
    prompt_id: response.prompt?.id ?? null,
  };
  const settled = SETTLED[response.status];
  const steps: ProjectedStep[] = [];
  response.output.forEach((item, position) => {
    if (item.id === undefined) return;
    const status = itemStepStatus(item.status, settled, "in_progress");
    const { type, step_details } = responseStepDetails(item, item.id);
    steps.push({
      id: item.id,
      run_id: run.run_id,
      thread_id: run.thread_id,
      assistant_id: run.assistant_id,
      type,
      status,
      step_details,
      created_at: response.created_at,
      position,
      last_error: stepError(item, status, response.error),
    });
  });
  return { run, steps };
}

/** The run-step type and step_details of one output item (SPEC Appendix A's variants where one fits). */
function responseStepDetails(
  item: ResponseOutputItem,
  id: string,
): { type: string; step_details: Record<string, unknown> } {
  const raw = item as Record<string, unknown>;
  switch (item.type) {
    case "message":
      return {
        type: "message_creation",
        step_details: { type: "message_creation", message_creation: { message_id: id } },
      };
    case "function_call":
      return toolCalls({
        // call_id is what a function's output is submitted against, as a run step's tool call id was.
        id: typeof raw.call_id === "string" ? raw.call_id : id,
        type: "function",
        function: { name: raw.name ?? null, arguments: raw.arguments ?? null, output: null },
      });
    case "file_search_call":
      return toolCalls({
        id,
        type: "file_search",
        file_search: { queries: raw.queries ?? [], results: fileSearchResults(raw.results) },
      });
    case "code_interpreter_call":
      return toolCalls({
        id,
        type: "code_interpreter",
        code_interpreter: { input: raw.code ?? "", outputs: codeOutputs(raw.outputs) },
      });
    default:
      return { type: item.type, step_details: { type: item.type, [item.type]: item } };
  }
}

function toolCalls(call: Record<string, unknown>): { type: string; step_details: Record<string, unknown> } {
  return { type: "tool_calls", step_details: { type: "tool_calls", tool_calls: [call] } };
}

// Responses' results are {file_id, filename, score, text, attributes}; run steps' are
// {file_id, file_name, score, content: [{type: "text", text}]}.
function fileSearchResults(results: unknown): unknown[] {
  if (!Array.isArray(results)) return [];
  return results.map((result: Record<string, unknown>) => ({
    file_id: result.file_id ?? null,
    file_name: result.filename ?? null,
    score: result.score ?? null,
    ...(typeof result.text === "string" ? { content: [{ type: "text", text: result.text }] } : {}),
  }));
}

// Responses' outputs are {type: "logs", logs} and {type: "image", url}; run steps nest an image's
// reference under `image`, so a URL goes there too.
function codeOutputs(outputs: unknown): unknown[] {
  if (!Array.isArray(outputs)) return [];
  return outputs.map((output: Record<string, unknown>) =>
    output.type === "image" ? { type: "image", image: { url: output.url ?? null } } : output,
  );
}
