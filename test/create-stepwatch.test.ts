import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { generateWebhookKeyPair } from "../src/domain/ed25519.js";
import { type HmacSha256, webCryptoHmacSha256 } from "../src/domain/hmac-sha256.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import type { SweepReport } from "../src/notify/notifier.js";
import { createLogger } from "../src/observability/logger.js";
import type { Metrics } from "../src/observability/metrics.js";
import { DEFAULT_SWEEP_BUDGET_MS } from "../src/runtime/create-stepwatch.js";
import { ensureTable } from "../src/store/ensure-table.js";
import {
  deliveryOf,
  idsInShard,
  NO_WORK,
  seedPending,
  sinkOf,
  sleep,
  testClock,
  webhookSink,
} from "./support/deliveries.js";
import { makeStep } from "./support/run-steps.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// What createStepwatch wires, seen from outside: each option a runtime passes (Node, Worker, Lambda)
// and each budget it sets, through the built app, its sweep and its sweeper's lanes. One store and
// table for the file, each test with sinks of its own; the outbox recovery (its own tests' subject)
// is held to what a test needs, as the store's queries are most of a sweep's time.

let store: TestStore;
let sink: SinkServer;
const apps: TestApp[] = [];
let tables = 0;
const secret = generateWebhookSecret();

beforeAll(async () => {
  [store, sink] = await Promise.all([startTestStore("stepwatch-wiring"), startSinkServer()]);
});
afterEach(() => {
  sink.reset();
  sink.respond = null;
  sink.fallback = { status: 204 };
  vi.useRealTimers();
  vi.restoreAllMocks();
});
afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()));
  await Promise.all([sink?.close(), store?.close()]);
});

type Options = Parameters<typeof createTestApp>[2];

/** A stepwatch on the file's table; its watchdog off unless STALL_AFTER_S is given. */
async function stepwatchOn(env: Record<string, string>, options: Options = {}): Promise<TestApp> {
  const app = await createTestApp(store, { NOTIFY_TIMEOUT_MS: "1000", STALL_AFTER_S: "0", ...env }, options);
  apps.push(app);
  return app;
}

/**
 * The same on a table of its own: for a test whose sweeps move the table-wide outbox or watchdog
 * watermarks to its own clock's time (another test's rows before it would be skipped).
 */
async function stepwatchAlone(env: Record<string, string>, options: Options = {}): Promise<TestApp> {
  const table = `wiring-${tables++}`;
  await ensureTable(store.client, table, {
    retentionDays: 0,
    logger: createLogger("error", () => undefined),
  });
  return stepwatchOn({ DYNAMODB_TABLE: table, ...env }, options);
}

let names = 0;
const uniqueName = (prefix: string) => `${prefix}${names++}`;

const hookSinks = (...names: string[]) =>
  JSON.stringify(names.map((name) => webhookSink(name, `${sink.url}/${name}`, secret)));

type Line = { msg: string; [field: string]: unknown };
const parsed = (lines: readonly string[]) => lines.map((line) => JSON.parse(line) as Line);
const linesWith = (lines: readonly string[], msg: string) => parsed(lines).filter((l) => l.msg === msg);

/** Every call a Metrics receives; `render` shows nothing. */
function recordingMetrics() {
  const calls = {
    sweeps: [] as Array<[seconds: number, attempts: number, recovered: number]>,
    attempts: [] as Array<[sink: string, outcome: string, seconds: number]>,
  };
  const metrics: Metrics = {
    httpRequest: () => undefined,
    ingest: () => undefined,
    openAiEvent: () => undefined,
    hydration: () => undefined,
    deliveryAttempt: (s, outcome, seconds) => calls.attempts.push([s, outcome, seconds]),
    sweep: (seconds, attempts, recovered) => calls.sweeps.push([seconds, attempts, recovered]),
    render: async () => ({ contentType: "text/plain", body: "" }),
  };
  return { metrics, calls };
}

