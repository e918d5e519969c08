import { describe, expect, it } from "vitest";
import {
  ATTEMPT_LOG_SIZE,
  type Delivery,
  deliveryId,
  deliveryView,
  newDelivery,
  parseDeliveryId,
} from "../src/domain/delivery.js";
import { notificationMessageId } from "../src/domain/notification-payloads.js";
import { type AttemptResult, afterAttempt, type RetryPolicy, revived } from "../src/domain/retry-policy.js";
import { FAILING_AFTER, probeDelayMs } from "../src/domain/sink-health.js";

const T0 = 1_764_000_000_000;
const fresh = (): Delivery =>
  newDelivery(
    { sink: "hook", event: "run_step.completed" },
    { kind: "run_step", id: "step_1", runId: "run_1" },
    T0,
  );
const policy = (scheduleS: number[], random = 0.5): RetryPolicy => ({ scheduleS, random: () => random });
const failed = (extra: Partial<Extract<AttemptResult, { ok: false }>> = {}): AttemptResult => ({
  ok: false,
  retryable: true,
  error: "HTTP 503",
  status: 503,
  ...extra,
});
/** One attempt that started at `at` and took 40 ms. */
const timing = (at: number) => ({ startedMs: at, endedMs: at + 40 });

describe("retry schedule (SPEC §6: each delay of NOTIFY_RETRY_SCHEDULE in turn, then dead)", () => {
  it("waits each delay of the schedule in order, counted from the end of the attempt", () => {
    const schedule = [1, 5, 30];
    let d = fresh();
    const waits: number[] = [];
    let at = T0;
    for (let i = 0; i < schedule.length; i++) {
      d = afterAttempt(d, failed(), timing(at), policy(schedule));
      expect(d.state).toBe("pending");
      waits.push((d.nextAttemptMs as number) - (at + 40));
      at = d.nextAttemptMs as number;
    }
    // random 0.5 is the middle of the jitter: exactly the scheduled delay.
    expect(waits).toEqual([1_000, 5_000, 30_000]);
    expect(d.attempts).toBe(3);
  });

  it("`1,1,1` is three retries after the first attempt: the fourth failure is dead and says why", () => {
    let d = fresh();
    for (let i = 0; i < 3; i++) d = afterAttempt(d, failed(), timing(T0 + i * 2_000), policy([1, 1, 1]));
    expect(d).toMatchObject({ state: "pending", attempts: 3 });
    const dead = afterAttempt(
      d,
      failed({ error: "HTTP 502: bad gateway" }),
      timing(T0 + 9_000),
      policy([1, 1, 1]),
    );
    expect(dead).toMatchObject({
      state: "dead",
      attempts: 4,
      nextAttemptMs: null,
      lastError: "gave up after 4 attempts: HTTP 502: bad gateway",
    });
  });

  it("an empty schedule means no retry at all", () => {
    const dead = afterAttempt(fresh(), failed({ error: "timed out after 100 ms" }), timing(T0), policy([]));
    expect(dead).toMatchObject({
      state: "dead",
      lastError: "gave up after 1 attempts: timed out after 100 ms",
    });
  });

  it("jitter is ±10%: random 0 waits exactly 0.9× the delay, random ~1 exactly 1.1×", () => {
    const low = afterAttempt(fresh(), failed(), timing(T0), policy([10], 0));
    const high = afterAttempt(fresh(), failed(), timing(T0), policy([10], 1 - 1e-12));
    expect(low.nextAttemptMs).toBe(T0 + 40 + 9_000);
    expect(high.nextAttemptMs).toBe(T0 + 40 + 11_000);
    for (const r of [0.1, 0.37, 0.5, 0.93]) {
      const wait =
        (afterAttempt(fresh(), failed(), timing(T0), policy([10], r)).nextAttemptMs as number) - T0;
      expect(wait - 40).toBeGreaterThanOrEqual(9_000);
      expect(wait - 40).toBeLessThanOrEqual(11_000);
    }
  });

  it("Retry-After longer than the delay is honoured; shorter is ignored", () => {
    const longer = afterAttempt(
      fresh(),
      failed({ status: 429, retryAfterMs: 20_000 }),
      timing(T0),
      policy([1, 60]),
    );
    expect(longer.nextAttemptMs).toBe(T0 + 40 + 20_000);
    const shorter = afterAttempt(
      fresh(),
      failed({ status: 503, retryAfterMs: 100 }),
      timing(T0),
      policy([5, 60]),
    );
    expect(shorter.nextAttemptMs).toBe(T0 + 40 + 5_000);
  });

  it("Retry-After is capped at the schedule's longest delay", () => {
    const capped = afterAttempt(
      fresh(),
      failed({ status: 429, retryAfterMs: 10 * 86_400_000 }),
      timing(T0),
      policy([1, 120, 30]),
    );
    expect(capped.nextAttemptMs).toBe(T0 + 40 + 120_000);
  });

  it("a final failure (3xx, other 4xx, a request that cannot be built) is dead at once with its reason", () => {
    const dead = afterAttempt(
      fresh(),
      { ok: false, retryable: false, error: "HTTP 400: bad field", status: 400 },
      timing(T0),
      policy([1, 1, 1]),
    );
    expect(dead).toMatchObject({
      state: "dead",
      attempts: 1,
      lastError: "HTTP 400: bad field",
      nextAttemptMs: null,
    });
  });

  it("410 Gone leaves the delivery pending (parked while its sink is disabled), not dead", () => {
    const gone = afterAttempt(
      fresh(),
      { ok: false, retryable: false, gone: true, error: "HTTP 410", status: 410 },
      timing(T0),
      policy([1]),
    );
    expect(gone).toMatchObject({ state: "pending", attempts: 1, lastError: "HTTP 410" });
    expect(deliveryView(gone, true)).toEqual({ state: "parked", nextAttemptMs: null });
    expect(deliveryView(gone, false).state).toBe("pending");
  });

  it("success: delivered, the last error cleared", () => {
    const retried = afterAttempt(fresh(), failed(), timing(T0), policy([1]));
    const done = afterAttempt(retried, { ok: true, status: 204 }, timing(T0 + 2_000), policy([1]));
    expect(done).toMatchObject({ state: "delivered", attempts: 2, lastError: null, nextAttemptMs: null });
  });

  it("a revived (operator-retried) dead delivery starts the schedule again", () => {
    let d = fresh();
    d = afterAttempt(d, failed(), timing(T0), policy([2]));
    d = afterAttempt(d, failed(), timing(T0 + 3_000), policy([2]));
    expect(d.state).toBe("dead");
    const again = revived(d, T0 + 10_000);
    expect(again).toMatchObject({
      state: "pending",
      attempts: 2,
      scheduleBase: 2,
      nextAttemptMs: T0 + 10_000,
    });
    const after = afterAttempt(again, failed(), timing(T0 + 10_000), policy([2]));
    expect(after).toMatchObject({ state: "pending", attempts: 3, nextAttemptMs: T0 + 10_040 + 2_000 });
    expect(afterAttempt(after, failed(), timing(T0 + 20_000), policy([2])).lastError).toBe(
      "gave up after 4 attempts: HTTP 503",
    );
    expect(deliveryView(d, false)).toEqual({ state: "dead", nextAttemptMs: null });
    expect(deliveryView(d, true).state).toBe("dead");
  });
});

