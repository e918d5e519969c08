import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { newDelivery } from "../src/domain/delivery.js";
import { webCryptoHmacSha256 } from "../src/domain/hmac-sha256.js";
import { RunStepSchema } from "../src/domain/run-step-schema.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { createSinks } from "../src/notify/create-sinks.js";
import { DeliveryNotifier } from "../src/notify/delivery-notifier.js";
import type { AppliedTransition } from "../src/notify/notifier.js";
import { createLogger } from "../src/observability/logger.js";
import type { DeliveryStore, SinkHealthStore } from "../src/store/delivery-store.js";
import { probeLeaseKey } from "../src/store/item-codec.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import {
  applyWithoutNotifier,
  deliveryFixture,
  idsInShard,
  NO_WORK,
  queueShardOf,
  seedPending,
  sleep,
  stepIdOf,
  type TestClock,
  testClock,
  webhookSink,
} from "./support/deliveries.js";
import { overriding } from "./support/overriding.js";
import { makeStep } from "./support/run-steps.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";
import { stepNotification, stepTransition } from "./support/subject-notifications.js";
import type { TestApp } from "./support/test-app.js";

// The notifier itself (src/notify/delivery-notifier.ts), wired to the file's real dynalite and real
// loopback sinks, on a test clock: prompt delivery (SPEC §6: "delivered concurrently to every
// matching sink ... and acknowledged afterwards"), shutdown, the sink-health cache, the sweep's
// report and its budgets, and what it logs when the store fails under it.

const fixture = deliveryFixture();
const secret = generateWebhookSecret();
const TIMEOUT_MS = 2_000;
const SWEEP_BUDGET_MS = 1_000;
/** When the outbox recovery may record a transition nobody recorded (README: prompt lease + 60 s). */
const RECOVERY_AFTER_MS = 2 * TIMEOUT_MS + 5_000 + 60_000;

interface Rig {
  readonly app: TestApp;
  readonly server: SinkServer;
  readonly clock: TestClock;
  /** The notifier's log lines, parsed, without their time. */
  readonly logged: () => Array<Record<string, unknown>>;
  readonly notifier: DeliveryNotifier;
}

interface RigOptions {
  readonly env?: Record<string, string>;
  readonly server?: SinkServer;
  readonly maxAttemptsPerSweep?: number;
  readonly deliveries?: (real: DeliveryStore, rig: () => Rig) => Partial<DeliveryStore>;
  readonly health?: (real: SinkHealthStore) => Partial<SinkHealthStore>;
  /** Where the rig's clock starts (now by default). */
  readonly startMs?: number;
}

/**
 * A notifier for webhook sinks `names` (each at `/in/<name>` of one loopback server) on the file's
 * store, built as createStepwatch builds it but over stores the test may wrap. `app` shares the store
 * and the clock, for seeding and reading back.
 */
async function rig(names: readonly string[], options: RigOptions = {}): Promise<Rig> {
  const server = options.server ?? (await fixture.sink());
  const clock = testClock(options.startMs);
  const app = await fixture.app(
    {
      NOTIFY_SINKS: JSON.stringify(
        names.map((name) => webhookSink(name, `${server.url}/in/${name}`, secret)),
      ),
      NOTIFY_TIMEOUT_MS: String(TIMEOUT_MS),
      SWEEP_BUDGET_MS: String(SWEEP_BUDGET_MS),
      NOTIFY_RETRY_SCHEDULE: "30",
      ...options.env,
    },
    { nowMs: clock.nowMs },
  );
  const lines: string[] = [];
  let built: Rig | undefined;
  const self = () => {
    if (!built) throw new Error("rig not built yet");
    return built;
  };
  const config = app.config;
  const notifier = new DeliveryNotifier({
    sinkConfigs: config.NOTIFY_SINKS,
    sinks: await createSinks(config.NOTIFY_SINKS, {
      timeoutMs: config.NOTIFY_TIMEOUT_MS,
      hmac: webCryptoHmacSha256,
      nowMs: clock.nowMs,
    }),
    deliveries: options.deliveries
      ? overriding(app.deliveries as DeliveryStore, options.deliveries(app.deliveries, self))
      : app.deliveries,
    health: options.health
      ? overriding(app.sinkHealth as SinkHealthStore, options.health(app.sinkHealth))
      : app.sinkHealth,
    logger: createLogger("debug", (line) => lines.push(line)),
    retryScheduleS: config.NOTIFY_RETRY_SCHEDULE,
    timeoutMs: config.NOTIFY_TIMEOUT_MS,
    sweepBudgetMs: SWEEP_BUDGET_MS,
    sinkConcurrency: config.NOTIFY_CONCURRENCY,
    ...(options.maxAttemptsPerSweep ? { maxAttemptsPerSweep: options.maxAttemptsPerSweep } : {}),
    nowMs: clock.nowMs,
    random: () => 0.5,
  });
  const logged = () =>
    lines.map((line) => {
      const { time: _time, ...rest } = JSON.parse(line) as Record<string, unknown>;
      return rest;
    });
  built = { app, server, clock, logged, notifier };
  return built;
}

