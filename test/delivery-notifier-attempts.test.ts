import { DeleteItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import type { Delivery, DeliveryRef } from "../src/domain/delivery.js";
import { webCryptoHmacSha256 } from "../src/domain/hmac-sha256.js";
import { RunStepSchema } from "../src/domain/run-step-schema.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { createSinks } from "../src/notify/create-sinks.js";
import { DeliveryNotifier } from "../src/notify/delivery-notifier.js";
import { createLogger } from "../src/observability/logger.js";
import { createPromMetrics } from "../src/runtime/prom-metrics.js";
import type { DeliveryStore, SinkHealthStore } from "../src/store/delivery-store.js";
import { deliveryKey, keyOf, probeLeaseKey, shardLeaseKey, stepKey } from "../src/store/item-codec.js";
import { StoreUnavailableError } from "../src/store/store-errors.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import {
  api,
  deliver,
  deliveryFixture,
  deliveryOf,
  idsInShard,
  queueShardOf,
  rawItem,
  seedPending,
  sinkOf,
  stepIdOf,
  type TestClock,
  testClock,
  webhookSink,
} from "./support/deliveries.js";
import { makeStep } from "./support/run-steps.js";
import type { Reply, SinkServer } from "./support/sink-server.js";
import { stepTransition } from "./support/subject-notifications.js";
import type { createTestApp, TestApp } from "./support/test-app.js";

const fixture = deliveryFixture();
const secret = generateWebhookSecret();
/** Jitter in the middle: every retry is due exactly its scheduled delay later. */
const noJitter = () => 0.5;

interface SetUp {
  readonly name: string;
  readonly sink: SinkServer;
  readonly app: TestApp;
  readonly clock: TestClock;
  /** Every log line the app wrote, parsed, without its time. */
  readonly logged: () => Array<Record<string, unknown>>;
  readonly lines: string[];
}

/** One webhook sink (its own name, so no health is shared between tests) and an app on a test clock. */
async function setUp(
  name: string,
  env: Record<string, string> = {},
  options: Parameters<typeof createTestApp>[2] = {},
  clock = testClock(),
): Promise<SetUp> {
  const sink = await fixture.sink();
  const lines: string[] = [];
  const app = await fixture.app(
    {
      NOTIFY_SINKS: JSON.stringify([webhookSink(name, `${sink.url}/in`, secret)]),
      NOTIFY_TIMEOUT_MS: "2000",
      ...env,
    },
    { nowMs: clock.nowMs, random: noJitter, logLines: lines, logLevel: "info", ...options },
  );
  return { name, sink, app, clock, lines, logged: () => parsed(lines) };
}

function parsed(lines: readonly string[]): Array<Record<string, unknown>> {
  return lines.map((line) => {
    const { time: _time, ...rest } = JSON.parse(line) as Record<string, unknown>;
    return rest;
  });
}

const attemptLines = (lines: readonly string[]) => parsed(lines).filter((l) => l.msg === "delivery attempt");