describe("what createStepwatch passes on", () => {
  it("the runtime's HMAC verifies ingest signatures; the console sink writes through writeLine; an Ed25519 sink's public key is shown", async () => {
    let hmacKeys = 0;
    const hmac: HmacSha256 = (key) => {
      hmacKeys++;
      return webCryptoHmacSha256(key);
    };
    const written: string[] = [];
    const pair = await generateWebhookKeyPair();
    const app = await stepwatchOn(
      {
        NOTIFY_SINKS: JSON.stringify([
          { name: "screen", type: "console" },
          { name: "ed", type: "webhook", url: `${sink.url}/ed`, signing_key: pair.signingKey },
          webhookSink("mac", `${sink.url}/mac`, secret),
        ]),
      },
      { hmac, writeLine: (line) => written.push(line) },
    );
    // The whsec_ sink's signer and the ingest verifier each imported their key with it.
    expect(hmacKeys).toBeGreaterThanOrEqual(2);

    const response = await app.send(makeStep({ id: "step_wired", status: "completed" }));
    expect(response.status).toBe(200);
    await app.drain();
    expect(written).toHaveLength(1);
    expect(written[0]).toContain("step_wired");
    expect(sink.received.map((r) => r.path).sort()).toEqual(["/ed", "/mac"]);

    // (Other sinks' null is the sink routes' tests' subject.)
    expect((await sinkOf(app, "ed")) as unknown).toMatchObject({ public_key: pair.publicKey });
  });

  it("a whsk_ key whose public half is another key's stops it with a ConfigError; other failures pass unchanged", async () => {
    const [mine, theirs] = await Promise.all([generateWebhookKeyPair(), generateWebhookKeyPair()]);
    const seed = Buffer.from(mine.signingKey.slice(5), "base64").subarray(0, 32);
    const foreign = Buffer.from(theirs.publicKey.slice(5), "base64");
    const mismatched = `whsk_${Buffer.concat([seed, foreign]).toString("base64")}`;
    const failure = stepwatchOn({
      NOTIFY_SINKS: JSON.stringify([{ type: "webhook", url: `${sink.url}/x`, signing_key: mismatched }]),
    });
    await expect(failure).rejects.toMatchObject({
      name: "ConfigError",
      message: expect.stringMatching(/^Invalid configuration: NOTIFY_SINKS \S.* public key/),
      cause: { name: "WebhookSecretError" },
    });

    const broken = new Error("no HMAC here");
    const unavailable = stepwatchOn(
      { NOTIFY_SINKS: hookSinks("plain") },
      { hmac: () => Promise.reject(broken) },
    );
    await expect(unavailable).rejects.toBe(broken);
  });

  it("random jitters the retry schedule (0 waits 90 % of the step); metrics count the attempts", async () => {
    const clock = testClock(Math.floor(Date.now() / 1000) * 1000);
    const { metrics, calls } = recordingMetrics();
    const app = await stepwatchOn(
      { NOTIFY_SINKS: hookSinks("jitter"), NOTIFY_RETRY_SCHEDULE: "100" },
      { nowMs: clock.nowMs, random: () => 0, metrics },
    );
    sink.fallback = { status: 503 };
    await app.send(makeStep({ id: "step_jitter", status: "completed" }), {
      timestamp: Math.floor(clock.now / 1000),
    });
    await app.drain();
    const delivery = await deliveryOf(app, "step_jitter", "jitter");
    expect(delivery).toMatchObject({ state: "pending", attempts: 1 });
    expect(delivery.next_attempt_at).toBe((clock.now + 90_000) / 1000);
    expect(calls.attempts).toEqual([["jitter", "retry", 0]]);
  });
});