/** A completed step's transition owing `sinks`, as the ingest path hands it over. */
function transition(id: string, sinks: readonly string[]): AppliedTransition {
  const document = makeStep({ id, status: "completed" });
  v.parse(RunStepSchema, document);
  return stepTransition(
    document,
    sinks.map((sink) => ({ sink, event: "run_step.completed" })),
    { requestId: `req_${id}` },
  );
}

/** The step id of the first request a sink server received. */
function firstStepOf(server: SinkServer): string {
  const [request] = server.received;
  if (!request) throw new Error("no request yet");
  return stepIdOf(request);
}

const stored = (app: TestApp, stepId: string, sink: string) =>
  app.deliveries.get({ kind: "run_step" as const, subjectId: stepId, sink });

describe("prompt delivery (SPEC §6: delivered at once, then acknowledged)", () => {
  it("a healthy sink gets the notification at once; the attempt is counted in flight while it is sent, logged once with the request id, and recorded delivered", async () => {
    const { app, server, clock, logged, notifier } = await rig(["p_ok"]);
    const inFlight: number[] = [];
    server.respond = () => {
      inFlight.push(notifier.attemptsInFlight);
      clock.advance(25);
      return undefined;
    };
    expect(notifier.attemptsInFlight).toBe(0);

    await notifier.deliverPrompt(transition("p_ok_1", ["p_ok"]));

    expect(inFlight).toEqual([1]);
    expect(notifier.attemptsInFlight).toBe(0);
    expect(server.received.map(stepIdOf)).toEqual(["p_ok_1"]);
    expect(await stored(app, "p_ok_1", "p_ok")).toMatchObject({ state: "delivered", attempts: 1 });
    expect(logged()).toEqual([
      {
        level: "info",
        msg: "delivery attempt",
        request_id: "req_p_ok_1",
        sink: "p_ok",
        step_id: "p_ok_1",
        event: "run_step.completed",
        attempt: 1,
        outcome: "delivered",
        latency_ms: 25,
        status: 200,
      },
    ]);
  });

  it("a disabled or failing sink is not attempted: the delivery is recorded pending for the sweeps (parked / the probe)", async () => {
    const { app, server, clock, notifier } = await rig(["p_off", "p_down"]);
    await app.sinkHealth.disable("p_off", "disabled by an operator");
    for (let i = 0; i < 5; i++) {
      await app.sinkHealth.recordFailure(
        "p_down",
        { status: 503, error: "HTTP 503", atMs: clock.now },
        { failingAfter: 5, nextProbeAtMs: clock.now + 5_000, probe: false, counts: true },
      );
    }
    expect((await app.sinkHealth.get("p_down")).state).toBe("failing");

    await notifier.deliverPrompt(transition("p_off_1", ["p_off", "p_down"]));

    expect(server.received).toEqual([]);
    for (const sink of ["p_off", "p_down"]) {
      expect(await stored(app, "p_off_1", sink)).toMatchObject({
        state: "pending",
        attempts: 0,
        nextAttemptMs: clock.now,
      });
    }
  });

  it("a delivery owed to a sink this process has no longer configured is recorded pending, not attempted", async () => {
    const { app, server, clock, logged, notifier } = await rig(["p_known"]);

    await notifier.deliverPrompt(transition("p_gone_1", ["p_unconfigured"]));

    expect(server.received).toEqual([]);
    expect(await stored(app, "p_gone_1", "p_unconfigured")).toMatchObject({
      state: "pending",
      attempts: 0,
      nextAttemptMs: clock.now,
    });
    expect(logged()).toEqual([]);
  });

  it("a 410 on the attempt ahead in the lane parks the deliveries queued behind it instead of sending them", async () => {
    const { app, server, notifier } = await rig(["p_gone"], { env: { NOTIFY_CONCURRENCY: "1" } });
    server.script({ status: 410, body: "gone" });
    const ids = ["p_gone_1", "p_gone_2", "p_gone_3"];

    await Promise.all(ids.map((id) => notifier.deliverPrompt(transition(id, ["p_gone"]))));

    expect(server.received).toHaveLength(1);
    const first = firstStepOf(server);
    expect((await app.sinkHealth.get("p_gone")).state).toBe("disabled");
    for (const id of ids) {
      expect(await stored(app, id, "p_gone")).toMatchObject(
        id === first ? { state: "pending", attempts: 1 } : { state: "pending", attempts: 0 },
      );
    }
  });

  it("close(): the attempt in flight finishes, prompt deliveries still waiting for the lane are recorded pending, and drain() waits for all of it", async () => {
    const { app, server, logged, notifier } = await rig(["p_close"], { env: { NOTIFY_CONCURRENCY: "1" } });
    // The shutdown begins while the first request is being answered.
    server.respond = () => {
      notifier.close();
      return undefined;
    };
    const ids = ["p_close_1", "p_close_2", "p_close_3"];
    for (const id of ids) void notifier.deliverPrompt(transition(id, ["p_close"]));

    await notifier.drain();

    expect(server.received).toHaveLength(1);
    const first = firstStepOf(server);
    const states = await Promise.all(ids.map((id) => stored(app, id, "p_close")));
    expect(states.map((d) => (d ? `${d.subjectId}:${d.state}/${d.attempts}` : null)).sort()).toEqual(
      ids.map((id) => (id === first ? `${id}:delivered/1` : `${id}:pending/0`)).sort(),
    );
    expect(logged().map((line) => line.msg)).toEqual(["delivery attempt"]);
  });

  it("a burst beyond 1,000 waiting for one sink's lane is not queued in memory: the next one is recorded pending at once (README)", async () => {
    // Its own server: the hanging first request ends when the server closes.
    const server = await startSinkServer();
    const { app, notifier } = await rig(["p_full"], {
      server,
      env: { NOTIFY_CONCURRENCY: "1", NOTIFY_TIMEOUT_MS: "10000" },
      // The 1,000 queued ones are recorded at the shutdown below; a refused write keeps that quick.
      deliveries: (real) => ({
        create: (delivery) =>
          delivery.subjectId.startsWith("p_full_q")
            ? Promise.reject(new Error("throttled"))
            : real.create(delivery),
      }),
    });
    try {
      server.fallback = { status: 200, hang: true };
      void notifier.deliverPrompt(transition("p_full_first", ["p_full"]));
      await server.waitFor(1, 5_000);
      for (let i = 0; i < 1_000; i++) void notifier.deliverPrompt(transition(`p_full_q${i}`, ["p_full"]));
      // Each waits a turn, then for the cached health, then joins the lane.
      await sleep(0);
      await sleep(0);

      const over = notifier.deliverPrompt(transition("p_full_over", ["p_full"]));
      const settled = await Promise.race([
        over.then(() => "recorded"),
        sleep(1_000).then(() => "still queued"),
      ]);

      expect(settled).toBe("recorded");
      expect(await stored(app, "p_full_over", "p_full")).toMatchObject({ state: "pending", attempts: 0 });
      expect(server.received).toHaveLength(1);
    } finally {
      notifier.close();
      await server.close();
      await notifier.drain();
    }
    expect(server.received).toHaveLength(1);
  });

  it("a sink an operator disabled while its lane is busy: the next prompt delivery is recorded at once, not queued behind the busy attempt", async () => {
    // Its own server: the hanging first request ends when the server closes.
    const server = await startSinkServer();
    const { app, notifier } = await rig(["p_busy"], {
      server,
      env: { NOTIFY_CONCURRENCY: "1", NOTIFY_TIMEOUT_MS: "10000" },
    });
    try {
      server.fallback = { status: 200, hang: true };
      void notifier.deliverPrompt(transition("p_busy_first", ["p_busy"]));
      await server.waitFor(1, 5_000);
      // What POST /v1/sinks/{name}/disable does.
      notifier.rememberHealth(await app.sinkHealth.disable("p_busy", "disabled by an operator"));

      const next = notifier.deliverPrompt(transition("p_busy_next", ["p_busy"]));
      const settled = await Promise.race([
        next.then(() => "recorded"),
        sleep(1_000).then(() => "still queued"),
      ]);

      expect(settled).toBe("recorded");
      expect(await stored(app, "p_busy_next", "p_busy")).toMatchObject({ state: "pending", attempts: 0 });
    } finally {
      notifier.close();
      await server.close();
      await notifier.drain();
    }
    expect(server.received.map(stepIdOf)).toEqual(["p_busy_first"]);
  });

  it("an attempt so slow that the outbox recovery recorded the delivery meanwhile: the recovery's record stands, with a warning", async () => {
    const recovered: number[] = [];
    const { app, server, clock, logged, notifier } = await rig(["p_slow"], {
      deliveries: (real, self) => ({
        async create(delivery) {
          if (delivery.attempts > 0) {
            // The prompt lease and the clock skew allowance pass before its outcome is written.
            self().clock.advance(RECOVERY_AFTER_MS);
            recovered.push(await self().notifier.recover());
          }
          return real.create(delivery);
        },
      }),
    });
    await applyWithoutNotifier(app, ["p_slow_1"], ["p_slow"], Math.floor(clock.now / 1000));

    await notifier.deliverPrompt(transition("p_slow_1", ["p_slow"]));

    expect(recovered).toEqual([1]);
    expect(server.received).toHaveLength(1);
    expect(await stored(app, "p_slow_1", "p_slow")).toMatchObject({ state: "pending", attempts: 0 });
    expect(logged().filter((line) => line.level !== "info")).toEqual([
      {
        level: "warn",
        msg: "delivery was recorded by a sweeper meanwhile",
        request_id: "req_p_slow_1",
        step_id: "p_slow_1",
        sink: "p_slow",
      },
    ]);
    // At least once: the next sweep sends it again (same webhook-id).
    expect(await notifier.sweepSink("p_slow")).toEqual({ ...NO_WORK, attempts: 1, delivered: 1 });
    expect(server.received).toHaveLength(2);
  });

  it("an outcome the store refuses to take is logged as an error; the outbox recovery records it after the prompt lease and a sweep sends it again", async () => {
    let refused = 0;
    const { app, server, clock, logged, notifier } = await rig(["p_err"], {
      deliveries: (real) => ({
        create: (delivery) =>
          delivery.attempts > 0 && refused++ === 0
            ? Promise.reject(new Error("ProvisionedThroughputExceededException"))
            : real.create(delivery),
      }),
    });
    await applyWithoutNotifier(app, ["p_err_1"], ["p_err"], Math.floor(clock.now / 1000));

    await expect(notifier.deliverPrompt(transition("p_err_1", ["p_err"]))).resolves.toBeUndefined();

    expect(server.received).toHaveLength(1);
    expect(await stored(app, "p_err_1", "p_err")).toBeNull();
    expect(logged().filter((line) => line.level !== "info")).toEqual([
      {
        level: "error",
        msg: "could not record delivery attempt",
        request_id: "req_p_err_1",
        step_id: "p_err_1",
        sink: "p_err",
        error: "Error: ProvisionedThroughputExceededException",
      },
    ]);
    clock.advance(RECOVERY_AFTER_MS + 1_000);
    expect(await notifier.sweep()).toEqual({ ...NO_WORK, recovered: 1, attempts: 1, delivered: 1 });
    expect(server.received).toHaveLength(2);
    expect(await stored(app, "p_err_1", "p_err")).toMatchObject({ state: "delivered", attempts: 1 });
  });
});

