import { describe, expect, it } from "vitest";
import {
  minimalResponse,
  TRUNCATION_MARK,
  truncatedResponse,
} from "../src/domain/openai/fit-response-document.js";

// How a response too large for one item is kept (issue 20): exact outputs of both reductions, so
// every kept field, every summarised item and the mark saying so are pinned.

const long = (char: string, length: number) => char.repeat(length);

describe("truncatedResponse", () => {
  it("summarises every output item to what identifies it and a 500-character preview, clips instructions, counts tools, and says so", () => {
    const document = {
      id: "resp_big",
      object: "response",
      status: "completed",
      model: "gpt-4.1",
      instructions: long("i", 600),
      tools: [{ type: "function" }, { type: "web_search" }, { type: "mcp" }],
      metadata: { team: "a" },
      output: [
        {
          id: "msg_1",
          type: "message",
          status: "completed",
          role: "assistant",
          content: [
            { type: "refusal", refusal: "no" },
            { type: "output_text", text: long("m", 501) },
          ],
          extra: "dropped",
        },
        {
          id: "fc_1",
          type: "function_call",
          name: "lookup",
          call_id: "call_1",
          arguments: "{}",
          code: "ignored because arguments comes first",
        },
        { id: "ci_1", type: "code_interpreter_call", code: long("c", 500), status: "completed" },
        { id: "mcp_1", type: "mcp_call", server_label: "docs", error: "boom", output: "out" },
        { id: "rs_1", type: "reasoning", summary: [{ type: "summary_text", text: "why" }] },
        { id: "img_1", type: "image_generation_call", result: long("x", 100) },
        { id: "t_1", type: "custom", text: "plain", content: "not an array", summary: [1, null, {}] },
        "not an object",
        null,
        [1, 2],
      ],
    };
    expect(truncatedResponse(document, 123_456)).toEqual({
      id: "resp_big",
      object: "response",
      status: "completed",
      model: "gpt-4.1",
      instructions: `${long("i", 500)}…`,
      tools: 3,
      metadata: { team: "a" },
      output: [
        {
          id: "msg_1",
          type: "message",
          status: "completed",
          role: "assistant",
          text_preview: `${long("m", 500)}…`,
        },
        { id: "fc_1", type: "function_call", name: "lookup", call_id: "call_1", text_preview: "{}" },
        // Exactly 500 characters: kept whole, no ellipsis.
        { id: "ci_1", type: "code_interpreter_call", status: "completed", text_preview: long("c", 500) },
        { id: "mcp_1", type: "mcp_call", server_label: "docs", error: "boom", text_preview: "out" },
        { id: "rs_1", type: "reasoning", text_preview: "why" },
        { id: "img_1", type: "image_generation_call" },
        { id: "t_1", type: "custom", text_preview: "plain" },
        "not an object",
        null,
        [1, 2],
      ],
      [TRUNCATION_MARK]: {
        reason: "the response is larger than one stored item",
        original_bytes: 123_456,
        output_items: 10,
        whole_object: "GET /responses/resp_big",
      },
    });
  });

  it("leaves short instructions, absent instructions and non-array tools as they are; no output is none", () => {
    expect(truncatedResponse({ id: "r", instructions: "be brief", tools: null }, 9)).toEqual({
      id: "r",
      instructions: "be brief",
      tools: null,
      output: [],
      [TRUNCATION_MARK]: {
        reason: "the response is larger than one stored item",
        original_bytes: 9,
        output_items: 0,
        whole_object: "GET /responses/r",
      },
    });
    const noInstructions = truncatedResponse({ output: "nope", instructions: ["a"] }, 1);
    expect(noInstructions).toEqual({
      instructions: ["a"],
      tools: undefined,
      output: [],
      [TRUNCATION_MARK]: {
        reason: "the response is larger than one stored item",
        original_bytes: 1,
        output_items: 0,
        whole_object: "GET /responses/",
      },
    });
    expect(Object.keys(noInstructions)).toContain("tools");
  });

  it("takes the first text part that has a string text, across content then summary", () => {
    const [item] = truncatedResponse(
      {
        output: [
          {
            type: "message",
            content: [{ type: "x" }, { text: 5 }, "part", null],
            summary: [{ text: "from the summary" }],
          },
        ],
      },
      1,
    ).output as Array<Record<string, unknown>>;
    expect(item).toEqual({ type: "message", text_preview: "from the summary" });
    // Non-string leading fields are skipped for the next.
    const [second] = truncatedResponse({ output: [{ type: "t", arguments: 1, code: null, output: "o" }] }, 1)
      .output as Array<Record<string, unknown>>;
    expect(second).toEqual({ type: "t", text_preview: "o" });
  });
});

describe("minimalResponse", () => {
  it("keeps only what identifies the response and says how it ended, with no output", () => {
    const document = {
      id: "resp_huge",
      object: "response",
      created_at: 1,
      completed_at: 2,
      status: "failed",
      model: "gpt-4.1",
      error: { code: "server_error", message: "m" },
      incomplete_details: null,
      usage: { input_tokens: 1, output_tokens: 2, total_tokens: 3 },
      prompt: { id: "pmpt_1" },
      conversation: { id: "conv_1" },
      metadata: { k: "v" },
      instructions: "dropped",
      tools: [1],
      output: [{ type: "message" }, { type: "reasoning" }],
    };
    expect(minimalResponse(document, 9_999_999)).toEqual({
      id: "resp_huge",
      object: "response",
      created_at: 1,
      completed_at: 2,
      status: "failed",
      model: "gpt-4.1",
      error: { code: "server_error", message: "m" },
      incomplete_details: null,
      usage: { input_tokens: 1, output_tokens: 2, total_tokens: 3 },
      prompt: { id: "pmpt_1" },
      conversation: { id: "conv_1" },
      metadata: { k: "v" },
      output: [],
      [TRUNCATION_MARK]: {
        reason: "the response is larger than one stored item, even with its output summarised",
        original_bytes: 9_999_999,
        output_items: 2,
        whole_object: "GET /responses/resp_huge",
      },
    });
  });

  it("adds no field the response did not have; a non-array output counts none", () => {
    const reduced = minimalResponse({ status: "completed", output: { not: "an array" } }, 5);
    expect(reduced).toEqual({
      status: "completed",
      output: [],
      [TRUNCATION_MARK]: {
        reason: "the response is larger than one stored item, even with its output summarised",
        original_bytes: 5,
        output_items: 0,
        whole_object: "GET /responses/",
      },
    });
    expect(Object.keys(reduced)).toEqual(["status", "output", TRUNCATION_MARK]);
  });
});