describe("a sweep's budgets", () => {
  // Each attempt takes 6 s of the test clock: a time budget is a number of attempts.
  async function budgeted(env: Record<string, string>, options: Options = {}) {
    const clock = testClock();
    const { metrics, calls } = recordingMetrics();
    const lines: string[] = [];
    const name = uniqueName("budget");
    const app = await stepwatchOn(
      { NOTIFY_SINKS: hookSinks(name), NOTIFY_CONCURRENCY: "1", ...env },
      { nowMs: clock.nowMs, metrics, logLines: lines, logLevel: "info", ...options },
    );
    sink.respond = () => {
      clock.advance(6_000);
      return undefined;
    };
    const ids = Array.from({ length: 4 }, (_, i) => `step_${name}_${i}`);
    await seedPending(app, ids, name, clock.now);
    // Nothing to recover (the outbox recovery is store-bound work this test does not need).
    vi.spyOn(app.deliveries, "recoverOutbox").mockResolvedValue({ checked: 0, recovered: 0 });
    return { app, name, calls, lines };
  }

  it(`SWEEP_BUDGET_MS, else the runtime's default, else ${DEFAULT_SWEEP_BUDGET_MS} ms; metrics and a log line count the sweep`, async () => {
    const fallback = await budgeted({});
    expect(await fallback.app.sweep()).toMatchObject({
      attempts: 3,
      delivered: 3,
      exhausted: true,
      durationMs: 18_000,
    });
    expect(fallback.calls.sweeps).toEqual([[18, 3, 0]]);
    expect(linesWith(fallback.lines, "sweep")).toEqual([
      expect.objectContaining({ level: "info", attempts: 3, delivered: 3, recovered: 0, exhausted: true }),
    ]);

    const runtime = await budgeted({}, { sweepBudgetMs: 9_000 });
    expect(await runtime.app.notifier.sweepSink(runtime.name)).toMatchObject({
      attempts: 2,
      exhausted: true,
    });

    const configured = await budgeted({ SWEEP_BUDGET_MS: "5000" }, { sweepBudgetMs: 9_000 });
    expect(await configured.app.notifier.sweepSink(configured.name)).toMatchObject({
      attempts: 1,
      exhausted: true,
    });

    const capped = await budgeted({}, { maxAttemptsPerSweep: 2 });
    expect(await capped.app.notifier.sweepSink(capped.name)).toMatchObject({ attempts: 2, exhausted: true });
  });

  it("NOTIFY_CONCURRENCY is lowered to the runtime's cap", async () => {
    sink.fallback = { status: 204, delayMs: 15 };
    const inFlight = async (env: Record<string, string>, options: Options = {}) => {
      const name = uniqueName("lane");
      const app = await stepwatchOn({ NOTIFY_SINKS: hookSinks(name), ...env }, options);
      await seedPending(app, idsInShard(`step_${name}`, 3, 4), name);
      sink.reset();
      expect(await app.notifier.sweepSink(name)).toMatchObject({ attempts: 4, delivered: 4 });
      return sink.maxInFlight;
    };
    // (NOTIFY_CONCURRENCY alone bounds a sweep in test/delivery-sweeps.test.ts.)
    expect(await inFlight({ NOTIFY_CONCURRENCY: "4" }, { maxSinkConcurrency: 1 })).toBe(1);
  });

  it("an idle sweep leaves no log line; one that only recovered the outbox does", async () => {
    const lines: string[] = [];
    const app = await stepwatchOn({ NOTIFY_SINKS: hookSinks("idle") }, { logLines: lines, logLevel: "info" });
    const recovery = vi
      .spyOn(app.deliveries, "recoverOutbox")
      .mockResolvedValue({ checked: 0, recovered: 0 });
    expect(await app.sweep()).toMatchObject({ attempts: 0, recovered: 0 });
    expect(linesWith(lines, "sweep")).toEqual([]);

    recovery.mockResolvedValue({ checked: 2, recovered: 1 });
    expect(await app.sweep()).toMatchObject({ attempts: 0, recovered: 1 });
    expect(linesWith(lines, "sweep")).toEqual([expect.objectContaining({ attempts: 0, recovered: 1 })]);
  });

  it("stall notices found by a sweep are delivered by the same sweep", async () => {
    const clock = testClock();
    const app = await stepwatchOn(
      {
        STALL_AFTER_S: "60",
        NOTIFY_SINKS: JSON.stringify([
          { ...webhookSink("watch", `${sink.url}/watch`, secret), on: ["stalled"] },
        ]),
      },
      { nowMs: clock.nowMs },
    );
    const sent = await app.send(makeStep({ id: "step_stuck", status: "in_progress" }), {
      timestamp: Math.floor(clock.now / 1000),
    });
    expect(sent.status).toBe(200);
    vi.spyOn(app.deliveries, "recoverOutbox").mockResolvedValue({ checked: 0, recovered: 0 });
    clock.advance(61_000);
    expect(await app.sweep()).toMatchObject({ attempts: 1, delivered: 1 });
    expect(JSON.parse(sink.received[0]?.body ?? "{}")).toMatchObject({
      type: "run_step.stalled",
      data: { id: "step_stuck" },
    });
  });
});