describe("outbox recovery on instances whose clocks disagree (README: 60 s allowed for)", () => {
  it("one whose clock is behind the instance that recovered last finds nothing there yet, without an error", async () => {
    const behind = await rig(["r_skew"]);
    const appliedAt = behind.clock.now;
    await applyWithoutNotifier(behind.app, ["r_skew_1"], ["r_skew"], Math.floor(appliedAt / 1000));
    // Its clock is 30 s ahead of the other's.
    const ahead = await rig(["r_skew"], { startMs: appliedAt + RECOVERY_AFTER_MS + 29_999 });
    expect(await ahead.notifier.recover()).toBe(1);

    behind.clock.now = appliedAt + RECOVERY_AFTER_MS - 1;
    expect(await behind.notifier.recover()).toBe(0);
    expect(behind.logged().filter((line) => line.level !== "info")).toEqual([]);
  });
});

describe("sink health as the notifier sees it", () => {
  it("is trusted for 1 s after it was read: a change made elsewhere shows from 1 s + 1 ms", async () => {
    const { app, clock, notifier } = await rig(["h_cache"]);
    expect((await notifier.sinkHealth("h_cache")).state).toBe("healthy");
    // Another instance's operator disables it.
    await app.sinkHealth.disable("h_cache", "disabled by an operator");

    clock.advance(1_000);
    expect((await notifier.sinkHealth("h_cache")).state).toBe("healthy");
    clock.advance(1);
    expect(await notifier.sinkHealth("h_cache")).toMatchObject({
      state: "disabled",
      disabledReason: "disabled by an operator",
    });
  });

  it("a burst shares one read of the store", async () => {
    let reads = 0;
    const { clock, notifier } = await rig(["h_shared"], {
      health: (real) => ({
        get: (sink) => {
          reads++;
          return real.get(sink);
        },
      }),
    });

    const burst = await Promise.all(Array.from({ length: 5 }, () => notifier.sinkHealth("h_shared")));

    expect(reads).toBe(1);
    expect(new Set(burst.map((health) => health.state))).toEqual(new Set(["healthy"]));
    clock.advance(1_001);
    await Promise.all([notifier.sinkHealth("h_shared"), notifier.sinkHealth("h_shared")]);
    expect(reads).toBe(2);
  });
});

