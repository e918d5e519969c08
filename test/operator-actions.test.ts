import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newDelivery } from "../src/domain/delivery.js";
import { notificationMessageId } from "../src/domain/notification-payloads.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { DeliveryOperations } from "../src/usecases/delivery-operations.js";
import {
  api,
  type DeliveryJson,
  deliver,
  deliveryOf,
  type SinkJson,
  seedDead,
  seedPending,
  sinkOf,
  stepIdOf,
  testClock,
  webhookSink,
} from "./support/deliveries.js";
import { overriding } from "./support/overriding.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// The operator's actions (SPEC §5, §6) where sinks differ by name and type, and where another
// action or a sweeper gets to a delivery at the same time. One app with two webhook sinks and a
// console sink, on a clock the tests move.

const TIMEOUT_MS = 1_000;
const HOLD_MARGIN_MS = 5_000;

let store: TestStore;
let sink: SinkServer;
let app: TestApp;
const clock = testClock();
const consoleLines: string[] = [];
const others: TestApp[] = [];

beforeAll(async () => {
  [store, sink] = await Promise.all([startTestStore(), startSinkServer()]);
  app = await createTestApp(
    store,
    {
      NOTIFY_SINKS: JSON.stringify([
        webhookSink("alpha", `${sink.url}/alpha`, generateWebhookSecret()),
        webhookSink("beta", `${sink.url}/beta`, generateWebhookSecret()),
        { name: "gamma", type: "console" },
      ]),
      NOTIFY_TIMEOUT_MS: String(TIMEOUT_MS),
      NOTIFY_RETRY_SCHEDULE: "60",
    },
    { nowMs: clock.nowMs, writeLine: (line) => consoleLines.push(line) },
  );
});
afterAll(async () => {
  await Promise.all([app, ...others].map((a) => a.drain()));
  await Promise.all([store.close(), sink.close()]);
});

const requestsFor = (stepId: string) => sink.received.filter((r) => stepIdOf(r) === stepId);