/** The real store with some methods replaced: to inject another writer's interleaving or a failure. */
function overriding<T extends object>(real: T, overrides: Partial<T>): T {
  return new Proxy(real, {
    get(target, name) {
      if (name in overrides) return overrides[name as keyof T];
      const value: unknown = Reflect.get(target, name, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * Another DeliveryNotifier on the same table, sinks and clock as `s.app` (as another instance
 * would be), over the real stores, optionally wrapped; its log lines go to `lines`.
 */
async function instance(
  s: SetUp,
  lines: string[],
  stores: { deliveries?: DeliveryStore; health?: SinkHealthStore } = {},
): Promise<DeliveryNotifier> {
  const { config } = s.app;
  return new DeliveryNotifier({
    sinkConfigs: config.NOTIFY_SINKS,
    sinks: await createSinks(config.NOTIFY_SINKS, {
      timeoutMs: config.NOTIFY_TIMEOUT_MS,
      hmac: webCryptoHmacSha256,
      nowMs: s.clock.nowMs,
    }),
    deliveries: stores.deliveries ?? s.app.deliveries,
    health: stores.health ?? s.app.sinkHealth,
    logger: createLogger("debug", (line) => lines.push(line)),
    retryScheduleS: config.NOTIFY_RETRY_SCHEDULE,
    timeoutMs: config.NOTIFY_TIMEOUT_MS,
    sweepBudgetMs: config.SWEEP_BUDGET_MS ?? 15_000,
    sinkConcurrency: config.NOTIFY_CONCURRENCY,
    nowMs: s.clock.nowMs,
    random: noJitter,
  });
}

/** A completed step's transition, as the ingest path hands it to the notifier. */
function transition(id: string, sink: string, requestId: string) {
  const document = makeStep({ id, status: "completed" });
  v.parse(RunStepSchema, document);
  return stepTransition(document, [{ sink, event: "run_step.completed" }], { requestId });
}

const at = (clock: TestClock) => Math.floor(clock.now / 1000);

/** Five 503s in a row through prompt deliveries of `ids`: the sink turns failing, first probe 5 s later. */
async function makeFailing(s: SetUp, ids: readonly string[]): Promise<void> {
  s.sink.respond = () => ({ status: 503, body: "down" });
  await Promise.all(ids.map((id) => deliver(s.app, id, at(s.clock))));
  s.sink.respond = null;
  expect(await s.app.sinkHealth.get(s.name)).toMatchObject({
    state: "failing",
    consecutiveFailures: ids.length,
    nextProbeAtMs: s.clock.now + 5_000,
    probeLevel: 0,
  });
}

/** One sweep of the test's sink (without the outbox recovery, which has nothing to do here). */
const sweep = (s: SetUp) => s.app.notifier.sweepSink(s.name);

const stored = (app: TestApp, stepId: string, sink: string) =>
  app.deliveries.get({ kind: "run_step" as const, subjectId: stepId, sink });

describe("what each sweep attempt leaves behind (SPEC §6)", () => {
  it("one sweep, four outcomes: the report counts each once, each attempt is recorded and logged with its number, status, error and latency, and counted in the metrics", async () => {
    const s = await setUp(
      "tally",
      { NOTIFY_CONCURRENCY: "1", NOTIFY_RETRY_SCHEDULE: "60" },
      { metrics: createPromMetrics() },
    );
    const ids = idsInShard("tally", 2, 4);
    // Due one after another, so one lane sends them in this order; the 410 comes last.
    await Promise.all(ids.map((id, i) => seedPending(s.app, [id], "tally", s.clock.now - 4 + i)));
    const replies = new Map<string, Reply>([
      [ids[0] as string, { status: 200 }],
      [ids[1] as string, { status: 503, body: "down" }],
      [ids[2] as string, { status: 400, body: "bad field" }],
      [ids[3] as string, { status: 410, body: "gone" }],
    ]);
    // Each answer takes 250 ms on the test clock.
    s.sink.respond = (request) => {
      s.clock.advance(250);
      return replies.get(stepIdOf(request));
    };
    const t0 = s.clock.now;

    const report = await sweep(s);

    expect(report).toEqual({
      recovered: 0,
      attempts: 4,
      delivered: 1,
      retrying: 1,
      dead: 1,
      parked: 1,
      probes: 0,
      durationMs: 1_000,
      exhausted: false,
    });
    const line = { level: "info", msg: "delivery attempt", sink: "tally", event: "run_step.completed" };
    expect(attemptLines(s.lines)).toEqual([
      { ...line, step_id: ids[0], attempt: 1, outcome: "delivered", latency_ms: 250, status: 200 },
      {
        ...line,
        step_id: ids[1],
        attempt: 1,
        outcome: "retry",
        latency_ms: 250,
        status: 503,
        error: "HTTP 503: down",
      },
      {
        ...line,
        step_id: ids[2],
        attempt: 1,
        outcome: "dead",
        latency_ms: 250,
        status: 400,
        error: "HTTP 400: bad field",
      },
      {
        ...line,
        step_id: ids[3],
        attempt: 1,
        outcome: "parked",
        latency_ms: 250,
        status: 410,
        error: "HTTP 410: gone",
      },
    ]);
    expect(await stored(s.app, ids[1] as string, "tally")).toMatchObject({
      state: "pending",
      attempts: 1,
      lastError: "HTTP 503: down",
      nextAttemptMs: t0 + 500 + 60_000,
      log: [{ attempt: 1, at: t0 + 250, status: 503, latencyMs: 250, error: "HTTP 503: down" }],
    });
    expect(await stored(s.app, ids[2] as string, "tally")).toMatchObject({
      state: "dead",
      attempts: 1,
      lastError: "HTTP 400: bad field",
      nextAttemptMs: null,
    });
    expect((await deliveryOf(s.app, ids[3] as string, "tally")).state).toBe("parked");

    const metrics = await (await s.app.get("/metrics")).text();
    for (const outcome of ["delivered", "retry", "dead", "parked"]) {
      expect(metrics).toContain(`stepwatch_delivery_attempts_total{sink="tally",outcome="${outcome}"} 1\n`);
    }
    expect(metrics).toContain('stepwatch_delivery_attempt_duration_seconds_sum{sink="tally"} 1\n');
  });

  it("attempts in flight are counted while they are sent, and none once they have ended", async () => {
    const s = await setUp("inflight", { NOTIFY_CONCURRENCY: "2" });
    await seedPending(s.app, idsInShard("inflight", 4, 3), "inflight", s.clock.now);
    s.sink.fallback = { status: 200, delayMs: 60 };
    expect(s.app.notifier.attemptsInFlight).toBe(0);

    const sweeping = sweep(s);
    await s.sink.waitFor(2, 2_000);
    expect(s.app.notifier.attemptsInFlight).toBe(2);
    expect((await sweeping).delivered).toBe(3);
    expect(s.app.notifier.attemptsInFlight).toBe(0);
  });

  it("a step whose stored document is gone is not sent (dead with the reason); one today's schema would refuse is sent as stored", async () => {
    const s = await setUp("unrendered");
    const [missing, outdated, fine] = ["unrendered_missing", "unrendered_old", "unrendered_ok"];
    await seedPending(s.app, [missing, outdated, fine] as string[], "unrendered", s.clock.now);
    const { client, tableName } = fixture.store;
    // As its retention would remove it, and as a document no RunStepObject schema reads (a schema
    // tightened since it was stored): what its intent was written for is still what is sent.
    await client.send(
      new DeleteItemCommand({ TableName: tableName, Key: keyOf(stepKey(missing as string)) }),
    );
    const old = { id: outdated, object: "thread.run.step", run_id: "run_old", status: "completed" };
    await client.send(
      new UpdateItemCommand({
        TableName: tableName,
        Key: keyOf(stepKey(outdated as string)),
        UpdateExpression: "SET #d = :d",
        ExpressionAttributeNames: { "#d": TABLE_SCHEMA.attributes.document },
        ExpressionAttributeValues: { ":d": { S: JSON.stringify(old) } },
      }),
    );

    const report = await sweep(s);

    expect(report).toMatchObject({ attempts: 3, delivered: 2, dead: 1, retrying: 0, parked: 0 });
    expect(s.sink.received.map(stepIdOf).sort()).toEqual([fine, outdated].sort());
    const sent = s.sink.received.find((r) => stepIdOf(r) === outdated);
    expect(JSON.parse(sent?.body ?? "{}")).toMatchObject({ type: "run_step.completed", data: old });
    expect(await stored(s.app, missing as string, "unrendered")).toMatchObject({
      state: "dead",
      attempts: 0,
      lastError: "stored run step is missing",
      nextAttemptMs: null,
      log: [],
    });
    expect(
      attemptLines(s.lines)
        .map((l) => l.step_id)
        .sort(),
    ).toEqual([fine, outdated].sort());
  });

  it("a sink that throws instead of answering (stdout closed under the console sink): dead at once, a failure that does not count against the sink", async () => {
    const clock = testClock();
    const lines: string[] = [];
    const app = await fixture.app(
      { NOTIFY_SINKS: JSON.stringify([{ name: "stuck", type: "console" }]) },
      {
        nowMs: clock.nowMs,
        logLines: lines,
        logLevel: "info",
        writeLine: () => {
          throw new Error("stdout is closed");
        },
      },
    );
    const error = "could not send: Error: stdout is closed";

    await deliver(app, "stuck_1", at(clock));

    const delivery = await deliveryOf(app, "stuck_1", "stuck");
    expect(delivery).toMatchObject({ state: "dead", attempts: 1, last_error: error, next_attempt_at: null });
    expect(delivery.recent_attempts).toMatchObject([{ attempt: 1, status: null, error }]);
    expect(await sinkOf(app, "stuck")).toMatchObject({
      state: "healthy",
      consecutive_failures: 0,
      last_failure: { status: null, error },
    });
    expect(attemptLines(lines)).toEqual([
      {
        level: "info",
        msg: "delivery attempt",
        request_id: expect.any(String),
        sink: "stuck",
        step_id: "stuck_1",
        event: "run_step.completed",
        attempt: 1,
        outcome: "dead",
        latency_ms: 0,
        error,
      },
    ]);
  });
});

describe("sink health bookkeeping per attempt (SPEC §6)", () => {
  it("a healthy sink's success is written at most every 10 s per instance, unless a failure came between", async () => {
    const s = await setUp("quiet");
    const t0 = s.clock.now;
    const success = async () => (await s.app.sinkHealth.get("quiet")).lastSuccess;
    s.sink.scriptStatuses(200, 400, 200, 200, 503, 200);

    await deliver(s.app, "quiet_1", at(s.clock));
    expect(await success()).toEqual({ atMs: t0, status: 200 });
    // A 400 refuses one message; it says nothing about the sink, so the next success stays quiet.
    s.clock.advance(3_000);
    await deliver(s.app, "quiet_2", at(s.clock));
    s.clock.advance(6_999);
    await deliver(s.app, "quiet_3", at(s.clock));
    expect(await success()).toEqual({ atMs: t0, status: 200 });
    s.clock.advance(1);
    await deliver(s.app, "quiet_4", at(s.clock));
    expect(await success()).toEqual({ atMs: t0 + 10_000, status: 200 });
    // A 503 in between: the next success is written at once, and resets the count.
    s.clock.advance(1_000);
    await deliver(s.app, "quiet_5", at(s.clock));
    expect(await s.app.sinkHealth.get("quiet")).toMatchObject({ consecutiveFailures: 1 });
    s.clock.advance(1_000);
    await deliver(s.app, "quiet_6", at(s.clock));
    expect(await s.app.sinkHealth.get("quiet")).toMatchObject({
      state: "healthy",
      consecutiveFailures: 0,
      lastSuccess: { atMs: t0 + 12_000, status: 200 },
    });
  });

  it("failures another instance counted are reset by this instance's next success, however recent its last write", async () => {
    const clock = testClock();
    const a = await setUp("shared_count", {}, {}, clock);
    const b = await fixture.app(
      {
        NOTIFY_SINKS: JSON.stringify([webhookSink("shared_count", `${a.sink.url}/in`, secret)]),
        NOTIFY_TIMEOUT_MS: "2000",
      },
      { nowMs: clock.nowMs, random: noJitter },
    );
    const t0 = clock.now;
    a.sink.scriptStatuses(200, 503, 503, 503, 200);
    await deliver(a.app, "shared_count_a1", at(clock));
    for (let i = 1; i <= 3; i++) await deliver(b, `shared_count_b${i}`, at(clock));
    expect(await a.app.sinkHealth.get("shared_count")).toMatchObject({ consecutiveFailures: 3 });

    // Past A's health cache: A sees the three failures before it attempts.
    clock.advance(1_001);
    await deliver(a.app, "shared_count_a2", at(clock));
    expect(await a.app.sinkHealth.get("shared_count")).toMatchObject({
      state: "healthy",
      consecutiveFailures: 0,
      lastSuccess: { atMs: t0 + 1_001, status: 200 },
    });
  });

  it("a failure whose write lands after a later success is not counted in a row", async () => {
    const s = await setUp("late_failure");
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered = () => {};
    const heldBack = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const health = overriding<SinkHealthStore>(s.app.sinkHealth, {
      async recordFailure(...args) {
        entered();
        await held;
        return s.app.sinkHealth.recordFailure(...args);
      },
    });
    const notifier = await instance(s, [], { health });
    const t0 = s.clock.now;
    s.sink.scriptStatuses(200, 503, 200);

    await notifier.deliverPrompt(transition("late_failure_1", "late_failure", "req_1"));
    s.clock.advance(1_000);
    const failing = notifier.deliverPrompt(transition("late_failure_2", "late_failure", "req_2"));
    await heldBack;
    s.clock.advance(1_000);
    await notifier.deliverPrompt(transition("late_failure_3", "late_failure", "req_3"));
    release();
    await failing;

    expect(await s.app.sinkHealth.get("late_failure")).toMatchObject({
      state: "healthy",
      consecutiveFailures: 0,
      lastSuccess: { atMs: t0 + 2_000, status: 200 },
      lastFailure: { atMs: t0 + 1_000, status: 503, error: "HTTP 503" },
    });
  });

  it("a health write that fails is logged with the attempt's context; the attempt's outcome is still recorded", async () => {
    const s = await setUp("health_down");
    const health = overriding<SinkHealthStore>(s.app.sinkHealth, {
      recordSuccess: async () => {
        throw new StoreUnavailableError("DynamoDB updateSink: service unavailable");
      },
    });
    const lines: string[] = [];
    const notifier = await instance(s, lines, { health });

    await notifier.deliverPrompt(transition("health_down_1", "health_down", "req_hd"));

    expect(parsed(lines).filter((l) => l.level === "warn")).toEqual([
      {
        level: "warn",
        msg: "could not record sink health",
        request_id: "req_hd",
        sink: "health_down",
        error: "StoreUnavailableError: DynamoDB updateSink: service unavailable",
      },
    ]);
    expect(attemptLines(lines)).toMatchObject([{ step_id: "health_down_1", outcome: "delivered" }]);
    expect(await stored(s.app, "health_down_1", "health_down")).toMatchObject({
      state: "delivered",
      attempts: 1,
    });
  });
});

/** Another writer's change to a stored delivery (a sweeper whose lease ran out, an operator). */
async function rewrite(app: TestApp, ref: DeliveryRef, change: (d: Delivery) => Partial<Delivery>) {
  const current = await app.deliveries.get(ref);
  if (!current) throw new Error(`no delivery ${ref.subjectId}`);
  expect(await app.deliveries.replace({ ...current, ...change(current), version: current.version + 1 })).toBe(
    true,
  );
}

const fiveIn = (prefix: string, shard: number) => idsInShard(prefix, shard, 5);

describe("probes of a failing sink (SPEC §6: probed, not hammered)", () => {
  it("probed when due and not a millisecond before (no lease taken then); each failed probe doubles the wait from 5 s, up to 5 min", async () => {
    const s = await setUp("backoff", {
      NOTIFY_TIMEOUT_MS: "10000",
      NOTIFY_RETRY_SCHEDULE: "1,1,1,1,1,1,1,1",
    });
    await makeFailing(
      s,
      fiveIn("backoff", 0).map((id, i) => `${id}_${i}`),
    );
    s.sink.fallback = { status: 503, body: "still down" };
    const lease = () => rawItem(fixture.store, probeLeaseKey("backoff"));

    for (const [i, delayS] of [5, 10, 20, 40, 80, 160, 300, 300].entries()) {
      expect((await s.app.sinkHealth.get("backoff")).nextProbeAtMs).toBe(s.clock.now + delayS * 1000);
      s.clock.advance(delayS * 1000 - 1);
      const before = await lease();
      expect(await sweep(s)).toMatchObject({ attempts: 0, probes: 0 });
      expect(await lease()).toEqual(before);
      s.clock.advance(1);
      expect(await sweep(s)).toMatchObject({ attempts: 1, probes: 1, retrying: 1 });
      expect(s.sink.received).toHaveLength(5 + i + 1);
      expect(await s.app.sinkHealth.get("backoff")).toMatchObject({
        state: "failing",
        consecutiveFailures: 5 + i + 1,
        lastFailure: { atMs: s.clock.now, status: 503, error: "HTTP 503: still down" },
        probeLevel: i + 1,
      });
    }
    const lines = attemptLines(s.lines);
    expect(lines.slice(0, 5).filter((l) => "probe" in l)).toEqual([]);
    expect(lines.slice(5)).toHaveLength(8);
    for (const line of lines.slice(5)) {
      expect(line).toEqual({
        level: "info",
        msg: "delivery attempt",
        sink: "backoff",
        step_id: expect.any(String),
        event: "run_step.completed",
        attempt: expect.any(Number),
        outcome: "retry",
        latency_ms: 0,
        status: 503,
        error: "HTTP 503: still down",
        probe: true,
      });
    }
  });

  it("a probe leaves a queue shard another sweeper holds alone; once it is free, one good probe heals the sink and the same sweep drains that shard", async () => {
    const s = await setUp("healing", { NOTIFY_RETRY_SCHEDULE: "1,1" });
    await makeFailing(s, fiveIn("healing", 5));
    const key = shardLeaseKey("healing", 5);
    const version = await s.app.deliveries.acquireLease(key, s.clock.now + 60_000, s.clock.now);
    s.clock.advance(5_000);

    expect(await sweep(s)).toMatchObject({ attempts: 0, probes: 0 });
    expect(s.sink.received).toHaveLength(5);
    expect(await s.app.sinkHealth.get("healing")).toMatchObject({
      state: "failing",
      nextProbeAtMs: s.clock.now,
    });

    await s.app.deliveries.releaseLease(key, version as number);
    expect(await sweep(s)).toMatchObject({ attempts: 5, probes: 1, delivered: 5, retrying: 0 });
    expect(await s.app.sinkHealth.get("healing")).toMatchObject({
      state: "healthy",
      consecutiveFailures: 0,
      nextProbeAtMs: null,
      probeLevel: 0,
      lastSuccess: { atMs: s.clock.now, status: 200 },
    });
  });

  it("no probe once the sweep's budget is spent, even to the millisecond", async () => {
    const s = await setUp("late_probe", { SWEEP_BUDGET_MS: "1000", NOTIFY_RETRY_SCHEDULE: "1" });
    await makeFailing(s, fiveIn("late_probe", 1));
    s.clock.advance(5_000);
    // A health read that takes the whole budget.
    const health = overriding<SinkHealthStore>(s.app.sinkHealth, {
      get: async (name) => {
        s.clock.advance(1_000);
        return s.app.sinkHealth.get(name);
      },
    });
    const notifier = await instance(s, [], { health });

    expect(await notifier.sweepSink("late_probe")).toMatchObject({ attempts: 0, probes: 0, exhausted: true });
    expect(s.sink.received).toHaveLength(5);
  });

  it("with the default 10 s time-out, a probe in flight keeps every other instance from probing", async () => {
    const s = await setUp("lonely", { NOTIFY_TIMEOUT_MS: "10000", NOTIFY_RETRY_SCHEDULE: "1" });
    await makeFailing(s, fiveIn("lonely", 2));
    const other = await instance(s, []);
    s.clock.advance(5_000);
    s.sink.respond = () => ({ status: 200, hang: true });

    const probing = sweep(s);
    await s.sink.waitFor(6, 2_000);
    const second = other.sweepSink("lonely");
    const secondEnded = await Promise.race([
      second.then(() => true),
      s.sink.waitFor(7, 1_500).then(
        () => false,
        () => false,
      ),
    ]);
    // Ends the hanging probe now (a network error) rather than after its 10 s.
    await s.sink.close();
    await probing;

    expect(secondEnded).toBe(true);
    expect(await second).toMatchObject({ attempts: 0, probes: 0 });
    expect(s.sink.received).toHaveLength(6);
  });

  it("health is read again under the probe lease: another instance's probe meanwhile pushed the next one back, so nothing is sent", async () => {
    const s = await setUp("raced_probe", { NOTIFY_RETRY_SCHEDULE: "1,1" });
    await makeFailing(s, fiveIn("raced_probe", 3));
    s.clock.advance(5_000);
    s.sink.fallback = { status: 503, body: "still down" };
    let raced = false;
    const deliveries = overriding<DeliveryStore>(s.app.deliveries, {
      async acquireLease(key, untilMs, nowMs) {
        if (key === probeLeaseKey("raced_probe") && !raced) {
          raced = true;
          expect((await sweep(s)).probes).toBe(1);
        }
        return s.app.deliveries.acquireLease(key, untilMs, nowMs);
      },
    });
    const notifier = await instance(s, [], { deliveries });

    expect(await notifier.sweepSink("raced_probe")).toMatchObject({ attempts: 0, probes: 0 });
    expect(raced).toBe(true);
    expect(s.sink.received).toHaveLength(6);
    expect(await s.app.sinkHealth.get("raced_probe")).toMatchObject({
      state: "failing",
      nextProbeAtMs: s.clock.now + 10_000,
      probeLevel: 1,
    });
  });

  it("... or an operator enabled the sink meanwhile: no probe, the backlog drains at once", async () => {
    const s = await setUp("enabled_meanwhile", { NOTIFY_RETRY_SCHEDULE: "1,1" });
    await makeFailing(s, fiveIn("enabled_meanwhile", 4));
    s.clock.advance(5_000);
    let raced = false;
    const deliveries = overriding<DeliveryStore>(s.app.deliveries, {
      async acquireLease(key, untilMs, nowMs) {
        if (key === probeLeaseKey("enabled_meanwhile") && !raced) {
          raced = true;
          expect((await api(s.app, "POST", "/v1/sinks/enabled_meanwhile/enable")).status).toBe(200);
        }
        return s.app.deliveries.acquireLease(key, untilMs, nowMs);
      },
    });
    const lines: string[] = [];
    const notifier = await instance(s, lines, { deliveries });

    expect(await notifier.sweepSink("enabled_meanwhile")).toMatchObject({
      attempts: 5,
      delivered: 5,
      probes: 0,
    });
    expect(raced).toBe(true);
    expect(attemptLines(lines).filter((l) => "probe" in l)).toEqual([]);
  });

  for (const [what, change] of [
    [
      "delivered by a sweeper whose lease had run out",
      async (app: TestApp, ref: DeliveryRef) =>
        rewrite(app, ref, (d) => ({ state: "delivered", attempts: d.attempts + 1, nextAttemptMs: null })),
    ],
    [
      "removed (its retention ran out)",
      async (_app: TestApp, ref: DeliveryRef) => {
        await fixture.store.client.send(
          new DeleteItemCommand({
            TableName: fixture.store.tableName,
            Key: keyOf(deliveryKey(ref)),
          }),
        );
      },
    ],
  ] as const) {
    it(`a probe whose delivery was ${what} after the index showed it due probes another one`, async () => {
      const name = what.startsWith("delivered") ? "probe_taken" : "probe_removed";
      const s = await setUp(name, { NOTIFY_RETRY_SCHEDULE: "1,1" });
      await makeFailing(s, [...idsInShard(name, 1, 3), ...idsInShard(name, 6, 2)]);
      s.clock.advance(5_000);
      let changed: string | undefined;
      const deliveries = overriding<DeliveryStore>(s.app.deliveries, {
        async getMany(refs) {
          const [ref] = refs;
          if (changed === undefined && ref) {
            changed = ref.subjectId;
            await change(s.app, ref);
          }
          return s.app.deliveries.getMany(refs);
        },
      });
      const lines: string[] = [];
      const notifier = await instance(s, lines, { deliveries });

      expect(await notifier.sweepSink(name)).toMatchObject({ attempts: 4, probes: 1, delivered: 4 });
      const sent = s.sink.received.slice(5).map(stepIdOf);
      expect(sent).toHaveLength(4);
      expect(sent).not.toContain(changed);
      expect(queueShardOf(sent[0] as string)).not.toBe(queueShardOf(changed as string));
      expect(parsed(lines).filter((l) => l.level !== "info")).toEqual([]);
    });
  }
});

describe("where a sweep stops (SPEC §6: until nothing is due or the budget is spent)", () => {
  it("at its runtime's attempts per sweep, exactly", async () => {
    const s = await setUp("capped", { NOTIFY_CONCURRENCY: "4" }, { maxAttemptsPerSweep: 2 });
    await seedPending(s.app, fiveIn("capped", 0), "capped", s.clock.now);

    expect(await sweep(s)).toMatchObject({ attempts: 2, delivered: 2, exhausted: true });
    expect(s.sink.received).toHaveLength(2);
    expect(await sweep(s)).toMatchObject({ attempts: 2, exhausted: true });
    expect(await sweep(s)).toMatchObject({ attempts: 1, exhausted: false });
    expect(s.sink.received).toHaveLength(5);
  });

  it("at SWEEP_BUDGET_MS, exactly: no attempt starts once the budget is spent", async () => {
    const s = await setUp("timed", { NOTIFY_CONCURRENCY: "1", SWEEP_BUDGET_MS: "1000" });
    await seedPending(s.app, idsInShard("timed", 7, 4), "timed", s.clock.now);
    s.sink.respond = () => {
      s.clock.advance(500);
      return undefined;
    };

    expect(await sweep(s)).toMatchObject({ attempts: 2, delivered: 2, durationMs: 1_000, exhausted: true });
    expect(s.sink.received).toHaveLength(2);
  });

  it("once the notifier is closing: no attempt at all", async () => {
    const s = await setUp("closing");
    await seedPending(s.app, ["closing_1", "closing_2"], "closing", s.clock.now);
    s.app.notifier.close();

    expect(await sweep(s)).toMatchObject({ attempts: 0 });
    expect(s.sink.received).toHaveLength(0);
  });

  it("the index only says what may be due: a delivery another sweeper delivered or rescheduled meanwhile is not attempted", async () => {
    const s = await setUp("reread");
    const [done, later, due] = idsInShard("reread", 3, 3) as [string, string, string];
    await seedPending(s.app, [done, later, due], "reread", s.clock.now);
    let raced = false;
    const deliveries = overriding<DeliveryStore>(s.app.deliveries, {
      async getMany(refs) {
        if (!raced) {
          raced = true;
          await rewrite(s.app, { kind: "run_step" as const, subjectId: done, sink: "reread" }, () => ({
            state: "delivered",
            attempts: 1,
            nextAttemptMs: null,
          }));
          await rewrite(s.app, { kind: "run_step" as const, subjectId: later, sink: "reread" }, () => ({
            attempts: 1,
            lastError: "HTTP 503",
            nextAttemptMs: s.clock.now + 30_000,
          }));
        }
        return s.app.deliveries.getMany(refs);
      },
    });
    const notifier = await instance(s, [], { deliveries });

    expect(await notifier.sweepSink("reread")).toMatchObject({ attempts: 1, delivered: 1 });
    expect(s.sink.received.map(stepIdOf)).toEqual([due]);
  });

  it("an outcome is not written over a change made while the attempt was in flight; the log says which delivery", async () => {
    const s = await setUp("overtaken");
    await seedPending(s.app, ["overtaken_1"], "overtaken", s.clock.now);
    const deliveries = overriding<DeliveryStore>(s.app.deliveries, {
      async subjects(refs) {
        const documents = await s.app.deliveries.subjects(refs);
        await rewrite(
          s.app,
          { kind: "run_step" as const, subjectId: "overtaken_1", sink: "overtaken" },
          () => ({
            state: "dead",
            lastError: "theirs",
            nextAttemptMs: null,
          }),
        );
        return documents;
      },
    });
    const lines: string[] = [];
    const notifier = await instance(s, lines, { deliveries });

    expect(await notifier.sweepSink("overtaken")).toMatchObject({ attempts: 1, delivered: 1 });
    expect(parsed(lines).filter((l) => l.level === "warn")).toEqual([
      {
        level: "warn",
        msg: "delivery changed while it was attempted",
        step_id: "overtaken_1",
        sink: "overtaken",
      },
    ]);
    expect(await stored(s.app, "overtaken_1", "overtaken")).toMatchObject({
      state: "dead",
      lastError: "theirs",
    });
  });
});
