import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { AgentSessionItemSchema, AgentSessionSchema } from "../src/domain/openai/agent-session-object.js";
import { itemStepStatus } from "../src/domain/openai/item-step-status.js";
import {
  isTerminalResponseStatus,
  RESPONSE_STATUSES,
  ResponseObjectSchema,
  responseStatusRank,
} from "../src/domain/openai/response-object.js";
import { projectResponse } from "../src/domain/openai/response-projection.js";
import { projectSession } from "../src/domain/openai/session-projection.js";
import {
  completedResponse,
  computerUseSession,
  computerUseSessionItems,
  failedResponse,
  failedSession,
  failedSessionItems,
  functionCallSession,
  functionCallSessionItems,
  idleSession,
  idleSessionItems,
  incompleteResponse,
  inProgressResponse,
  OUTPUT_ITEMS,
  queuedResponse,
  RESPONSES,
  SESSIONS,
} from "./fixtures/openai-objects.js";

const response = (value: unknown) => v.parse(ResponseObjectSchema, value);
const session = (value: unknown) => v.parse(AgentSessionSchema, value);
const items = (values: readonly unknown[]) => values.map((item) => v.parse(AgentSessionItemSchema, item));

describe("ResponseObjectSchema and AgentSessionSchema", () => {
  it.each(RESPONSES.map((r) => [r.id, r] as const))(
    "accept the fixture %s, keeping unknown fields",
    (_id, fixture) => {
      const parsed = response(fixture);
      expect(parsed.parallel_tool_calls).toBe(true);
      expect(parsed.output).toEqual(fixture.output);
    },
  );

  it.each(SESSIONS.map((s) => [s.session.id, s] as const))(
    "accept the session %s and its items",
    (_id, s) => {
      expect(session(s.session).agent).toEqual(s.session.agent);
      expect(items(s.items)).toEqual(s.items);
    },
  );

  it.each([
    ["status", { status: "expired" }],
    ["object", { object: "thread.run" }],
    ["created_at", { created_at: 1_741_476_542_000 }],
    ["output.0.id", { output: [{ type: "message", id: "msg#1" }] }],
    ["output.0.type", { output: [{ id: "x" }] }],
    ["usage.total_tokens", { usage: { input_tokens: 1, output_tokens: 1, total_tokens: -1 } }],
    ["model", { model: "" }],
    ["conversation.id", { conversation: { id: "conv 1" } }],
  ])("refuse a response with a bad %s", (path, override) => {
    const result = v.safeParse(ResponseObjectSchema, { ...completedResponse, ...override });
    expect(result.success).toBe(false);
    expect(result.issues?.map((issue) => v.getDotPath(issue))).toContain(path);
  });

  it("reads absent nullable fields as null (compatible servers omit them)", () => {
    const { error, incomplete_details, usage, metadata, prompt, conversation, ...bare } = completedResponse;
    const parsed = response(bare);
    expect([
      parsed.error,
      parsed.incomplete_details,
      parsed.usage,
      parsed.metadata,
      parsed.prompt,
      parsed.conversation,
    ]).toEqual([null, null, null, null, null, null]);
  });

  it("refuses a session with a status outside its four, or without last_active_at", () => {
    expect(v.safeParse(AgentSessionSchema, { ...idleSession, status: "completed" }).success).toBe(false);
    const { last_active_at: _l, ...noActivity } = idleSession;
    expect(v.safeParse(AgentSessionSchema, noActivity).success).toBe(false);
  });
});

describe("response status order", () => {
  it("ranks queued < in_progress < every terminal, and only terminals are terminal", () => {
    expect(RESPONSE_STATUSES.map((s) => [s, responseStatusRank(s), isTerminalResponseStatus(s)])).toEqual([
      ["queued", 0, false],
      ["in_progress", 1, false],
      ["completed", 2, true],
      ["failed", 2, true],
      ["cancelled", 2, true],
      ["incomplete", 2, true],
    ]);
  });
});

