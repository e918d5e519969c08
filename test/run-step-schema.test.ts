import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { MAX_JSON_DEPTH } from "../src/domain/json-value-check.js";
import { parseRunStepEvent } from "../src/domain/run-step-event.js";
import { MetadataSchema } from "../src/domain/run-step-schema.js";
import { makeStep, makeToolCallsStep } from "./support/run-steps.js";

const ok = (body: unknown) => {
  const result = parseRunStepEvent(body);
  if (!result.ok) throw new Error(`expected valid, got ${JSON.stringify(result.issues)}`);
  return result.event;
};

const issues = (body: unknown) => {
  const result = parseRunStepEvent(body);
  if (result.ok) throw new Error("expected invalid");
  return result.issues;
};

const nested = (depth: number): unknown => {
  let value: unknown = "bottom";
  for (let i = 0; i < depth; i++) value = { next: value };
  return value;
};

describe("accepted run steps", () => {
  it.each(["in_progress", "completed", "failed", "cancelled", "expired"])(
    "a message_creation step that is %s",
    (status) => {
      const event = ok(makeStep({ status }));
      expect(event).toMatchObject({ kind: "snapshot", step: { status, id: "step_abc123" } });
    },
  );

  it("a tool_calls step with code_interpreter (logs and image), file_search and function calls", () => {
    const event = ok(makeToolCallsStep({ status: "completed" }));
    if (event.kind !== "snapshot") throw new Error("snapshot expected");
    expect(event.step.step_details.type).toBe("tool_calls");
    if (event.step.step_details.type !== "tool_calls") return;
    expect(event.step.step_details.tool_calls.map((c) => c.type)).toEqual([
      "code_interpreter",
      "file_search",
      "function",
    ]);
  });

  it("file_search without ranking options or results, and result content without type or text", () => {
    const bare = makeStep({
      type: "tool_calls",
      step_details: { type: "tool_calls", tool_calls: [{ id: "c1", type: "file_search", file_search: {} }] },
    });
    ok(bare);
    const sparse = makeStep({
      type: "tool_calls",
      step_details: {
        type: "tool_calls",
        tool_calls: [
          {
            id: "c1",
            type: "file_search",
            file_search: { results: [{ file_id: "f", file_name: "n", score: 1, content: [{}] }] },
          },
        ],
      },
    });
    ok(sparse);
  });

  it("a function call with output and one without", () => {
    for (const output of ["42", null]) {
      ok(
        makeStep({
          type: "tool_calls",
          step_details: {
            type: "tool_calls",
            tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}", output } }],
          },
        }),
      );
    }
  });

  it("rate_limit_exceeded as last_error code, and full metadata at its limits", () => {
    const metadata = Object.fromEntries(
      Array.from({ length: 16 }, (_, i) => [`k${i}`.padEnd(64, "k"), "v".repeat(512)]),
    );
    ok(
      makeStep({
        status: "failed",
        last_error: { code: "rate_limit_exceeded", message: "slow down" },
        metadata,
      }),
    );
  });

  it("missing metadata and expired_at (OpenAI's streaming examples) read as null; expires_at is kept", () => {
    const step = makeStep();
    delete step.metadata;
    delete step.expired_at;
    step.expires_at = 1_764_000_600;
    const event = ok(step);
    if (event.kind !== "snapshot") throw new Error("snapshot expected");
    expect(event.step.metadata).toBeNull();
    expect(event.step.expired_at).toBeNull();
    expect(event.document.expires_at).toBe(1_764_000_600);
  });

  it("keeps unknown fields, at any depth, in the stored document", () => {
    const step = makeToolCallsStep({ brand_new_field: { a: [1, 2, { b: true }] } });
    const event = ok(step);
    if (event.kind !== "snapshot") throw new Error("snapshot expected");
    expect(event.document).toEqual(step);
  });

  it("keeps a __proto__ key as data without touching any prototype", () => {
    const body = JSON.parse(`{"__proto__":{"polluted":true},${JSON.stringify(makeStep()).slice(1)}`);
    const event = ok(body);
    if (event.kind !== "snapshot") throw new Error("snapshot expected");
    expect(Object.hasOwn(event.document, "__proto__")).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(event.step)).toBe(Object.prototype);
    expect(JSON.parse(JSON.stringify(event.document))).toEqual(body);
  });

  it("accepts nesting up to the limit in unknown fields", () => {
    ok(makeStep({ extra: nested(MAX_JSON_DEPTH - 2) }));
  });
});

