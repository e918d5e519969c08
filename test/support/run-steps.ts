import type { RunStep, RunStepStatus } from "../../src/domain/run-step-schema.js";

const BASE_TIME = 1_764_000_000;

/** A realistic RunStepObject as OpenAI's API returns it; terminal fields follow the status. */
export function makeStep(
  overrides: Partial<Record<keyof RunStep, unknown>> & Record<string, unknown> = {},
): Record<string, unknown> {
  const status = (overrides.status as RunStepStatus | undefined) ?? "in_progress";
  const at = (s: RunStepStatus) => (status === s ? BASE_TIME + 30 : null);
  return {
    id: "step_abc123",
    object: "thread.run.step",
    created_at: BASE_TIME,
    assistant_id: "asst_abc123",
    thread_id: "thread_abc123",
    run_id: "run_abc123",
    type: "message_creation",
    status,
    step_details: { type: "message_creation", message_creation: { message_id: "msg_abc123" } },
    last_error: status === "failed" ? { code: "server_error", message: "The model crashed" } : null,
    expired_at: at("expired"),
    cancelled_at: at("cancelled"),
    failed_at: at("failed"),
    completed_at: at("completed"),
    metadata: {},
    usage:
      status === "in_progress" ? null : { prompt_tokens: 123, completion_tokens: 456, total_tokens: 579 },
    ...overrides,
  };
}

/** A tool_calls step with one call of every kind. */
export function makeToolCallsStep(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return makeStep({
    id: "step_tools1",
    type: "tool_calls",
    step_details: {
      type: "tool_calls",
      tool_calls: [
        {
          id: "call_ci",
          type: "code_interpreter",
          code_interpreter: {
            input: "print(1 + 1)",
            outputs: [
              { type: "logs", logs: "2\n" },
              { type: "image", image: { file_id: "file_img1" } },
            ],
          },
        },
        {
          id: "call_fs",
          type: "file_search",
          file_search: {
            ranking_options: { ranker: "default_2024_08_21", score_threshold: 0.5 },
            results: [
              {
                file_id: "file_1",
                file_name: "a.pdf",
                score: 0.87,
                content: [{ type: "text", text: "hello" }],
              },
              { file_id: "file_2", file_name: "b.pdf", score: 0.51 },
            ],
          },
        },
        { id: "call_fn", type: "function", function: { name: "lookup", arguments: '{"q":1}', output: null } },
      ],
    },
    ...overrides,
  });
}