describe("itemStepStatus", () => {
  it.each([
    ["completed", null, "completed"],
    ["in_progress", null, "in_progress"],
    ["searching", null, "in_progress"],
    ["interpreting", null, "in_progress"],
    ["generating", null, "in_progress"],
    ["calling", null, "in_progress"],
    ["failed", null, "failed"],
    ["cancelled", null, "cancelled"],
    ["incomplete", null, "expired"],
    [undefined, null, "in_progress"],
    [null, null, "in_progress"],
    [undefined, "failed", "failed"],
    ["in_progress", "cancelled", "cancelled"],
    ["searching", "expired", "expired"],
    ["completed", "failed", "completed"],
    ["incomplete", "completed", "expired"],
  ] as const)("%s under a parent settled as %s → %s", (own, settled, expected) => {
    expect(itemStepStatus(own, settled, "in_progress")).toBe(expected);
  });

  it("uses the fallback only for an item without a status under an unsettled parent", () => {
    expect(itemStepStatus(undefined, null, "completed")).toBe("completed");
    expect(itemStepStatus("in_progress", null, "completed")).toBe("in_progress");
  });
});

describe("projectResponse", () => {
  it("the completed response: run fields and one step per item, in output order", () => {
    const projection = projectResponse(response(completedResponse));
    expect(projection.run).toEqual({
      run_id: "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
      thread_id: "conv_689667905b048191b4740501625afd940c7533ace33a2dab",
      assistant_id: "pmpt_abc123",
      status: "completed",
      usage: { prompt_tokens: 36, completion_tokens: 87, total_tokens: 123 },
      created_at: 1_741_476_542,
      model: "gpt-4.1-2025-04-14",
      prompt_id: "pmpt_abc123",
    });
    const items = Object.values(OUTPUT_ITEMS);
    expect(
      projection.steps.map((s) => [s.id, s.position, s.created_at, s.run_id, s.thread_id, s.assistant_id]),
    ).toEqual(
      items.map((item, i) => [
        item.id,
        i,
        1_741_476_542,
        projection.run.run_id,
        projection.run.thread_id,
        "pmpt_abc123",
      ]),
    );
    // Every item of a completed response is completed, except the one that failed on its own,
    // and those without a status take the response's.
    expect(projection.steps.filter((s) => s.status !== "completed").map((s) => [s.id, s.status])).toEqual([
      [OUTPUT_ITEMS.apply_patch_call_output.id, "failed"],
    ]);
    expect(projection.steps.every((s) => s.last_error === null)).toBe(true);
  });

  it("maps message, function_call, file_search_call and code_interpreter_call onto run step details", () => {
    const byId = new Map(projectResponse(response(completedResponse)).steps.map((s) => [s.id, s]));
    const pick = (id: string | undefined) => {
      const step = byId.get(id ?? "");
      return step && { type: step.type, step_details: step.step_details };
    };
    expect(pick(OUTPUT_ITEMS.message.id)).toEqual({
      type: "message_creation",
      step_details: {
        type: "message_creation",
        message_creation: { message_id: "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b" },
      },
    });
    expect(pick(OUTPUT_ITEMS.function_call.id)).toEqual({
      type: "tool_calls",
      step_details: {
        type: "tool_calls",
        tool_calls: [
          {
            id: "call_12345xyz",
            type: "function",
            function: { name: "get_weather", arguments: '{"location":"Paris, France"}', output: null },
          },
        ],
      },
    });
    expect(pick(OUTPUT_ITEMS.file_search_call.id)).toEqual({
      type: "tool_calls",
      step_details: {
        type: "tool_calls",
        tool_calls: [
          {
            id: OUTPUT_ITEMS.file_search_call.id,
            type: "file_search",
            file_search: {
              queries: ["unicorn folklore"],
              results: [
                {
                  file_id: "file-2dtbBZdjtDKS8eqWxqbgDi",
                  file_name: "folklore.pdf",
                  score: 0.92,
                  content: [{ type: "text", text: "Unicorns in folklore…" }],
                },
                { file_id: "file-3eucCAekuELT9frXyrchEj", file_name: "legends.md", score: 0.41 },
              ],
            },
          },
        ],
      },
    });
    expect(pick(OUTPUT_ITEMS.code_interpreter_call.id)).toEqual({
      type: "tool_calls",
      step_details: {
        type: "tool_calls",
        tool_calls: [
          {
            id: OUTPUT_ITEMS.code_interpreter_call.id,
            type: "code_interpreter",
            code_interpreter: {
              input: "import math\nprint(math.sqrt(16))",
              outputs: [
                { type: "logs", logs: "4.0\n" },
                { type: "image", image: { url: "https://files.example/cntr_682d/plot.png" } },
              ],
            },
          },
        ],
      },
    });
  });

  it("every other item type keeps its own type, the item under it", () => {
    const mapped = new Set(["message", "function_call", "file_search_call", "code_interpreter_call"]);
    const steps = projectResponse(response(completedResponse)).steps;
    const others = Object.values(OUTPUT_ITEMS).filter((item) => !mapped.has(item.type));
    expect(others).toHaveLength(24);
    for (const item of others) {
      const step = steps.find((s) => s.id === item.id);
      expect(step?.type).toBe(item.type);
      expect(step?.step_details).toEqual({ type: item.type, [item.type]: item });
    }
  });

  it("the failed response: its in-progress item fails with the response's error; thread and assistant fall back", () => {
    expect(projectResponse(response(failedResponse))).toEqual({
      run: {
        run_id: "resp_failed_0001",
        thread_id: "resp_failed_0001",
        assistant_id: "gpt-4.1-2025-04-14",
        status: "failed",
        usage: { prompt_tokens: 120, completion_tokens: 0, total_tokens: 120 },
        created_at: 1_741_476_542,
        model: "gpt-4.1-2025-04-14",
        prompt_id: null,
      },
      steps: [
        {
          id: "fs_failed_0001",
          run_id: "resp_failed_0001",
          thread_id: "resp_failed_0001",
          assistant_id: "gpt-4.1-2025-04-14",
          type: "tool_calls",
          status: "failed",
          step_details: {
            type: "tool_calls",
            tool_calls: [
              {
                id: "fs_failed_0001",
                type: "file_search",
                file_search: { queries: ["quarterly report"], results: [] },
              },
            ],
          },
          created_at: 1_741_476_542,
          position: 0,
          last_error: { code: "server_error", message: "The model produced invalid content." },
        },
      ],
    });
  });

  it("the incomplete response: the cut-off message expires, without an error", () => {
    const projection = projectResponse(response(incompleteResponse));
    expect(projection.run.status).toBe("incomplete");
    expect(projection.run.usage).toEqual({ prompt_tokens: 36, completion_tokens: 16, total_tokens: 52 });
    expect(projection.steps.map((s) => [s.id, s.type, s.status, s.last_error])).toEqual([
      ["msg_incomplete_0001", "message_creation", "expired", null],
    ]);
  });

  it("the queued response: a run without usage or steps", () => {
    expect(projectResponse(response(queuedResponse))).toEqual({
      run: {
        run_id: "resp_queued_0001",
        thread_id: "resp_queued_0001",
        assistant_id: "gpt-4.1-2025-04-14",
        status: "queued",
        usage: null,
        created_at: 1_741_476_542,
        model: "gpt-4.1-2025-04-14",
        prompt_id: null,
      },
      steps: [],
    });
  });

  it("the in-progress response: an item without an id is no step; positions stay the output's", () => {
    const steps = projectResponse(response(inProgressResponse)).steps;
    expect(steps.map((s) => [s.id, s.position, s.type, s.status])).toEqual([
      ["ci_in_progress_0001", 1, "tool_calls", "in_progress"],
      ["rs_in_progress_0001", 2, "reasoning", "in_progress"],
    ]);
    expect(steps[0]?.step_details).toEqual({
      type: "tool_calls",
      tool_calls: [
        { id: "ci_in_progress_0001", type: "code_interpreter", code_interpreter: { input: "", outputs: [] } },
      ],
    });
  });

  it("a cancelled response cancels its unfinished items; an item's own error wins over the response's", () => {
    const cancelled = projectResponse(
      response({ ...inProgressResponse, status: "cancelled", error: null }),
    ).steps.map((s) => s.status);
    expect(cancelled).toEqual(["cancelled", "cancelled"]);
    const failed = projectResponse(
      response({
        ...failedResponse,
        output: [
          {
            id: "ig_1",
            type: "image_generation_call",
            status: "failed",
            result: null,
            error: { code: "moderation_blocked", message: "blocked" },
          },
          {
            id: "mcp_1",
            type: "mcp_call",
            status: "failed",
            error: { type: "http_error", code: 502, message: "bad gateway" },
          },
        ],
      }),
    ).steps.map((s) => s.last_error);
    expect(failed).toEqual([
      { code: "moderation_blocked", message: "blocked" },
      { code: "item_error", message: "bad gateway" },
    ]);
  });
});