/** A promise and the function that settles it. */
function deferred<T>() {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const idleReport = (exhausted: boolean): SweepReport => ({ ...NO_WORK, exhausted });

describe("the sweeper's lanes", () => {
  it("sweep at once, then each interval; a tick while a lane sweeps makes it sweep again right after, as does an exhausted sweep; never two at a time; stop ends it", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    // The watchdog runs on the real store, over a watermark that says nothing is due.
    const app = await stepwatchOn({ NOTIFY_SINKS: hookSinks("lane"), STALL_AFTER_S: "600" });
    const sweeps: Array<(report: SweepReport) => void> = [];
    let running = 0;
    let most = 0;
    const sweepSink = vi.spyOn(app.notifier, "sweepSink").mockImplementation(async () => {
      running++;
      most = Math.max(most, running);
      const { promise, resolve } = deferred<SweepReport>();
      sweeps.push(resolve);
      const report = await promise;
      running--;
      return report;
    });
    const recover = vi.spyOn(app.notifier, "recover").mockResolvedValue(0);
    const watermark = vi.spyOn(app.store, "watermark").mockResolvedValue(Number.MAX_SAFE_INTEGER);
    const dueForWatch = vi.spyOn(app.store, "dueForWatch").mockResolvedValue([]);
    const calls = () => [sweepSink.mock.calls.length, recover.mock.calls.length, watermark.mock.calls.length];
    const settled = () => sleep(20);

    const stop = app.startSweeper(1_000);
    await settled();
    expect(sweepSink).toHaveBeenCalledWith("lane");
    const shards = watermark.mock.calls.length;
    expect(shards).toBeGreaterThan(1);
    expect(dueForWatch).toHaveBeenCalledTimes(shards);
    expect(calls()).toEqual([1, 1, shards]);

    // An interval later the outbox and watchdog lanes run again; the sink's is still sweeping.
    vi.advanceTimersByTime(1_000);
    await settled();
    expect(calls()).toEqual([1, 2, 2 * shards]);

    // Right after: once for the tick that came meanwhile, once more for an exhausted sweep.
    sweeps[0]?.(idleReport(false));
    await settled();
    expect(calls()).toEqual([2, 2, 2 * shards]);
    sweeps[1]?.(idleReport(true));
    await settled();
    expect(calls()).toEqual([3, 2, 2 * shards]);
    sweeps[2]?.(idleReport(false));
    await settled();
    // Then nothing until the next interval: no lane sweeps again on its own.
    expect(calls()).toEqual([3, 2, 2 * shards]);
    expect(most).toBe(1);

    // A tick while it sweeps, then a stop: that sweep is not followed by another, nor are ticks.
    vi.advanceTimersByTime(1_000);
    await settled();
    expect(calls()).toEqual([4, 3, 3 * shards]);
    vi.advanceTimersByTime(1_000);
    stop();
    sweeps[3]?.(idleReport(true));
    vi.advanceTimersByTime(5_000);
    await settled();
    expect(calls()).toEqual([4, 4, 4 * shards]);
  });

  it("a lane's failure is a warning naming the lane", async () => {
    const lines: string[] = [];
    const app = await stepwatchOn(
      { NOTIFY_SINKS: hookSinks("fails"), STALL_AFTER_S: "600" },
      { logLines: lines, logLevel: "warn" },
    );
    vi.spyOn(app.notifier, "recover").mockRejectedValue(new Error("outbox down"));
    vi.spyOn(app.store, "watermark").mockRejectedValue(new Error("steps down"));
    vi.spyOn(app.notifier, "sweepSink").mockRejectedValue(new TypeError("sink down"));
    const stop = app.startSweeper(60_000);
    try {
      await eventually(async () => (linesWith(lines, "sweep failed").length >= 3 ? true : undefined), 2_000);
    } finally {
      stop();
    }
    const failures = linesWith(lines, "sweep failed").map(({ level, lane, error }) => ({
      level,
      lane,
      error,
    }));
    expect(failures).toHaveLength(3);
    expect(failures).toEqual(
      expect.arrayContaining([
        { level: "warn", lane: "outbox", error: "Error: outbox down" },
        { level: "warn", lane: "watchdog", error: "Error: steps down" },
        { level: "warn", lane: "fails", error: "TypeError: sink down" },
      ]),
    );
  });

  it("the first tick recovers the outbox and raises stall notices, the next delivers them; each lane logs what it did", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    const clock = testClock();
    const lines: string[] = [];
    const app = await stepwatchAlone(
      {
        STALL_AFTER_S: "60",
        NOTIFY_SINKS: JSON.stringify([
          { ...webhookSink("both", `${sink.url}/both`, secret), on: ["completed", "stalled"] },
        ]),
      },
      { nowMs: clock.nowMs, logLines: lines, logLevel: "info" },
    );
    // The outbox recovery (its own tests' subject) finds one delivery to write.
    vi.spyOn(app.deliveries, "recoverOutbox").mockResolvedValue({ checked: 1, recovered: 1 });
    const sent = await app.send(makeStep({ id: "step_hung", status: "in_progress" }), {
      timestamp: Math.floor(clock.now / 1000),
    });
    expect(sent.status).toBe(200);
    clock.advance(600_000);
    const sweepSink = app.notifier.sweepSink.bind(app.notifier);
    const sinkSweeps: Array<Promise<SweepReport>> = [];
    vi.spyOn(app.notifier, "sweepSink").mockImplementation((name) => {
      const sweep = sweepSink(name);
      sinkSweeps.push(sweep);
      return sweep;
    });

    const stop = app.startSweeper(1_000);
    try {
      await eventually(
        async () =>
          linesWith(lines, "outbox recovery").length > 0 && linesWith(lines, "stalled steps").length > 0
            ? true
            : undefined,
        3_000,
      );
      await Promise.all(sinkSweeps);
      // The next tick's outbox and watchdog lanes find nothing more (and leave the store alone).
      vi.spyOn(app.notifier, "recover").mockResolvedValue(0);
      vi.spyOn(app.store, "watermark").mockResolvedValue(Number.MAX_SAFE_INTEGER);
      vi.spyOn(app.store, "dueForWatch").mockResolvedValue([]);
      vi.advanceTimersByTime(1_000);
      expect(sinkSweeps).toHaveLength(2);
      await Promise.all(sinkSweeps);
    } finally {
      stop();
    }
    const received = sink.received.map((r) => JSON.parse(r.body) as { type: string; data: { id: string } });
    expect(received.map((b) => `${b.type} ${b.data.id}`)).toEqual(["run_step.stalled step_hung"]);
    expect(linesWith(lines, "outbox recovery")).toEqual([
      expect.objectContaining({ level: "info", recovered: 1 }),
    ]);
    const sweeps = linesWith(lines, "sweep");
    // The first tick's sink sweep found nothing due and left no line; the second's names the sink.
    expect(sweeps).toEqual([expect.objectContaining({ sink: "both", attempts: 1, delivered: 1 })]);
  });

  it("runs where setInterval answers a number (as in workerd), not a Node timer", async () => {
    const realSetInterval = globalThis.setInterval;
    vi.spyOn(globalThis, "setInterval").mockImplementation(((fn: () => void, ms: number) =>
      Number(realSetInterval(fn, ms))) as unknown as typeof setInterval);
    const app = await stepwatchOn({ NOTIFY_SINKS: hookSinks("numbered") });
    vi.spyOn(app.notifier, "recover").mockResolvedValue(0);
    const sweepSink = vi.spyOn(app.notifier, "sweepSink").mockResolvedValue(idleReport(false));
    const stop = app.startSweeper(20);
    await eventually(async () => (sweepSink.mock.calls.length >= 2 ? true : undefined), 2_000);
    stop();
    const after = sweepSink.mock.calls.length;
    await sleep(60);
    expect(sweepSink.mock.calls.length).toBe(after);
  });
});