describe("envelopes", () => {
  it("stream-style events for every status, created carrying an in_progress step", () => {
    expect(ok({ event: "thread.run.step.created", data: makeStep() })).toMatchObject({ kind: "snapshot" });
    for (const status of ["in_progress", "completed", "failed", "cancelled", "expired"]) {
      expect(ok({ event: `thread.run.step.${status}`, data: makeStep({ status }) })).toMatchObject({
        step: { status },
      });
    }
  });

  it("OpenAI-webhook-style events, whose document is the data", () => {
    const data = makeStep({ status: "completed" });
    const event = ok({
      id: "evt_1",
      object: "event",
      type: "thread.run.step.completed",
      created_at: 1_764_000_100,
      data,
    });
    expect(event).toMatchObject({ kind: "snapshot", document: data });
  });

  it("recognises deltas in every shape", () => {
    const delta = {
      id: "step_d",
      object: "thread.run.step.delta",
      delta: { step_details: { type: "tool_calls" } },
    };
    expect(ok(delta)).toEqual({ kind: "delta", stepId: "step_d" });
    expect(ok({ event: "thread.run.step.delta", data: delta })).toEqual({ kind: "delta", stepId: "step_d" });
    expect(
      ok({ id: "e", object: "event", type: "thread.run.step.delta", created_at: 1, data: delta }),
    ).toEqual({
      kind: "delta",
      stepId: "step_d",
    });
  });

  it("refuses an event whose name disagrees with data.status", () => {
    expect(issues({ event: "thread.run.step.completed", data: makeStep({ status: "failed" }) })).toEqual([
      { path: "data", message: 'event "thread.run.step.completed" disagrees with data.status "failed"' },
    ]);
    expect(
      issues({ event: "thread.run.step.created", data: makeStep({ status: "completed" }) })[0]?.path,
    ).toBe("data");
    expect(
      issues({
        id: "e",
        object: "event",
        type: "thread.run.step.expired",
        created_at: 1,
        data: makeStep(),
      })[0]?.message,
    ).toContain("disagrees");
  });

  it("refuses a delta whose webhook envelope is invalid, and a delta that is an array", () => {
    const delta = { id: "step_d", object: "thread.run.step.delta", delta: {} };
    const envelope = { id: "e", object: "event", type: "thread.run.step.delta", data: delta };
    expect(issues({ ...envelope, created_at: "soon" })).toContainEqual({
      path: "created_at",
      message: "must be a number",
    });
    expect(issues({ ...envelope, created_at: -1 })[0]?.path).toBe("created_at");
    expect(issues({ ...envelope, created_at: 1, id: "" })[0]?.path).toBe("id");
    expect(issues({ event: "thread.run.step.delta", data: { ...delta, delta: [] } })[0]).toEqual({
      path: "data.delta",
      message: "must be an object",
    });
  });

  it("refuses unknown event names and bad deltas with their path", () => {
    expect(issues({ event: "thread.run.created", data: makeStep() })[0]?.path).toBe("event");
    expect(
      issues({ event: "thread.run.step.delta", data: { object: "thread.run.step.delta", delta: {} } })[0]
        ?.path,
    ).toBe("data.id");
  });

  it("reports the inner path of an enveloped step", () => {
    const data = makeStep({ created_at: "yesterday" });
    expect(issues({ event: "thread.run.step.in_progress", data })).toContainEqual({
      path: "data.created_at",
      message: "must be a number",
    });
  });
});

