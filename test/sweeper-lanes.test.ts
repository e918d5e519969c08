import { describe, expect, it } from "vitest";
import { webCryptoHmacSha256 } from "../src/domain/hmac-sha256.js";
import { createSinks } from "../src/notify/create-sinks.js";
import { DeliveryNotifier } from "../src/notify/delivery-notifier.js";
import { createLogger } from "../src/observability/logger.js";
import type { SinkHealthStore } from "../src/store/delivery-store.js";
import {
  deliveryFixture,
  deliveryOf,
  seedPending,
  sinkOf,
  sleep,
  webhookSink,
} from "./support/deliveries.js";
import { makeStep } from "./support/run-steps.js";
import { eventually } from "./support/sink-server.js";
import { stepTransition } from "./support/subject-notifications.js";

const fixture = deliveryFixture();
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async function setUp(name: string, env: Record<string, string>) {
  const sink = await fixture.sink();
  const app = await fixture.app({
    NOTIFY_SINKS: JSON.stringify([webhookSink(name, `${sink.url}/in`, secret)]),
    ...env,
  });
  return { sink, app };
}

describe("the Node sweeper's lanes", () => {
  it("sweep again at once while a backlog outlasts one budget, instead of waiting out the interval", async () => {
    const { sink, app } = await setUp("long", { SWEEP_BUDGET_MS: "150", NOTIFY_CONCURRENCY: "2" });
    sink.fallback = { status: 204, delayMs: 15 };
    const ids = Array.from({ length: 60 }, (_, i) => `lane_long_${i}`);
    await seedPending(app, ids, "long");
    // One budget delivers about 20 of them; the next tick would be a minute away.
    const stop = app.startSweeper(60_000);
    try {
      await sink.waitFor(ids.length, 8_000);
    } finally {
      stop();
    }
    await app.drain();
    expect(new Set(sink.received.map((r) => JSON.parse(r.body).data.id)).size).toBe(ids.length);
  });
});

describe("prompt deliveries waiting for their sink's lane", () => {
  it("are not attempted once the sink has turned failing meanwhile: they wait, recorded pending", async () => {
    const { sink, app } = await setUp("sour", { NOTIFY_CONCURRENCY: "1", NOTIFY_RETRY_SCHEDULE: "60" });
    sink.fallback = { status: 503, body: "down", delayMs: 20 };
    const ids = Array.from({ length: 10 }, (_, i) => `lane_sour_${i}`);
    await Promise.all(ids.map((id) => app.send(makeStep({ id, status: "completed" }))));
    await app.drain();
    // Five failures in a row turn it failing; the five still queued behind them are not sent.
    expect(sink.received).toHaveLength(5);
    expect(await sinkOf(app, "sour")).toMatchObject({ state: "failing", consecutive_failures: 5 });
    const states = await Promise.all(ids.map(async (id) => (await deliveryOf(app, id, "sour")).attempts));
    expect(states.filter((attempts) => attempts === 0)).toHaveLength(5);
    await eventually(async () => ((await sinkOf(app, "sour")).pending === 10 ? true : undefined));
  });
});

describe("consecutive failures across attempts whose writes land out of order", () => {
  it("a success between two failures breaks the run, even when the failures' writes land after it", async () => {
    const { sink, app } = await setUp("racy", { NOTIFY_RETRY_SCHEDULE: "60" });
    // The real store, with every failure's write held back 150 ms: the successes land first.
    const real = app.sinkHealth;
    const health: SinkHealthStore = {
      get: (name) => real.get(name),
      recordSuccess: (...args) => real.recordSuccess(...args),
      recordFailure: async (...args) => {
        await sleep(150);
        return real.recordFailure(...args);
      },
      disable: (...args) => real.disable(...args),
      enable: (name) => real.enable(name),
    };
    const configs = app.config.NOTIFY_SINKS;
    const notifier = new DeliveryNotifier({
      sinkConfigs: configs,
      sinks: await createSinks(configs, { timeoutMs: 1000, hmac: webCryptoHmacSha256 }),
      deliveries: app.deliveries,
      health,
      logger: createLogger("error", () => undefined),
      retryScheduleS: [60],
      timeoutMs: 1000,
      sweepBudgetMs: 1000,
      sinkConcurrency: 4,
    });
    const deliver = async (id: string, status: number) => {
      sink.script({ status });
      const count = sink.received.length;
      const step = makeStep({ id, status: "completed" }) as never;
      void notifier.deliverPrompt(stepTransition(step, [{ sink: "racy", event: "run_step.completed" }]));
      await sink.waitFor(count + 1, 2_000);
    };
    await deliver("racy_0", 200);
    await notifier.drain();
    // Failure, success, five times over, without waiting for any failure's write.
    for (let i = 1; i <= 5; i++) {
      await deliver(`racy_f${i}`, 503);
      await deliver(`racy_s${i}`, 200);
      await sleep(5);
    }
    await notifier.drain();
    expect(await sinkOf(app, "racy")).toMatchObject({ state: "healthy", consecutive_failures: 0 });
  });
});