describe("attempt log", () => {
  it("records attempt number, start, status, latency and error of each attempt", () => {
    const one = afterAttempt(
      fresh(),
      { ok: false, retryable: true, error: "network error (ECONNREFUSED)" },
      { startedMs: T0, endedMs: T0 + 3 },
      policy([1]),
    );
    const two = afterAttempt(
      one,
      { ok: true, status: 200 },
      { startedMs: T0 + 5_000, endedMs: T0 + 5_250 },
      policy([1]),
    );
    expect(two.log).toEqual([
      { attempt: 1, at: T0, status: null, latencyMs: 3, error: "network error (ECONNREFUSED)" },
      { attempt: 2, at: T0 + 5_000, status: 200, latencyMs: 250, error: null },
    ]);
  });

  it(`keeps the last ${ATTEMPT_LOG_SIZE} attempts only, oldest first`, () => {
    let d = fresh();
    const schedule = Array.from({ length: 20 }, () => 1);
    for (let i = 1; i <= 13; i++) {
      d = afterAttempt(d, failed({ error: `e${i}` }), timing(T0 + i * 10_000), policy(schedule));
    }
    expect(d.attempts).toBe(13);
    expect(d.log.map((a) => a.attempt)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    expect(d.log.map((a) => a.error)).toEqual([
      "e4",
      "e5",
      "e6",
      "e7",
      "e8",
      "e9",
      "e10",
      "e11",
      "e12",
      "e13",
    ]);
  });
});

describe("sink health rules", () => {
  it("a sink is failing after 5 failures in a row", () => {
    expect(FAILING_AFTER).toBe(5);
  });

  it("probes back off from 5 s, doubling per failed probe, to at most 5 min", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 20].map(probeDelayMs)).toEqual([
      5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000,
    ]);
  });
});