describe("refused run steps", () => {
  const cases: Array<[string, Record<string, unknown>, string, string | RegExp]> = [
    ["details that are not an object", { step_details: [] }, "step_details.type", /is required/],
    ["wrong object", { object: "thread.run" }, "object", 'must be "thread.run.step"'],
    ["created_at in milliseconds", { created_at: 1_764_000_000_000 }, "created_at", /not milliseconds/],
    ["created_at as a float", { created_at: 1_764_000_000.5 }, "created_at", /whole number/],
    ["negative created_at", { created_at: -1 }, "created_at", /negative/],
    ["unknown status", { status: "done" }, "status", /must be one of/],
    ["unknown type", { type: "thinking" }, "type", /message_creation or tool_calls/],
    ["empty id", { id: "" }, "id", /must not be empty/],
    ["details of another type", { type: "tool_calls" }, "step_details.type", /must equal the step's type/],
    [
      "completed without completed_at",
      { status: "completed", completed_at: null },
      "completed_at",
      /required when status is "completed"/,
    ],
    ["expired without expired_at", { status: "expired", expired_at: null }, "expired_at", /required/],
    [
      "cancelled without cancelled_at",
      { status: "cancelled", cancelled_at: null },
      "cancelled_at",
      /required/,
    ],
    [
      "failed without last_error",
      { status: "failed", last_error: null },
      "last_error",
      /required when status is "failed"/,
    ],
    [
      "unknown last_error code",
      { last_error: { code: "oops", message: "m" } },
      "last_error.code",
      /server_error/,
    ],
    [
      "metadata with 17 keys",
      { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"])) },
      "metadata",
      /16 keys/,
    ],
    [
      "metadata key of 65 characters",
      { metadata: { ["k".repeat(65)]: "v" } },
      `metadata.${"k".repeat(65)}`,
      /64 characters/,
    ],
    [
      "metadata value of 513 characters",
      { metadata: { k: "v".repeat(513) } },
      "metadata.k",
      /512 characters/,
    ],
    ["metadata value that is a number", { metadata: { k: 1 } }, "metadata.k", /must be strings/],
    ["metadata given as an array", { metadata: ["a", "b"] }, "metadata", /object of string values/],
    // JSON.parse makes these own keys; Valibot's record skips them, so they must be checked by hand.
    [
      "metadata value under __proto__",
      { metadata: JSON.parse('{"__proto__":5}') },
      "metadata.__proto__",
      /strings/,
    ],
    [
      "metadata value of 513 characters under constructor",
      { metadata: JSON.parse(`{"constructor":"${"v".repeat(513)}"}`) },
      "metadata.constructor",
      /512 characters/,
    ],
    [
      "metadata of 17 keys, three of them __proto__, constructor and prototype",
      {
        metadata: JSON.parse(
          JSON.stringify(Object.fromEntries(Array.from({ length: 14 }, (_, i) => [`k${i}`, "v"]))).replace(
            "{",
            '{"__proto__":"a","constructor":"b","prototype":"c",',
          ),
        ),
      },
      "metadata",
      /16 keys/,
    ],
    [
      "a token count beyond 2^53 - 1 (1e200)",
      { usage: { prompt_tokens: 1e200, completion_tokens: 0, total_tokens: 0 } },
      "usage.prompt_tokens",
      /2\^53/,
    ],
    ["usage given as an array", { usage: [1, 2, 3] }, "usage", /must be an object/],
    [
      "last_error given as an array",
      { status: "failed", failed_at: 1, last_error: [] },
      "last_error",
      /object/,
    ],
    ["an id of 513 bytes", { id: "s".repeat(513) }, "id", /at most 512 bytes/],
    ["a run_id of 514 UTF-8 bytes in 257 characters", { run_id: "é".repeat(257) }, "run_id", /512 bytes/],
    ["a thread_id of 100 KB", { thread_id: "t".repeat(100_000) }, "thread_id", /512 bytes/],
    ["an assistant_id of 600 bytes", { assistant_id: "a".repeat(600) }, "assistant_id", /512 bytes/],
    [
      "negative token count",
      { usage: { prompt_tokens: -1, completion_tokens: 0, total_tokens: 0 } },
      "usage.prompt_tokens",
      /negative/,
    ],
    [
      "fractional token count",
      { usage: { prompt_tokens: 1.5, completion_tokens: 0, total_tokens: 0 } },
      "usage.prompt_tokens",
      /integer/,
    ],
    ["missing usage", { usage: undefined }, "usage", "is required"],
    [
      "missing message_id",
      { step_details: { type: "message_creation", message_creation: {} } },
      "step_details.message_creation.message_id",
      "is required",
    ],
  ];

  it.each(cases)("%s", (_name, overrides, path, message) => {
    const step = makeStep(overrides);
    for (const [key, value] of Object.entries(overrides)) if (value === undefined) delete step[key];
    const found = issues(step);
    const issue = found.find((i) => i.path === path);
    expect(issue, JSON.stringify(found)).toBeDefined();
    expect(issue?.message).toMatch(message);
  });

  it("two problems with one metadata entry are two issues at the same path, the entry's", () => {
    const key = "k".repeat(65);
    expect(issues(makeStep({ metadata: { [key]: 1 } }))).toEqual([
      { path: `metadata.${key}`, message: "metadata keys must be at most 64 characters" },
      { path: `metadata.${key}`, message: "metadata values must be strings" },
    ]);
  });

  const toolCall = (call: unknown) =>
    makeStep({ type: "tool_calls", step_details: { type: "tool_calls", tool_calls: [call] } });

  it.each([
    ["an unknown tool call type", { id: "c", type: "browser" }, "step_details.tool_calls.0.type"],
    [
      "a code_interpreter output of unknown type",
      { id: "c", type: "code_interpreter", code_interpreter: { input: "", outputs: [{ type: "video" }] } },
      "step_details.tool_calls.0.code_interpreter.outputs.0.type",
    ],
    [
      "an image output without file_id",
      {
        id: "c",
        type: "code_interpreter",
        code_interpreter: { input: "", outputs: [{ type: "image", image: {} }] },
      },
      "step_details.tool_calls.0.code_interpreter.outputs.0.image.file_id",
    ],
    [
      "a file_search score above 1",
      {
        id: "c",
        type: "file_search",
        file_search: { results: [{ file_id: "f", file_name: "n", score: 1.5 }] },
      },
      "step_details.tool_calls.0.file_search.results.0.score",
    ],
    [
      "an unknown ranker",
      {
        id: "c",
        type: "file_search",
        file_search: { ranking_options: { ranker: "best", score_threshold: 0 } },
      },
      "step_details.tool_calls.0.file_search.ranking_options.ranker",
    ],
    [
      "file_search given as an array",
      { id: "c", type: "file_search", file_search: [] },
      "step_details.tool_calls.0.file_search",
    ],
    [
      "file_search content items given as arrays",
      {
        id: "c",
        type: "file_search",
        file_search: { results: [{ file_id: "f", file_name: "n", score: 0.5, content: [["text"]] }] },
      },
      "step_details.tool_calls.0.file_search.results.0.content.0",
    ],
    [
      "ranking_options given as an array",
      { id: "c", type: "file_search", file_search: { ranking_options: [] } },
      "step_details.tool_calls.0.file_search.ranking_options",
    ],
    [
      "function given as an array",
      { id: "c", type: "function", function: ["f"] },
      "step_details.tool_calls.0.function",
    ],
    [
      "code_interpreter given as an array",
      { id: "c", type: "code_interpreter", code_interpreter: [] },
      "step_details.tool_calls.0.code_interpreter",
    ],
    [
      "a function without arguments",
      { id: "c", type: "function", function: { name: "f", output: null } },
      "step_details.tool_calls.0.function.arguments",
    ],
  ])("%s", (_name, call, path) => {
    expect(issues(toolCall(call)).map((i) => i.path)).toContain(path);
  });

  // Each refusal says what the field must be (the 422's issues are what a sender reads to fix it).
  const ci = (code_interpreter: unknown) => toolCall({ id: "c", type: "code_interpreter", code_interpreter });
  const fs = (file_search: unknown) => toolCall({ id: "c", type: "file_search", file_search });
  const fn = (fields: Record<string, unknown>) =>
    toolCall({
      id: "c",
      type: "function",
      function: { name: "f", arguments: "{}", output: null, ...fields },
    });
  const result = (fields: Record<string, unknown>) =>
    fs({ results: [{ file_id: "f", file_name: "n", score: 0.5, ...fields }] });
  const TC = "step_details.tool_calls.0";
  it.each([
    [
      "a token count",
      makeStep({ usage: { prompt_tokens: "1", completion_tokens: 0, total_tokens: 0 } }),
      "usage.prompt_tokens",
      "must be a number",
    ],
    ["usage", makeStep({ usage: 5 }), "usage", "must be an object"],
    [
      "a message id",
      makeStep({ step_details: { type: "message_creation", message_creation: { message_id: 5 } } }),
      "step_details.message_creation.message_id",
      "message_id must be a string",
    ],
    [
      "last_error.message",
      makeStep({ status: "failed", failed_at: 1, last_error: { code: "server_error", message: 5 } }),
      "last_error.message",
      "must be a string",
    ],
    [
      "a logs output",
      ci({ input: "", outputs: [{ type: "logs", logs: 5 }] }),
      `${TC}.code_interpreter.outputs.0.logs`,
      "must be a string",
    ],
    [
      "an image's file id",
      ci({ input: "", outputs: [{ type: "image", image: { file_id: 5 } }] }),
      `${TC}.code_interpreter.outputs.0.image.file_id`,
      "file_id must be a string",
    ],
    [
      "an output's type",
      ci({ input: "", outputs: [{ type: "video" }] }),
      `${TC}.code_interpreter.outputs.0.type`,
      "must be a logs or image output",
    ],
    [
      "a tool call id",
      toolCall({ id: 5, type: "code_interpreter", code_interpreter: { input: "", outputs: [] } }),
      `${TC}.id`,
      "id must be a string",
    ],
    [
      "code_interpreter.input",
      ci({ input: 5, outputs: [] }),
      `${TC}.code_interpreter.input`,
      "must be a string",
    ],
    [
      "code_interpreter.outputs",
      ci({ input: "", outputs: "none" }),
      `${TC}.code_interpreter.outputs`,
      "must be an array",
    ],
    ["code_interpreter null", ci(null), `${TC}.code_interpreter`, "must be an object"],
    ["a score", result({ score: "high" }), `${TC}.file_search.results.0.score`, "must be a number"],
    [
      "a score below 0",
      result({ score: -0.1 }),
      `${TC}.file_search.results.0.score`,
      "must be between 0 and 1",
    ],
    [
      "a score above 1",
      result({ score: 1.1 }),
      `${TC}.file_search.results.0.score`,
      "must be between 0 and 1",
    ],
    [
      "a file_search call id",
      toolCall({ id: 5, type: "file_search", file_search: {} }),
      `${TC}.id`,
      "id must be a string",
    ],
    [
      "a ranker",
      fs({ ranking_options: { ranker: "best", score_threshold: 0 } }),
      `${TC}.file_search.ranking_options.ranker`,
      "must be auto or default_2024_08_21",
    ],
    [
      "ranking_options null",
      fs({ ranking_options: null }),
      `${TC}.file_search.ranking_options`,
      "must be an object",
    ],
    [
      "a result's file id",
      result({ file_id: 5 }),
      `${TC}.file_search.results.0.file_id`,
      "file_id must be a string",
    ],
    [
      "a result's file name",
      result({ file_name: 5 }),
      `${TC}.file_search.results.0.file_name`,
      "must be a string",
    ],
    [
      "a content item's text",
      result({ content: [{ type: "text", text: 5 }] }),
      `${TC}.file_search.results.0.content.0.text`,
      "must be a string",
    ],
    [
      "a function call id",
      toolCall({ id: 5, type: "function", function: { name: "f", arguments: "{}", output: null } }),
      `${TC}.id`,
      "id must be a string",
    ],
    ["a function name", fn({ name: 5 }), `${TC}.function.name`, "must be a string"],
    ["function arguments", fn({ arguments: 5 }), `${TC}.function.arguments`, "must be a string"],
    ["a function output", fn({ output: 5 }), `${TC}.function.output`, "must be a string or null"],
    [
      "a tool call type",
      toolCall({ id: "c", type: "browser" }),
      `${TC}.type`,
      "must be a code_interpreter, file_search or function tool call",
    ],
    [
      "tool_calls",
      makeStep({ type: "tool_calls", step_details: { type: "tool_calls", tool_calls: "none" } }),
      "step_details.tool_calls",
      "must be an array",
    ],
    [
      "step_details.type",
      makeStep({ step_details: { type: "thinking" } }),
      "step_details.type",
      "must be message_creation or tool_calls details",
    ],
    ["the step id", makeStep({ id: 5 }), "id", "id must be a string"],
    ["an empty step id", makeStep({ id: "" }), "id", "id must not be empty"],
    ["assistant_id", makeStep({ assistant_id: 5 }), "assistant_id", "assistant_id must be a string"],
    ["thread_id", makeStep({ thread_id: 5 }), "thread_id", "thread_id must be a string"],
    ["run_id", makeStep({ run_id: 5 }), "run_id", "run_id must be a string"],
    [
      "status",
      makeStep({ status: "done" }),
      "status",
      "must be one of in_progress, cancelled, failed, completed, expired",
    ],
  ])("names what %s must be", (_name, step, path, message) => {
    expect(issues(step)).toContainEqual({ path, message });
  });

  it("accepts both rankers", () => {
    for (const ranker of ["auto", "default_2024_08_21"]) {
      expect(ok(fs({ ranking_options: { ranker, score_threshold: 0.5 } })).kind).toBe("snapshot");
    }
  });

  it("a step whose fields are refused gets no cross-field issues on top (they would read a broken step)", () => {
    const noDetails = makeStep({ status: "completed" });
    delete noDetails.step_details;
    expect(issues(noDetails)).toEqual([{ path: "step_details", message: "is required" }]);
    expect(issues(makeStep({ status: "failed", usage: 5 }))).toEqual([
      { path: "usage", message: "must be an object" },
    ]);
    expect(issues(makeStep({ metadata: [1] }))).toEqual([
      { path: "metadata", message: "must be an object of string values" },
    ]);
  });

  it("documents metadata's bounds in JSON Schema terms, for the OpenAPI document", () => {
    expect(v.getMetadata(MetadataSchema)).toEqual({
      type: "object",
      maxProperties: 16,
      propertyNames: { maxLength: 64 },
      additionalProperties: { type: "string", maxLength: 512 },
    });
  });

  it("a non-finite number (1e400) anywhere, with its path", () => {
    expect(
      issues(JSON.parse(JSON.stringify(makeStep()).replace('"created_at":1764000000', '"created_at":1e400'))),
    ).toEqual([{ path: "created_at", message: "must be a finite number" }]);
    expect(issues(JSON.parse(`{"extra":{"x":[1e400]},${JSON.stringify(makeStep()).slice(1)}`))[0]?.path).toBe(
      "extra.x.0",
    );
  });

  it("ill-formed Unicode in any string or key", () => {
    const lone = JSON.parse('"bad \\ud800 surrogate"') as string;
    expect(issues(makeStep({ metadata: { k: lone } }))).toEqual([
      { path: "metadata.k", message: "must be well-formed Unicode (no lone surrogates)" },
    ]);
    expect(issues(makeStep({ extra: { [lone]: 1 } }))[0]?.path).toBe("extra");
  });

  it("nesting deeper than the limit", () => {
    expect(issues(makeStep({ extra: nested(MAX_JSON_DEPTH + 5) }))[0]?.message).toMatch(/nesting is deeper/);
  });

  it("bodies that are not objects", () => {
    for (const body of [[], "step", 1, null])
      expect(issues(body)).toEqual([{ path: "", message: "must be a JSON object" }]);
  });

  it("reports several problems at once", () => {
    expect(issues(makeStep({ id: 5, created_at: "x", status: "done" })).map((i) => i.path)).toEqual(
      expect.arrayContaining(["id", "created_at", "status"]),
    );
  });
});
