import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { type Delivery, deliveryView } from "../src/domain/delivery.js";
import { checkJsonValues, MAX_JSON_DEPTH } from "../src/domain/json-value-check.js";
import { notificationEvent, selectIntents } from "../src/domain/notification-routing.js";
import { isQuarantineId, quarantineId } from "../src/domain/quarantined-request.js";
import { type RunStep, RunStepSchema } from "../src/domain/run-step-schema.js";
import { shuffled } from "../src/domain/shuffled.js";
import { type SinkConfig, SinkListSchema } from "../src/domain/sink-config-schema.js";
import { outcomeOfRefusal } from "../src/domain/state-rules.js";
import { RESPONSE_KIND } from "../src/domain/subjects/response-kind.js";
import { RUN_STEP_KIND } from "../src/domain/subjects/run-step-kind.js";
import { DEFAULT_ON, PAGERDUTY_DEFAULT_ON } from "./support/default-subscriptions.js";
import { makeStep } from "./support/run-steps.js";

// The pure rules of src/domain that the store, notifier and HTTP tests only reach through dynalite:
// stated here directly from SPEC §4 (state rules), §6 (which sinks hear of a step) and the
// quarantine's ids, so a one-line slip in them fails a fast test.

const step = (overrides: Record<string, unknown> = {}): RunStep =>
  v.parse(RunStepSchema, makeStep({ status: "failed", ...overrides }));
// The sinks a run step's reaching its status owes, as the ingest path asks.
const route = (s: RunStep, list: readonly SinkConfig[]) =>
  selectIntents(RUN_STEP_KIND.view(s), notificationEvent({ kind: "run_step" }, s.status), list);
const response = (overrides: Record<string, unknown> = {}) =>
  RESPONSE_KIND.view({
    id: "resp_1",
    object: "response",
    created_at: 1_764_000_000,
    status: "failed",
    model: "gpt-5",
    prompt: { id: "pmpt_1" },
    error: { code: "rate_limit_exceeded", message: "slow down" },
    metadata: { env: "prod" },
    ...overrides,
  });
const sinks = (entries: unknown[]): SinkConfig[] => v.parse(SinkListSchema, entries);
const console_ = (extra: Record<string, unknown> = {}) => ({ type: "console", ...extra });

describe("which sinks hear of a step (SPEC §6)", () => {
  it("names the notification after the terminal status", () => {
    expect(notificationEvent({ kind: "run_step" }, "completed")).toBe("run_step.completed");
    expect(notificationEvent({ kind: "run_step" }, "cancelled")).toBe("run_step.cancelled");
    expect(notificationEvent({ kind: "run_step" }, "in_progress")).toBeNull();
    expect(notificationEvent({ kind: "response" }, "incomplete")).toBe("response.incomplete");
    expect(notificationEvent({ kind: "response" }, "queued")).toBeNull();
    expect(notificationEvent({ kind: "agent_session" }, "action_required")).toBe(
      "agent.session.action_required",
    );
    expect(notificationEvent({ kind: "agent_session" }, "in_progress")).toBeNull();
  });

  it("an in_progress step notifies nobody, whatever the sinks subscribe to", () => {
    expect(route(step({ status: "in_progress" }), sinks([console_()]))).toEqual([]);
  });

  it("every subscribed sink, in configuration order; default `on`: all terminal statuses but PagerDuty's", () => {
    const list = sinks([
      console_({ name: "a" }),
      { type: "pagerduty", name: "pd", routing_key: "R0123456789abcdef0123456789abcdef" },
      console_({ name: "b", on: ["completed"] }),
    ]);
    expect(route(step({ status: "failed" }), list)).toEqual([
      { sink: "a", event: "run_step.failed" },
      { sink: "pd", event: "run_step.failed" },
    ]);
    expect(route(step({ status: "completed" }), list)).toEqual([
      { sink: "a", event: "run_step.completed" },
      { sink: "b", event: "run_step.completed" },
    ]);
    expect(route(step({ status: "cancelled" }), list)).toEqual([{ sink: "a", event: "run_step.cancelled" }]);
  });

  it("an assistant_id filter lets through only the listed assistants", () => {
    const list = sinks([console_({ filter: { assistant_id: ["asst_one", "asst_two"] } })]);
    expect(route(step({ assistant_id: "asst_two" }), list)).toHaveLength(1);
    expect(route(step({ assistant_id: "asst_three" }), list)).toEqual([]);
  });

  it("a metadata filter needs every pair, with equal values", () => {
    const list = sinks([console_({ filter: { metadata: { env: "prod", team: "ops" } } })]);
    expect(route(step({ metadata: { env: "prod", team: "ops", x: "y" } }), list)).toHaveLength(1);
    expect(route(step({ metadata: { env: "prod" } }), list)).toEqual([]);
    expect(route(step({ metadata: { env: "dev", team: "ops" } }), list)).toEqual([]);
    expect(route(step({ metadata: null }), list)).toEqual([]);
  });

  it("a metadata filter on an inherited name (toString, constructor) never matches a step without it", () => {
    // `in`/plain lookups would find Object.prototype's members on any metadata object.
    const list = sinks([console_({ filter: { metadata: { toString: "x" } } })]);
    expect(route(step({ metadata: {} }), list)).toEqual([]);
    expect(route(step({ metadata: { toString: "x" } }), list)).toHaveLength(1);
  });

  it("both filters must hold", () => {
    const list = sinks([console_({ filter: { assistant_id: ["asst_abc123"], metadata: { env: "prod" } } })]);
    expect(route(step({ metadata: { env: "prod" } }), list)).toHaveLength(1);
    expect(route(step({ assistant_id: "asst_zzz", metadata: { env: "prod" } }), list)).toEqual([]);
  });
});

