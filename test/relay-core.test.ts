import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isRunStepsPath, runStepEventOf, runStepEventsOfJson } from "../src/relay/run-step-events.js";
import { type SseEvent, SseParser } from "../src/relay/sse-parser.js";
import { finalSteps, transcript } from "./support/fake-assistants.js";
import { makeStep } from "./support/run-steps.js";

const parseAll = (chunks: Array<string | Uint8Array>): SseEvent[] => {
  const parser = new SseParser();
  return [...chunks.flatMap((c) => parser.push(c)), ...parser.end()];
};

describe("SSE parser", () => {
  it("reads the Assistants wire format, [DONE] included", () => {
    const events = parseAll([transcript("tool-calls-start")]);
    expect(events.map((e) => e.event)).toEqual([
      "thread.run.created",
      "thread.run.queued",
      "thread.run.in_progress",
      "thread.run.step.created",
      "thread.run.step.in_progress",
      "thread.run.step.delta",
      "thread.run.step.delta",
      "thread.run.step.delta",
      "thread.run.step.delta",
      "thread.run.requires_action",
      "done",
    ]);
    expect(events.at(-1)?.data).toBe("[DONE]");
    expect(JSON.parse(events[3]?.data ?? "").id).toBe("step_T1r8Ws4Nq6Gb3C");
  });

  it("gives the same events however the bytes are split (inside lines, CRLF and UTF-8 sequences)", () => {
    const bytes = new TextEncoder().encode(transcript("chat-run").replace(/\n/g, "\r\n"));
    const whole = parseAll([bytes]);
    expect(whole.map((e) => e.event)).toContain("thread.message.delta");
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 40 }),
        (cuts) => {
          const sorted = [...cuts].sort((a, b) => a - b);
          const chunks = [0, ...sorted].map((from, i) => bytes.subarray(from, sorted[i] ?? bytes.length));
          expect(parseAll(chunks)).toEqual(whole);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("follows the standard: comments, CR line ends, joined data lines, default name, no trailing dispatch", () => {
    expect(
      parseAll([": keep-alive\r\revent: a\rdata: 1\rdata:2\r\rdata: x\n\nevent: b\ndata: not dispatched"]),
    ).toEqual([
      { event: "a", data: "1\n2" },
      { event: "message", data: "x" },
    ]);
    expect(parseAll(["event: a\r", "\ndata: y\r", "\n\r", "\n"])).toEqual([{ event: "a", data: "y" }]);
  });

  it("skips an event larger than its limit and reads the next one", () => {
    const parser = new SseParser({ maxEventChars: 20 });
    const out = [
      ...parser.push(`event: big\ndata: ${"x".repeat(15)}`),
      ...parser.push(`${"y".repeat(15)}\n\nevent: small\ndata: ok\n\n`),
    ];
    expect(out).toEqual([{ event: "small", data: "ok" }]);
  });
});

describe("run step events", () => {
  it("forwards snapshots, deltas only when asked, with an id stable for the same content", async () => {
    const step = makeStep({ status: "in_progress" });
    const created = await runStepEventOf("thread.run.step.created", JSON.stringify(step));
    expect(created).toMatchObject({ stepId: "step_abc123", event: "thread.run.step.created" });
    expect(JSON.parse(created?.body ?? "")).toEqual({ event: "thread.run.step.created", data: step });
    expect((await runStepEventOf("thread.run.step.created", step))?.id).toBe(created?.id);
    expect((await runStepEventOf("thread.run.step.in_progress", step))?.id).not.toBe(created?.id);
    expect(created?.id).toMatch(/^msg_[A-Za-z0-9_-]{24}$/);
    const delta = { id: "step_abc123", object: "thread.run.step.delta", delta: {} };
    expect(await runStepEventOf("thread.run.step.delta", delta)).toBeNull();
    expect(await runStepEventOf("thread.run.step.delta", delta, { includeDeltas: true })).toMatchObject({
      stepId: "step_abc123",
    });
    expect(await runStepEventOf("thread.message.delta", step)).toBeNull();
    expect(await runStepEventOf("thread.run.step.completed", "{not json")).toBeNull();
    expect(await runStepEventOf("thread.run.step.completed", "[DONE]")).toBeNull();
  });

  it("reads run step list and retrieve answers as the snapshot events of each status", async () => {
    const steps = finalSteps("tool-calls-start", "tool-calls-submit");
    const listed = await runStepEventsOfJson({ object: "list", data: steps, has_more: false });
    expect(listed.map((e) => `${e.event} ${e.stepId}`)).toEqual([
      "thread.run.step.completed step_T1r8Ws4Nq6Gb3C",
      "thread.run.step.completed step_M2hDq8Vz1Rk5Lp",
    ]);
    const one = await runStepEventsOfJson(makeStep({ status: "expired" }));
    expect(one.map((e) => e.event)).toEqual(["thread.run.step.expired"]);
    expect(await runStepEventsOfJson({ object: "thread.run", id: "run_1", status: "completed" })).toEqual([]);
    expect(isRunStepsPath("/v1/threads/t_1/runs/r_1/steps")).toBe(true);
    expect(isRunStepsPath("/openai/threads/t_1/runs/r_1/steps/step_1")).toBe(true);
    expect(isRunStepsPath("/v1/threads/t_1/runs/r_1")).toBe(false);
    expect(isRunStepsPath("/v1/threads/t_1/runs/r_1/steps/s/x")).toBe(false);
  });
});