describe("projectSession", () => {
  it("the function-call session: a thread waiting for a function; its user message without an id is no step", () => {
    const projection = projectSession(session(functionCallSession), items(functionCallSessionItems));
    expect(projection.thread).toEqual({
      thread_id: "sess_function_0001",
      assistant_id: "agent_6a1f2c",
      status: "requires_action",
      model: "gpt-5.5",
      created_at: 1_765_000_000,
      last_active_at: 1_765_000_060,
      usage: { prompt_tokens: 1_200, completion_tokens: 300, total_tokens: 1_500 },
      required_action_types: ["function_call"],
    });
    expect(projection.steps).toEqual([
      {
        id: "rs_sess_0001",
        run_id: "turn_0001",
        thread_id: "sess_function_0001",
        assistant_id: "agent_6a1f2c",
        type: "reasoning",
        status: "completed",
        step_details: { type: "reasoning", reasoning: functionCallSessionItems[1] },
        created_at: 1_765_000_000,
        position: 1,
        last_error: null,
      },
      {
        id: "fc_sess_0001",
        run_id: "turn_0001",
        thread_id: "sess_function_0001",
        assistant_id: "agent_6a1f2c",
        type: "tool_calls",
        status: "in_progress",
        step_details: {
          type: "tool_calls",
          tool_calls: [
            {
              id: "call_lookup_order",
              type: "function",
              function: { name: "lookup_order", arguments: '{"order_id":"A-77"}', output: null },
            },
          ],
        },
        created_at: 1_765_000_000,
        position: 2,
        last_error: null,
      },
    ]);
  });

  it("the computer-use session: the approval request is a step of its own type", () => {
    const projection = projectSession(session(computerUseSession), items(computerUseSessionItems));
    expect(projection.thread.required_action_types).toEqual(["computer_use_approval_request"]);
    expect(projection.steps.map((s) => [s.id, s.type, s.status, s.position])).toEqual([
      ["msg_sess_user_0002", "message_creation", "completed", 0],
      ["cuc_sess_0002", "computer_use_call", "in_progress", 1],
      ["cuar_item_0002", "computer_use_approval_request", "completed", 2],
    ]);
  });

  it("the idle session: string arguments are kept as sent; the output is a step of its own", () => {
    const steps = projectSession(session(idleSession), items(idleSessionItems)).steps;
    expect(steps.map((s) => [s.id, s.type, s.status, s.run_id])).toEqual([
      ["fc_idle_0001", "tool_calls", "completed", "turn_0003"],
      ["fco_idle_0001", "function_call_output", "completed", "turn_0003"],
      ["msg_idle_0001", "message_creation", "completed", "turn_0003"],
    ]);
    expect(steps[0]?.step_details).toEqual({
      type: "tool_calls",
      tool_calls: [
        {
          id: "call_idle",
          type: "function",
          function: { name: "lookup_order", arguments: '{"order_id":"A-78"}', output: null },
        },
      ],
    });
  });

  it("the failed session: open items fail with the session's error, a failed item keeps its own", () => {
    const projection = projectSession(session(failedSession), items(failedSessionItems));
    expect(projection.thread.usage).toBeNull();
    expect(projection.steps.map((s) => [s.id, s.status, s.last_error])).toEqual([
      [
        "cmd_failed_0001",
        "failed",
        { code: "session_failed", message: "The execution environment stopped responding." },
      ],
      ["mcp_failed_0001", "failed", { code: "connection_failed", message: "MCP server unreachable" }],
    ]);
  });

  it("falls back to the session id for a run without a turn and an assistant without an agent", () => {
    const { agent: _a, ...agentless } = idleSession;
    const projection = projectSession(
      session(agentless),
      items([{ id: "x_1", type: "note", created_at: 5 }]),
    );
    expect(projection.thread.assistant_id).toBe("sess_idle_0001");
    expect(projection.thread.model).toBeNull();
    expect(projection.steps.map((s) => [s.run_id, s.assistant_id, s.created_at, s.status])).toEqual([
      ["sess_idle_0001", "sess_idle_0001", 5, "completed"],
    ]);
  });
});