describe("delivery ids", () => {
  it("split at the last colon, so step ids may contain colons", () => {
    expect(deliveryId({ kind: "run_step", subjectId: "step:a:b", sink: "hook" })).toBe("step:a:b:hook");
    expect(parseDeliveryId("step:a:b:hook")).toEqual({
      kind: "run_step" as const,
      subjectId: "step:a:b",
      sink: "hook",
      stalled: false,
    });
    for (const bad of [
      "",
      "nocolon",
      ":hook",
      "step:",
      "step:~stalled",
      "step:~response",
      "step:a~b",
      "step:hook~x~stalled",
    ])
      expect(parseDeliveryId(bad)).toBeNull();
  });

  it("a stall notice's id is its sink's with ~stalled, which no sink name can end with", () => {
    expect(deliveryId({ kind: "run_step", subjectId: "step:a", sink: "hook", stalled: true })).toBe(
      "step:a:hook~stalled",
    );
    expect(deliveryId({ kind: "run_step", subjectId: "step:a", sink: "hook", stalled: false })).toBe(
      "step:a:hook",
    );
  });

  it("another kind's id carries its kind's mark after the sink, before a stall mark, and splits back", () => {
    for (const ref of [
      { kind: "response", subjectId: "resp:1", sink: "hook", stalled: false },
      { kind: "response", subjectId: "resp_1", sink: "hook", stalled: true },
      { kind: "agent_session", subjectId: "evt_1", sink: "ops-2", stalled: false },
    ] as const) {
      expect(parseDeliveryId(deliveryId(ref))).toEqual(ref);
    }
    expect(deliveryId({ kind: "response", subjectId: "resp_1", sink: "hook", stalled: true })).toBe(
      "resp_1:hook~response~stalled",
    );
    expect(deliveryId({ kind: "agent_session", subjectId: "evt_1", sink: "hook" })).toBe(
      "evt_1:hook~agent_session",
    );
    expect(parseDeliveryId("step:a:hook~stalled")).toEqual({
      kind: "run_step" as const,
      subjectId: "step:a",
      sink: "hook",
      stalled: true,
    });
  });
});

describe("webhook-id (stable per step, status and sink; always a valid header value)", () => {
  const HEADER_SAFE = /^[\x21-\x7e]+$/;

  it("is readable for plain ids", async () => {
    expect(await notificationMessageId("step_1", "run_step.failed", "hook")).toBe("msg_step_1_failed_hook");
  });

  it("is a stable hash for non-Latin-1, control characters and very long ids", async () => {
    const odd = [
      "step_ünïcødé_✓_🚀",
      "step\u0001\u007f\r\nX-Injected: 1",
      "s".repeat(1_000),
      "step with spaces",
    ];
    const ids = await Promise.all(odd.map((id) => notificationMessageId(id, "run_step.completed", "hook")));
    for (const id of ids) {
      expect(id).toMatch(/^msg_h_[A-Za-z0-9_-]{43}$/);
      expect(id).toMatch(HEADER_SAFE);
    }
    expect(new Set(ids).size).toBe(odd.length);
    expect(await notificationMessageId(odd[0] as string, "run_step.completed", "hook")).toBe(ids[0]);
    // Different status or sink: a different id.
    expect(await notificationMessageId(odd[0] as string, "run_step.failed", "hook")).not.toBe(ids[0]);
    expect(await notificationMessageId(odd[0] as string, "run_step.completed", "other")).not.toBe(ids[0]);
  });
});