describe("which sinks hear of a response or an agent session (SPEC §9)", () => {
  it("by the full event name; a bare status word is a run step's only", () => {
    const list = sinks([
      console_({ name: "bare", on: ["failed"] }),
      console_({ name: "full", on: ["response.failed", "agent.session.action_required"] }),
      console_({ name: "steps", on: ["run_step.failed"] }),
    ]);
    expect(selectIntents(response(), "response.failed", list)).toEqual([
      { sink: "full", event: "response.failed" },
    ]);
    expect(route(step(), list)).toEqual([
      { sink: "bare", event: "run_step.failed" },
      { sink: "steps", event: "run_step.failed" },
    ]);
    expect(selectIntents(response(), null, list)).toEqual([]);
  });

  it("default `on`: every kind's notifications, PagerDuty only what pages a person", () => {
    const [everything, pager] = sinks([
      console_(),
      { type: "pagerduty", routing_key: "R0123456789abcdef0123456789abcdef" },
    ]);
    expect(everything?.on).toEqual(DEFAULT_ON);
    expect(pager?.on).toEqual(PAGERDUTY_DEFAULT_ON);
  });

  it("model and prompt_id filters match the response's; a subject without one never matches", () => {
    const list = sinks([
      console_({ name: "m", filter: { model: ["gpt-5"] } }),
      console_({ name: "p", filter: { prompt_id: ["pmpt_2"] } }),
    ]);
    expect(selectIntents(response(), "response.failed", list)).toEqual([
      { sink: "m", event: "response.failed" },
    ]);
    expect(
      selectIntents(response({ model: "gpt-4o", prompt: { id: "pmpt_2" } }), "response.failed", list),
    ).toEqual([{ sink: "p", event: "response.failed" }]);
    expect(route(step(), list)).toEqual([]);
  });

  it("assistant_id matches a response's prompt id, else its model", () => {
    const list = sinks([console_({ filter: { assistant_id: ["pmpt_1", "gpt-4o"] } })]);
    expect(selectIntents(response(), "response.failed", list)).toHaveLength(1);
    expect(selectIntents(response({ prompt: null, model: "gpt-4o" }), "response.failed", list)).toHaveLength(
      1,
    );
    expect(selectIntents(response({ prompt: null }), "response.failed", list)).toEqual([]);
  });

  it("`on` refuses names no kind has", () => {
    for (const on of [
      ["response.queued"],
      ["agent.session.requires_action"],
      ["run_step.in_progress"],
      ["nope"],
    ]) {
      expect(() => sinks([console_({ on })])).toThrow();
    }
  });
});

describe("the outcome of a snapshot the conditional write refused (SPEC §4)", () => {
  it("a terminal step met by the same terminal status is unchanged, by another a conflict", () => {
    expect(outcomeOfRefusal("completed", "completed")).toBe("unchanged");
    expect(outcomeOfRefusal("failed", "failed")).toBe("unchanged");
    expect(outcomeOfRefusal("completed", "failed")).toBe("conflict");
    expect(outcomeOfRefusal("expired", "cancelled")).toBe("conflict");
  });

  it("anything else refused is stale: in_progress after terminal, or an older in_progress", () => {
    expect(outcomeOfRefusal("completed", "in_progress")).toBe("stale");
    expect(outcomeOfRefusal("in_progress", "in_progress")).toBe("stale");
    expect(outcomeOfRefusal("in_progress", "completed")).toBe("stale");
  });
});