async function call(target: TestApp, method: "GET" | "POST", path: string) {
  const response = await api(target, method, path);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** The app's operations, with the delivery store's methods overridden to interleave other work. */
function racingOperations(overrides: Parameters<typeof overriding<TestApp["deliveries"]>>[1]) {
  return new DeliveryOperations({
    deliveries: overriding(app.deliveries, overrides),
    health: app.sinkHealth,
    notifier: app.notifier,
    sinkConfigs: app.config.NOTIFY_SINKS,
    publicKeys: new Map(),
    timeoutMs: TIMEOUT_MS,
    nowMs: clock.nowMs,
  });
}

describe("the operations' clock", () => {
  it("is the one they were given (the Lambda entry reads it for its sweep deadline)", () => {
    expect(app.operations.nowMs()).toBe(clock.now);
    const later = clock.advance(1_234);
    expect(app.operations.nowMs()).toBe(later);
  });
});

describe("several sinks", () => {
  it("the deliveries list: one sink's when asked, every sink's otherwise", async () => {
    const dueMs = clock.now + 3_600_000;
    await seedPending(app, ["list_a1", "list_a2"], "alpha", dueMs);
    await seedPending(app, ["list_b1"], "beta", dueMs);
    const ids = (body: Record<string, unknown>) =>
      (body.data as DeliveryJson[]).map((d) => d.id).filter((id) => id.startsWith("list_"));

    const beta = await call(app, "GET", "/v1/deliveries?state=pending&sink=beta");
    expect(beta.status).toBe(200);
    expect(ids(beta.body)).toEqual(["list_b1:beta"]);
    const alpha = await call(app, "GET", "/v1/deliveries?state=pending&sink=alpha");
    expect(ids(alpha.body).sort()).toEqual(["list_a1:alpha", "list_a2:alpha"]);
    const all = await call(app, "GET", "/v1/deliveries?state=pending");
    expect(ids(all.body).sort()).toEqual(["list_a1:alpha", "list_a2:alpha", "list_b1:beta"]);
    expect((await call(app, "GET", "/v1/deliveries?state=pending&sink=delta")).status).toBe(404);
  });

  it("a sink test reports a webhook-id for a webhook sink only, the one it sent", async () => {
    const printed = await call(app, "POST", "/v1/sinks/gamma/test");
    expect(printed).toEqual({
      status: 200,
      body: { sink: "gamma", ok: true, status: null, latency_ms: 0, error: null, webhook_id: null },
    });
    expect(consoleLines.at(-1)).toContain("[test]");

    const before = sink.received.length;
    const webhook = await call(app, "POST", "/v1/sinks/beta/test");
    const expectedId = await notificationMessageId(
      `step_test_${clock.now.toString(36)}`,
      "run_step.completed",
      "beta",
    );
    expect(webhook.body).toMatchObject({ sink: "beta", ok: true, status: 200, webhook_id: expectedId });
    const sent = sink.received.slice(before);
    expect(sent.map((r) => [r.path, r.headers["webhook-id"]])).toEqual([["/beta", expectedId]]);
  });

  it("a sink test of a configured sink the notifier cannot send to answers null, like an unknown one", async () => {
    const [alpha] = app.config.NOTIFY_SINKS;
    if (!alpha) throw new Error("no sinks");
    const ops = new DeliveryOperations({
      deliveries: app.deliveries,
      health: app.sinkHealth,
      notifier: app.notifier,
      sinkConfigs: [...app.config.NOTIFY_SINKS, { ...alpha, name: "ghost" }],
      publicKeys: new Map(),
      timeoutMs: TIMEOUT_MS,
      nowMs: clock.nowMs,
    });
    const before = sink.received.length;
    expect(await ops.test("ghost")).toBeNull();
    expect(await ops.test("nope")).toBeNull();
    expect(sink.received).toHaveLength(before);
  });

  it("disabling or enabling a sink this instance does not have: 404, and the sink is left as it was", async () => {
    // An instance whose configuration lacks beta (say, mid-rollout), on the same table.
    const narrow = await createTestApp(store, {
      NOTIFY_SINKS: JSON.stringify([webhookSink("alpha", `${sink.url}/alpha`, generateWebhookSecret())]),
    });
    others.push(narrow);
    const state = async () => (await sinkOf(app, "beta")).state;

    expect((await call(narrow, "POST", "/v1/sinks/beta/disable")).status).toBe(404);
    expect(await state()).toBe("healthy");
    const disabled = await call(app, "POST", "/v1/sinks/beta/disable");
    expect((disabled.body as unknown as SinkJson).state).toBe("disabled");
    expect((await call(narrow, "POST", "/v1/sinks/beta/enable")).status).toBe(404);
    expect(await state()).toBe("disabled");
    expect(((await call(app, "POST", "/v1/sinks/beta/enable")).body as unknown as SinkJson).state).toBe(
      "healthy",
    );
  });
});

describe("what each action applies to (409 says why)", () => {
  it("retry takes dead deliveries only; resend delivered ones only", async () => {
    await deliver(app, "state_done");
    await seedDead(app, ["state_dead"], "alpha", clock.now - 60_000);
    const before = sink.received.length;
    expect(await call(app, "POST", "/v1/deliveries/state_done:alpha/retry")).toEqual({
      status: 409,
      body: {
        error: { code: "invalid_state", message: "delivery is delivered; only dead deliveries are retried" },
      },
    });
    expect(await call(app, "POST", "/v1/deliveries/state_dead:alpha/resend")).toEqual({
      status: 409,
      body: {
        error: { code: "invalid_state", message: "delivery is dead; only delivered ones are resent" },
      },
    });
    expect(sink.received).toHaveLength(before);
  });
});

describe("a retry holds its delivery away from sweepers", () => {
  it("for one attempt's time-out and a margin: a sweep meanwhile leaves it to the retry", async () => {
    await seedDead(app, ["hold_1"], "alpha", clock.now - 60_000);
    let swept: Awaited<ReturnType<TestApp["sweep"]>> | undefined;
    const ops = racingOperations({
      // Once the retry has taken the delivery, before its attempt: the last millisecond of the hold.
      async subjects(refs) {
        clock.advance(TIMEOUT_MS + HOLD_MARGIN_MS - 1);
        swept = await app.notifier.sweepSink("alpha");
        return app.deliveries.subjects(refs);
      },
    });
    expect(await ops.retry("hold_1:alpha")).toMatchObject({
      kind: "done",
      delivery: { state: "delivered", delivery: { attempts: 2 } },
    });
    expect(swept).toMatchObject({ attempts: 0 });
    expect(requestsFor("hold_1")).toHaveLength(1);
  });
});

describe("another action on the same delivery at the same time", () => {
  it("two retries: the one that takes the delivery second attempts nothing and says to read it again", async () => {
    await seedDead(app, ["race_retry"], "alpha", clock.now - 60_000);
    let first: Awaited<ReturnType<DeliveryOperations["retry"]>> | undefined;
    const second = racingOperations({
      // Between reading the delivery (dead) and taking it, the first retry runs to its end.
      async get(ref) {
        const found = await app.deliveries.get(ref);
        first = await app.operations.retry("race_retry:alpha");
        return found;
      },
    });
    expect(await second.retry("race_retry:alpha")).toEqual({
      kind: "invalid_state",
      message: "delivery changed meanwhile; read it again",
    });
    expect(first).toMatchObject({ kind: "done", delivery: { state: "delivered", nextAttemptMs: null } });
    expect(requestsFor("race_retry")).toHaveLength(1);
    expect(await deliveryOf(app, "race_retry", "alpha")).toMatchObject({ state: "delivered", attempts: 2 });
  });

  it("two resends: both are sent, the one recorded second says to read it again", async () => {
    await deliver(app, "race_resend");
    let first: Awaited<ReturnType<DeliveryOperations["resend"]>> | undefined;
    const second = racingOperations({
      // After the second resend took the delivery and before its attempt, the first one runs to its end.
      async subjects(refs) {
        first = await app.operations.resend("race_resend:alpha");
        return app.deliveries.subjects(refs);
      },
    });
    expect(await second.resend("race_resend:alpha")).toEqual({
      kind: "invalid_state",
      message: "delivery changed while it was attempted; read it again",
    });
    expect(first).toMatchObject({ kind: "done", delivery: { state: "delivered" } });
    expect(requestsFor("race_resend").filter((r) => r.path === "/alpha")).toHaveLength(3);
    expect(await deliveryOf(app, "race_resend", "alpha")).toMatchObject({ state: "delivered", attempts: 2 });
  });
});

describe("a delivery whose step is gone (RETENTION_DAYS expired the step first)", () => {
  it("a retry sends nothing: the delivery is dead again, saying the step is unreadable", async () => {
    const diedMs = clock.now - 60_000;
    const created = await app.deliveries.create({
      ...newDelivery(
        { sink: "alpha", event: "run_step.completed" },
        { kind: "run_step", id: "gone_1", runId: "run_gone" },
        diedMs,
      ),
      state: "dead",
      attempts: 1,
      lastError: "HTTP 400",
      nextAttemptMs: null,
      log: [{ attempt: 1, at: diedMs, status: 400, latencyMs: 1, error: "HTTP 400" }],
    });
    expect(created).toBe(true);
    const before = sink.received.length;
    const retried = await call(app, "POST", "/v1/deliveries/gone_1:alpha/retry");
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({
      id: "gone_1:alpha",
      state: "dead",
      attempts: 1,
      last_error: "stored run step is missing",
      next_attempt_at: null,
    });
    expect(sink.received).toHaveLength(before);
  });
});