describe("an operator's attempt (retry, resend) and test notification", () => {
  async function failingRig(name: string) {
    const r = await rig([name]);
    for (let i = 0; i < 5; i++) {
      await r.app.sinkHealth.recordFailure(
        name,
        { status: 503, error: "HTTP 503", atMs: r.clock.now },
        { failingAfter: 5, nextProbeAtMs: r.clock.now + 5_000, probe: false, counts: true },
      );
    }
    const before = await r.app.sinkHealth.get(name);
    expect(before).toMatchObject({ state: "failing", nextProbeAtMs: r.clock.now + 5_000, probeLevel: 0 });
    return { ...r, before };
  }

  it("a delivery to a sink no longer configured is dead at once without a request; a stored step is sent as stored", async () => {
    const { server, clock, notifier } = await rig(["o_dead"]);
    const document = makeStep({ id: "o_dead_1", status: "completed" });
    const owed = (sink: string) =>
      newDelivery(
        { sink, event: "run_step.completed" },
        { kind: "run_step", id: "o_dead_1", runId: "run_abc123" },
        clock.now,
      );

    expect(await notifier.attemptNow(owed("o_unconfigured"), { document, stalledAtMs: null })).toEqual({
      ...owed("o_unconfigured"),
      state: "dead",
      lastError: "sink is no longer configured",
      nextAttemptMs: null,
    });
    expect(server.received).toEqual([]);
    // Not validated again: what the intent was written for is sent, whatever the schema says today.
    const outdated = { id: "o_dead_1", object: "thread.run.step", status: "completed" };
    expect(
      await notifier.attemptNow(owed("o_dead"), { document: outdated, stalledAtMs: null }),
    ).toMatchObject({
      state: "delivered",
      attempts: 1,
    });
    expect(server.received.map((r) => JSON.parse(r.body).data)).toEqual([outdated]);
  });

  it("a retry of a failing sink's delivery that fails again is not its probe: the next probe stays where it was", async () => {
    const { app, server, clock, logged, notifier, before } = await failingRig("o_retry");
    server.script({ status: 503, body: "still down" });
    const document = makeStep({ id: "o_retry_1", status: "completed" });
    const delivery = newDelivery(
      { sink: "o_retry", event: "run_step.completed" },
      { kind: "run_step", id: "o_retry_1", runId: "run_abc123" },
      clock.now,
    );

    const after = await notifier.attemptNow(
      delivery,
      { document, stalledAtMs: null },
      { request_id: "req_op" },
    );

    expect(after).toMatchObject({ state: "pending", attempts: 1, lastError: "HTTP 503: still down" });
    expect(await app.sinkHealth.get("o_retry")).toMatchObject({
      state: "failing",
      nextProbeAtMs: before.nextProbeAtMs,
      probeLevel: 0,
    });
    expect(logged()).toEqual([
      {
        level: "info",
        msg: "delivery attempt",
        request_id: "req_op",
        sink: "o_retry",
        step_id: "o_retry_1",
        event: "run_step.completed",
        attempt: 1,
        outcome: "retry",
        latency_ms: 0,
        status: 503,
        error: "HTTP 503: still down",
      },
    ]);
    expect(server.received).toHaveLength(1);
  });

  it("a test notification reports the sink's answer and its latency; one that fails does not push a failing sink's probe back; an unknown sink gets none", async () => {
    const { app, server, clock, notifier, before } = await failingRig("o_test");
    const step = v.parse(RunStepSchema, makeStep({ id: "o_test_1", status: "completed" }));
    const notification = stepNotification("run_step.completed", { ...step }, { test: true });
    server.respond = () => {
      clock.advance(37);
      return { status: 502, body: "bad gateway" };
    };

    expect(await notifier.sendTest("o_test", notification)).toEqual({
      result: { ok: false, retryable: true, status: 502, error: "HTTP 502: bad gateway" },
      latencyMs: 37,
    });
    expect(await app.sinkHealth.get("o_test")).toMatchObject({
      state: "failing",
      nextProbeAtMs: before.nextProbeAtMs,
      probeLevel: 0,
    });
    expect(await notifier.sendTest("o_unconfigured", notification)).toBeNull();
    expect(server.received).toHaveLength(1);
  });
});