describe("quarantine ids", () => {
  it("q_ and 26 hex digits of SHA-256(webhook-id): one record for all retries of a message", async () => {
    // SHA-256("msg_1") starts 4b1b… (checked with `printf msg_1 | sha256sum`).
    const id = await quarantineId("msg_1");
    expect(id).toMatch(/^q_[0-9a-f]{26}$/);
    const expected = await crypto.subtle.digest("SHA-256", new TextEncoder().encode("msg_1"));
    expect(id).toBe(`q_${Buffer.from(expected).toString("hex").slice(0, 26)}`);
    expect(await quarantineId("msg_1")).toBe(id);
    expect(await quarantineId("msg_2")).not.toBe(id);
  });

  it("keeps leading zero nibbles (each byte is two digits)", async () => {
    // Search a few ids for one whose hash has a byte below 0x10 in the kept part.
    for (let i = 0; i < 64; i++) {
      const digest = new Uint8Array(
        await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`m${i}`)),
      ).subarray(0, 13);
      if (digest.some((b) => b < 16)) {
        expect(await quarantineId(`m${i}`)).toHaveLength(2 + 26);
        return;
      }
    }
    throw new Error("no id with a small byte among 64");
  });

  it("recognises only that shape, whole", () => {
    expect(isQuarantineId(`q_${"0a".repeat(13)}`)).toBe(true);
    for (const bad of [
      `q_${"0a".repeat(13)}0`,
      `q_${"0A".repeat(13)}`,
      `x_${"0a".repeat(13)}`,
      `${"0a".repeat(13)}`,
      `q_${"0a".repeat(12)}0`,
      ` q_${"0a".repeat(13)}`,
      `q_${"0a".repeat(13)}\n`,
      "",
    ]) {
      expect(isQuarantineId(bad), JSON.stringify(bad)).toBe(false);
    }
  });
});

describe("shuffled (the sweepers' partition order)", () => {
  it("is a permutation of its input and leaves the input alone", () => {
    const items = [1, 2, 3, 4, 5, 6, 7];
    const out = shuffled(items);
    expect(out).not.toBe(items);
    expect([...out].sort()).toEqual(items);
    expect(items).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it("is Fisher–Yates: random 0 rotates the first item last; random ~1 keeps the order", () => {
    expect(shuffled([1, 2, 3, 4], () => 0)).toEqual([2, 3, 4, 1]);
    expect(shuffled([1, 2, 3, 4], () => 0.999_999)).toEqual([1, 2, 3, 4]);
  });

  it("reaches every order of three items equally often over a uniform source", () => {
    const counts = new Map<string, number>();
    // Every combination of the two draws (j in 0..2 then 0..1) once: each order exactly once.
    for (const first of [0, 0.34, 0.67]) {
      for (const second of [0, 0.5]) {
        const draws = [first, second];
        const order = shuffled(["a", "b", "c"], () => draws.shift() ?? 0).join("");
        counts.set(order, (counts.get(order) ?? 0) + 1);
      }
    }
    expect([...counts.keys()].sort()).toEqual(["abc", "acb", "bac", "bca", "cab", "cba"]);
  });

  it("copes with no item and one item", () => {
    expect(shuffled([], () => 0)).toEqual([]);
    expect(shuffled(["x"], () => 0)).toEqual(["x"]);
  });
});

describe("JSON values the store must not keep", () => {
  const nested = (depth: number): unknown => {
    let value: unknown = 1;
    for (let i = 0; i < depth; i++) value = i % 2 ? { k: value } : [value];
    return value;
  };

  it(`accepts nesting of exactly ${MAX_JSON_DEPTH} levels, refuses one more, at the level that overflows`, () => {
    expect(checkJsonValues(nested(MAX_JSON_DEPTH))).toEqual([]);
    const issues = checkJsonValues(nested(MAX_JSON_DEPTH + 1));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.message).toBe(`nesting is deeper than ${MAX_JSON_DEPTH} levels`);
    expect(issues[0]?.path.split(".")).toHaveLength(MAX_JSON_DEPTH);
  });

  it("looks inside arrays and objects, naming each bad value by its path", () => {
    expect(checkJsonValues({ a: [1, "ok", { b: "\ud800" }], c: Number.POSITIVE_INFINITY, d: null })).toEqual([
      { path: "a.2.b", message: "must be well-formed Unicode (no lone surrogates)" },
      { path: "c", message: "must be a finite number" },
    ]);
    expect(checkJsonValues(["x", ["\udc00"]])).toEqual([
      { path: "1.0", message: "must be well-formed Unicode (no lone surrogates)" },
    ]);
  });

  it("reports a bad key at its object and goes on with the other keys", () => {
    expect(checkJsonValues({ o: { "\ud800": 1, fine: Number.NaN } })).toEqual([
      { path: "o", message: "object keys must be well-formed Unicode (no lone surrogates)" },
      { path: "o.fine", message: "must be a finite number" },
    ]);
  });

  it("stops at 10 issues", () => {
    const many = Array.from({ length: 25 }, () => Number.NaN);
    const issues = checkJsonValues(many);
    expect(issues.map((issue) => issue.path)).toEqual(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  });
});

describe("a delivery as the operator sees it", () => {
  const delivery = (state: Delivery["state"]): Delivery =>
    ({ state, nextAttemptMs: 1_000 }) as unknown as Delivery;

  it("pending shows when it is due; parked (sink disabled) and settled ones show no due time", () => {
    expect(deliveryView(delivery("pending"), false)).toEqual({ state: "pending", nextAttemptMs: 1_000 });
    expect(deliveryView(delivery("pending"), true)).toEqual({ state: "parked", nextAttemptMs: null });
    expect(deliveryView(delivery("dead"), false)).toEqual({ state: "dead", nextAttemptMs: null });
    expect(deliveryView(delivery("delivered"), true)).toEqual({ state: "delivered", nextAttemptMs: null });
  });
});
