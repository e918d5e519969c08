import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  type RelayEvent,
  RUN_STEP_SNAPSHOT_EVENTS,
  runStepEventOf,
  runStepEventsOfJson,
} from "../src/relay/run-step-events.js";
import { finalSteps } from "./support/fake-assistants.js";
import { makeStep } from "./support/run-steps.js";

/** The stream-style body SPEC §3 accepts. */
const bodyOf = (e: RelayEvent | null | undefined): unknown => JSON.parse(e?.body ?? "null");

/** The webhook-id, computed with node:crypto: msg_ and the URL-safe base64 of 18 bytes of SHA-256(body). */
const expectedId = (body: string): string =>
  `msg_${createHash("sha256").update(body).digest().subarray(0, 18).toString("base64url")}`;

const STATUSES = ["in_progress", "completed", "failed", "cancelled", "expired"] as const;

describe("run step events of a stream (runStepEventOf)", () => {
  it("forwards every snapshot event by its name, as the body { event, data } with the step as sent", async () => {
    const step = makeStep({ id: "step_snap", status: "in_progress" });
    for (const name of RUN_STEP_SNAPSHOT_EVENTS) {
      const e = await runStepEventOf(name, step);
      expect(e).toMatchObject({ stepId: "step_snap", event: name });
      expect(bodyOf(e)).toEqual({ event: name, data: step });
      // The SSE data text gives the very same event.
      expect(await runStepEventOf(name, JSON.stringify(step))).toEqual(e);
    }
  });

  it("forwards thread.run.step.delta only when asked, and no other event even then", async () => {
    const delta = { id: "step_d", object: "thread.run.step.delta", delta: { step_details: {} } };
    expect(await runStepEventOf("thread.run.step.delta", delta)).toBeNull();
    expect(await runStepEventOf("thread.run.step.delta", delta, { includeDeltas: false })).toBeNull();
    const forwarded = await runStepEventOf("thread.run.step.delta", delta, { includeDeltas: true });
    expect(forwarded).toMatchObject({ stepId: "step_d", event: "thread.run.step.delta" });
    expect(bodyOf(forwarded)).toEqual({ event: "thread.run.step.delta", data: delta });
    const message = { id: "msg_1", object: "thread.message.delta", delta: {} };
    for (const name of ["thread.message.delta", "thread.run.created", "thread.run.step", "done", ""]) {
      expect(await runStepEventOf(name, message, { includeDeltas: true }), name).toBeNull();
    }
  });

  it("takes only a JSON object with a string id as a step", async () => {
    const name = "thread.run.step.completed";
    const notSteps: unknown[] = [
      null,
      undefined,
      42,
      "[DONE]",
      "{not json",
      "",
      "null",
      "42",
      '"step_1"',
      '["step_1"]',
      "{}",
      '{"object":"thread.run.step","status":"completed"}',
      { object: "thread.run.step", status: "completed" },
      { id: 42, object: "thread.run.step" },
      { id: null },
      '{"id":["step_1"]}',
      // Properties JSON would not carry: the body would lose the step.
      Object.assign(["x"], { id: "step_array" }),
      Object.assign(() => undefined, { id: "step_function" }),
      // An object is taken as it is, never read back from its text.
      { toString: () => '{"id":"step_text"}' },
    ];
    for (const data of notSteps) expect(await runStepEventOf(name, data), String(data)).toBeNull();
    expect(await runStepEventOf(name, '{"id":"step_min"}')).toMatchObject({ stepId: "step_min" });
  });

  it("gives each event the webhook-id msg_<URL-safe base64 of 18 bytes of SHA-256 of its body>", async () => {
    const ids: string[] = [];
    for (let n = 0; n < 40; n++) {
      const e = await runStepEventOf(
        "thread.run.step.completed",
        makeStep({ id: `step_${n}`, status: "completed" }),
      );
      expect(e?.id).toBe(expectedId(e?.body ?? ""));
      expect(e?.id).toMatch(/^msg_[A-Za-z0-9_-]{24}$/);
      ids.push(e?.id ?? "");
    }
    // The sample holds ids where standard base64 would have had "+" and "/".
    expect(ids.some((id) => id.includes("-"))).toBe(true);
    expect(ids.some((id) => id.slice(4).includes("_"))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("run step events of list and retrieve answers (runStepEventsOfJson)", () => {
  it("turns every step of a list into the snapshot event of its status, in list order", async () => {
    const steps = STATUSES.map((status, n) => makeStep({ id: `step_l${n}`, status }));
    const events = await runStepEventsOfJson({
      object: "list",
      data: steps,
      first_id: "step_l0",
      has_more: false,
    });
    expect(events.map((e) => [e.stepId, e.event])).toEqual(
      STATUSES.map((status, n) => [`step_l${n}`, `thread.run.step.${status}`]),
    );
    for (const [n, e] of events.entries()) {
      expect(bodyOf(e)).toEqual({ event: e.event, data: steps[n] });
      expect(e.id).toBe(expectedId(e.body));
    }
    // The same step streamed as that snapshot event is the same message: one webhook-id.
    const streamed = await runStepEventOf("thread.run.step.completed", steps[1]);
    expect(events[1]).toEqual(streamed);
  });

  it("reads the recorded runs' final steps as a list", async () => {
    const steps = finalSteps("tool-calls-start", "tool-calls-submit", "chat-run");
    const events = await runStepEventsOfJson({ object: "list", data: steps, has_more: false });
    expect(events.map((e) => e.stepId)).toEqual(steps.map((s) => s.id));
  });

  it("skips list entries that are not run steps with a string id and a known status", async () => {
    const good = makeStep({ id: "step_good", status: "completed" });
    const entries: unknown[] = [
      null,
      "step_x",
      7,
      ["thread.run.step"],
      { id: "run_1", object: "thread.run", status: "completed" },
      { id: "msg_1", object: "thread.message", status: "completed" },
      makeStep({ id: 12, status: "completed" }),
      makeStep({ id: null, status: "completed" }),
      makeStep({ id: "step_queued", status: "queued" }),
      makeStep({ id: "step_none", status: undefined }),
      makeStep({ id: "step_null", status: null }),
      makeStep({ id: "step_arr", status: ["completed"] }),
      makeStep({ id: "step_upper", status: "COMPLETED" }),
      good,
    ];
    const events = await runStepEventsOfJson({ object: "list", data: entries, has_more: false });
    expect(events.map((e) => e.stepId)).toEqual(["step_good"]);
  });

  it("finds no event for statuses named like Object's own properties (a hostile upstream)", async () => {
    const statuses = ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"];
    const steps = statuses.map((status) => makeStep({ id: `step_${status}`, status }));
    expect(await runStepEventsOfJson({ object: "list", data: steps })).toEqual([]);
    for (const step of steps) expect(await runStepEventsOfJson(step)).toEqual([]);
  });

  it("reads a retrieve answer as its one step, whatever fields it has", async () => {
    const inner = makeStep({ id: "step_inner", status: "completed" });
    const step = makeStep({ id: "step_one", status: "failed", data: [inner] });
    const events = await runStepEventsOfJson(step);
    expect(events.map((e) => [e.stepId, e.event])).toEqual([["step_one", "thread.run.step.failed"]]);
    expect(bodyOf(events[0])).toEqual({ event: "thread.run.step.failed", data: step });
  });

  it("reads nothing from answers that are neither a list nor a step", async () => {
    const step = makeStep({ status: "completed" });
    const answers: unknown[] = [
      null,
      undefined,
      "list",
      3,
      [step],
      { object: "thread.run", id: "run_1", status: "completed", data: [step] },
      { data: [step] },
      { object: "list", data: { 0: step } },
      { error: { message: "No run found", type: "invalid_request_error" } },
    ];
    for (const answer of answers)
      expect(await runStepEventsOfJson(answer), JSON.stringify(answer)).toEqual([]);
  });
});