describe("a sweep's report (SPEC §6: every attempt counts once, under exactly one outcome)", () => {
  it("counts each outcome, and how long the sweep took", async () => {
    const { app, server, clock, notifier } = await rig(["s_mix", "s_mix_gone"]);
    const replies: Record<string, number> = {
      s_mix_ok: 200,
      s_mix_again: 503,
      s_mix_bad: 400,
      s_mix_410: 410,
    };
    server.respond = (request) => {
      clock.advance(10);
      return { status: replies[stepIdOf(request)] ?? 500, body: "x" };
    };
    await seedPending(app, ["s_mix_ok", "s_mix_again", "s_mix_bad"], "s_mix", clock.now);
    await seedPending(app, ["s_mix_410"], "s_mix_gone", clock.now);

    expect(await notifier.sweep()).toEqual({
      ...NO_WORK,
      attempts: 4,
      delivered: 1,
      retrying: 1,
      dead: 1,
      parked: 1,
      durationMs: 40,
    });
  });

  it("stops at its attempt budget and says so (exhausted), leaving the other shards alone; the next sweep takes the rest", async () => {
    const shards: number[] = [];
    const leases: string[] = [];
    const { app, server, clock, notifier } = await rig(["s_budget"], {
      maxAttemptsPerSweep: 2,
      env: { NOTIFY_CONCURRENCY: "1" },
      deliveries: (real) => ({
        findDue(sink, shard, ...rest) {
          shards.push(shard);
          return real.findDue(sink, shard, ...rest);
        },
        acquireLease(key, ...rest) {
          leases.push(key);
          return real.acquireLease(key, ...rest);
        },
      }),
    });
    // Two due in every queue shard.
    const ids = Array.from({ length: TABLE_SCHEMA.queueShards }, (_, shard) =>
      idsInShard(`s_budget_${shard}`, shard, 2),
    ).flat();
    await seedPending(app, ids, "s_budget", clock.now);

    expect(await notifier.sweepSink("s_budget")).toEqual({
      ...NO_WORK,
      attempts: 2,
      delivered: 2,
      exhausted: true,
    });
    expect(new Set(server.received.map((r) => queueShardOf(stepIdOf(r)))).size).toBe(1);
    expect(new Set(shards).size).toBe(1);
    expect(leases).toHaveLength(1);

    expect(await app.notifier.sweepSink("s_budget")).toMatchObject({ attempts: ids.length - 2 });
    expect(new Set(server.received.map(stepIdOf)).size).toBe(ids.length);
  });

  it("a budget larger than the work is not exhausted", async () => {
    const { app, notifier, clock } = await rig(["s_roomy"], { maxAttemptsPerSweep: 3 });
    await seedPending(app, ["s_roomy_1", "s_roomy_2"], "s_roomy", clock.now);
    expect(await notifier.sweepSink("s_roomy")).toEqual({ ...NO_WORK, attempts: 2, delivered: 2 });
  });

  it("stops when SWEEP_BUDGET_MS is spent, to the millisecond, and says so", async () => {
    const { app, server, clock, notifier } = await rig(["s_time"], { env: { NOTIFY_CONCURRENCY: "1" } });
    server.respond = () => {
      clock.advance(SWEEP_BUDGET_MS);
      return undefined;
    };
    await seedPending(app, idsInShard("s_time", 2, 2), "s_time", clock.now);

    expect(await notifier.sweepSink("s_time")).toEqual({
      ...NO_WORK,
      attempts: 1,
      delivered: 1,
      durationMs: SWEEP_BUDGET_MS,
      exhausted: true,
    });
    server.respond = null;
    expect(await notifier.sweepSink("s_time")).toEqual({ ...NO_WORK, attempts: 1, delivered: 1 });
  });

  it("a sweep with nothing due takes no lease (each costs a write)", async () => {
    const leases: string[] = [];
    const { notifier } = await rig(["s_idle"], {
      deliveries: (real) => ({
        acquireLease(key, ...rest) {
          leases.push(key);
          return real.acquireLease(key, ...rest);
        },
      }),
    });
    expect(await notifier.sweepSink("s_idle")).toEqual(NO_WORK);
    expect(leases).toEqual([]);
  });

  it("a healthy sink is swept even while another instance holds its probe lease", async () => {
    const { app, server, clock, notifier } = await rig(["s_probe_held"]);
    await seedPending(app, ["s_probe_held_1"], "s_probe_held", clock.now);
    expect(
      await app.deliveries.acquireLease(probeLeaseKey("s_probe_held"), clock.now + 60_000, clock.now),
    ).not.toBeNull();

    expect(await notifier.sweepSink("s_probe_held")).toEqual({ ...NO_WORK, attempts: 1, delivered: 1 });
    expect(server.received).toHaveLength(1);
  });

  it("a sweeper that dies mid-sweep keeps its shard from others until its deadline + NOTIFY_TIMEOUT_MS + 5 s, no longer", async () => {
    const dying = await rig(["s_lease"], {
      maxAttemptsPerSweep: 1,
      // Killed before it could give the lease back.
      deliveries: () => ({ releaseLease: () => Promise.resolve() }),
    });
    const { app, clock } = dying;
    const started = clock.now;
    await seedPending(app, idsInShard("s_lease", 6, 2), "s_lease", clock.now);
    expect(await dying.notifier.sweepSink("s_lease")).toMatchObject({ attempts: 1, exhausted: true });

    const heldUntil = started + SWEEP_BUDGET_MS + TIMEOUT_MS + 5_000;
    clock.now = heldUntil;
    expect(await app.notifier.sweepSink("s_lease")).toMatchObject({ attempts: 0 });
    clock.now = heldUntil + 1;
    expect(await app.notifier.sweepSink("s_lease")).toMatchObject({ attempts: 1, delivered: 1 });
    expect(dying.server.received).toHaveLength(2);
  });

  it("close() during a sweep: no attempt is started, no further page or shard is read, and the lease is given back", async () => {
    const reads: number[] = [];
    let closed = false;
    const { app, server, clock, notifier } = await rig(["s_closing"], {
      deliveries: (real, self) => ({
        findDue(sink, shard, ...rest) {
          if (closed) reads.push(shard);
          return real.findDue(sink, shard, ...rest);
        },
        async acquireLease(key, ...rest) {
          const version = await real.acquireLease(key, ...rest);
          // The process is told to shut down just as the sweep took its first shard.
          self().notifier.close();
          closed = true;
          return version;
        },
      }),
    });
    const ids = Array.from({ length: TABLE_SCHEMA.queueShards }, (_, shard) =>
      idsInShard(`s_closing_${shard}`, shard, 1),
    ).flat();
    await seedPending(app, ids, "s_closing", clock.now);

    expect(await notifier.sweepSink("s_closing")).toEqual(NO_WORK);
    expect(server.received).toEqual([]);
    expect(reads).toEqual([]);
    // Another instance may sweep every shard at once.
    expect(await app.notifier.sweepSink("s_closing")).toMatchObject({ attempts: ids.length });
  });

  it("a sink whose sweep fails is logged and counted as nothing; the other sinks' sweeps still count", async () => {
    const { app, clock, logged, notifier } = await rig(["s_broken", "s_fine"], {
      deliveries: (real) => ({
        findDue: (sink, ...rest) =>
          sink === "s_broken" ? Promise.reject(new Error("index unavailable")) : real.findDue(sink, ...rest),
      }),
    });
    await seedPending(app, ["s_broken_1"], "s_broken", clock.now);
    await seedPending(app, ["s_fine_1"], "s_fine", clock.now);

    expect(await notifier.sweep()).toEqual({ ...NO_WORK, attempts: 1, delivered: 1 });
    expect(logged().filter((line) => line.level !== "info")).toEqual([
      { level: "warn", msg: "sweep of a sink failed", sink: "s_broken", error: "Error: index unavailable" },
    ]);
  });

  it("an outbox recovery that fails is logged and counted as none; the sweep goes on", async () => {
    const { app, clock, logged, notifier } = await rig(["s_outbox"], {
      deliveries: () => ({ recoverOutbox: () => Promise.reject(new Error("outbox index unavailable")) }),
    });
    await seedPending(app, ["s_outbox_1"], "s_outbox", clock.now);

    expect(await notifier.sweep()).toEqual({ ...NO_WORK, attempts: 1, delivered: 1 });
    expect(await notifier.recover()).toBe(0);
    const warning = {
      level: "warn",
      msg: "outbox recovery failed",
      error: "Error: outbox index unavailable",
    };
    expect(logged().filter((line) => line.level !== "info")).toEqual([warning, warning]);
  });

  it("sweeping a sink that is not configured does nothing and logs nothing", async () => {
    const { logged, notifier } = await rig(["s_real"]);
    expect(await notifier.sweepSink("s_unconfigured")).toEqual(NO_WORK);
    expect(logged()).toEqual([]);
  });
});
