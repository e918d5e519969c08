import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { DynamoSinkStore } from "../src/store/dynamo-sink-store.js";
import {
  api,
  countsByStep,
  type DeliveryJson,
  deliver,
  deliveryFixture,
  deliveryOf,
  queueShardOf,
  type SinkJson,
  signatureHeaders,
  sinkOf,
  testClock,
  webhookSink,
} from "./support/deliveries.js";
import type { SinkServer } from "./support/sink-server.js";
import type { createTestApp, TestApp } from "./support/test-app.js";

const fixture = deliveryFixture();
const secret = generateWebhookSecret();

async function setUp(
  name: string,
  env: Record<string, string> = {},
  options: Parameters<typeof createTestApp>[2] = {},
): Promise<{ sink: SinkServer; app: TestApp }> {
  const sink = await fixture.sink();
  const app = await fixture.app(
    {
      NOTIFY_SINKS: JSON.stringify([webhookSink(name, `${sink.url}/in`, secret)]),
      NOTIFY_TIMEOUT_MS: "2000",
      ...env,
    },
    options,
  );
  return { sink, app };
}

const post = async (app: TestApp, path: string) => {
  const response = await api(app, "POST", path);
  return { status: response.status, body: (await response.json()) as SinkJson & Record<string, unknown> };
};

describe("failing → probe → healthy (SPEC §6: a sink that keeps failing is probed, not hammered)", () => {
  it("5 failures in a row make it failing; prompt attempts skip it; one probe at a time when due; a good probe heals it and the backlog drains", async () => {
    const clock = testClock();
    const { sink, app } = await setUp("flaky", { NOTIFY_RETRY_SCHEDULE: "60,60,60" }, { nowMs: clock.nowMs });
    const other = await fixture.app(
      {
        WEBHOOK_SECRET: app.secret,
        NOTIFY_SINKS: JSON.stringify([webhookSink("flaky", `${sink.url}/in`, secret)]),
        NOTIFY_TIMEOUT_MS: "2000",
        NOTIFY_RETRY_SCHEDULE: "60,60,60",
      },
      { nowMs: clock.nowMs },
    );
    const at = () => Math.floor(clock.now / 1000);
    sink.fallback = { status: 503, body: "down" };

    for (let i = 1; i <= 4; i++) {
      await deliver(app, `flaky_${i}`, at());
      expect(await sinkOf(app, "flaky")).toMatchObject({ state: "healthy", consecutive_failures: i });
    }
    const fifthAt = clock.now;
    await deliver(app, "flaky_5", at());
    expect(sink.received).toHaveLength(5);
    const failing = await sinkOf(app, "flaky");
    expect(failing).toMatchObject({
      state: "failing",
      consecutive_failures: 5,
      last_failure: { status: 503, error: "HTTP 503: down" },
      next_probe_at: Math.ceil((fifthAt + 5_000) / 1000),
      pending: 5,
    });

    // Prompt attempts skip a failing sink: recorded pending, due now, nothing sent. (Two, in
    // different queue shards, so two sweepers could each find one to probe.)
    expect(queueShardOf("flaky_6")).not.toBe(queueShardOf("flaky_6b"));
    await deliver(app, "flaky_6", at());
    await deliver(app, "flaky_6b", at());
    expect(sink.received).toHaveLength(5);
    expect(await deliveryOf(app, "flaky_6", "flaky")).toMatchObject({ state: "pending", attempts: 0 });
    expect(await sinkOf(app, "flaky")).toMatchObject({ state: "failing", pending: 7 });

    // Before the probe is due, a sweep sends nothing (flaky_6 is due, but the sink is failing).
    clock.advance(4_000);
    expect((await app.sweep()).attempts).toBe(0);
    expect(sink.received).toHaveLength(5);

    // Due: two sweepers at once make exactly one probe (a slow one: the other sweeper tries while
    // it is in flight); it fails and the next probe backs off.
    clock.advance(1_001);
    sink.script({ status: 503, body: "down", delayMs: 500 });
    const [a, b] = await Promise.all([app.sweep(), other.sweep()]);
    expect(sink.received).toHaveLength(6);
    expect(a.probes + b.probes).toBe(1);
    expect((await sinkOf(app, "flaky")).state).toBe("failing");
    expect((await sinkOf(app, "flaky")).next_probe_at).toBeGreaterThanOrEqual(
      Math.floor((clock.now + 10_000) / 1000),
    );
    clock.advance(5_000);
    await Promise.all([app.sweep(), other.sweep()]);
    expect(sink.received).toHaveLength(6);

    // Everything is due again; the sink has recovered: one probe succeeds, then the backlog drains.
    sink.fallback = { status: 200, body: "ok" };
    clock.advance(120_000);
    const healed = await app.sweep();
    expect(healed.probes).toBe(1);
    expect(healed.delivered).toBe(7);
    const counts = countsByStep(sink.received.slice(6));
    expect([...counts.keys()].sort()).toEqual([
      "flaky_1",
      "flaky_2",
      "flaky_3",
      "flaky_4",
      "flaky_5",
      "flaky_6",
      "flaky_6b",
    ]);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(await sinkOf(app, "flaky")).toMatchObject({
      state: "healthy",
      consecutive_failures: 0,
      last_success: { status: 200 },
      next_probe_at: null,
      pending: 0,
    });

    // Healthy again: prompt deliveries go straight out.
    await deliver(app, "flaky_7", at());
    expect(await deliveryOf(app, "flaky_7", "flaky")).toMatchObject({ state: "delivered", attempts: 1 });
  });

  it("a success in between resets the count: 4 failures, 1 success, 4 failures stay healthy", async () => {
    const { sink, app } = await setUp("reset", { NOTIFY_RETRY_SCHEDULE: "60" });
    sink.scriptStatuses(500, 500, 500, 500, 200, 500, 500, 500, 500);
    for (let i = 1; i <= 9; i++) await deliver(app, `reset_${i}`);
    expect(await sinkOf(app, "reset")).toMatchObject({ state: "healthy", consecutive_failures: 4 });
  });
});

describe("what counts as failing", () => {
  it("a 4xx refuses one message, it does not say the sink is down: kept as the last failure, not counted", async () => {
    const { sink, app } = await setUp("picky");
    sink.script(...Array.from({ length: 6 }, () => ({ status: 400, body: "bad field" })));
    for (let i = 1; i <= 6; i++) await deliver(app, `picky_${i}`);
    const health = await sinkOf(app, "picky");
    expect(health).toMatchObject({ state: "healthy", consecutive_failures: 0 });
    expect(health.last_failure).toMatchObject({ status: 400, error: "HTTP 400: bad field" });
    // Still attempted promptly: every one of them reached the sink.
    expect(sink.received).toHaveLength(6);
  });
});

describe("410 Gone and operators' disable / enable (SPEC §6: parked, not dead, until enabled)", () => {
  it("410 disables the sink and parks the delivery; other deliveries are not attempted; enable resumes; disable parks", async () => {
    const { sink, app } = await setUp("gone", { NOTIFY_CONCURRENCY: "1" });
    sink.script({ status: 410, body: "no such endpoint" });

    await deliver(app, "gone_1");
    expect(sink.received).toHaveLength(1);
    const disabled = await sinkOf(app, "gone");
    expect(disabled).toMatchObject({ state: "disabled", next_probe_at: null });
    expect(disabled.disabled_reason).toContain("410");
    const parked: DeliveryJson = await deliveryOf(app, "gone_1", "gone");
    expect(parked).toMatchObject({
      state: "parked",
      attempts: 1,
      last_error: "HTTP 410: no such endpoint",
      next_attempt_at: null,
    });
    expect(parked.recent_attempts).toMatchObject([{ attempt: 1, status: 410 }]);

    // Not attempted while disabled, neither promptly nor by sweeps.
    await deliver(app, "gone_2");
    await deliver(app, "gone_3");
    expect((await app.sweep()).attempts).toBe(0);
    expect(sink.received).toHaveLength(1);
    expect(await deliveryOf(app, "gone_2", "gone")).toMatchObject({ state: "parked", attempts: 0 });
    const pending = (await (await api(app, "GET", "/v1/deliveries?state=pending&sink=gone")).json()) as {
      data: DeliveryJson[];
    };
    expect(pending.data.map((d) => [d.step_id, d.state]).sort()).toEqual([
      ["gone_1", "parked"],
      ["gone_2", "parked"],
      ["gone_3", "parked"],
    ]);
    const dead = (await (await api(app, "GET", "/v1/deliveries?state=dead&sink=gone")).json()) as {
      data: DeliveryJson[];
    };
    expect(dead.data).toEqual([]);

    // Enabled: healthy, and the next sweep delivers the parked ones.
    const enabled = await post(app, "/v1/sinks/gone/enable");
    expect(enabled.status).toBe(200);
    expect(enabled.body).toMatchObject({ state: "healthy", consecutive_failures: 0, disabled_reason: null });
    expect(await deliveryOf(app, "gone_1", "gone")).toMatchObject({ state: "pending" });
    const report = await app.sweep();
    expect(report.delivered).toBe(3);
    expect([...countsByStep(sink.received.slice(1)).keys()].sort()).toEqual(["gone_1", "gone_2", "gone_3"]);
    expect(await deliveryOf(app, "gone_1", "gone")).toMatchObject({ state: "delivered", attempts: 2 });

    // An operator disables it: new deliveries are parked, not sent.
    const off = await post(app, "/v1/sinks/gone/disable");
    expect(off.status).toBe(200);
    expect(off.body).toMatchObject({ state: "disabled", disabled_reason: "disabled by an operator" });
    await deliver(app, "gone_4");
    expect(sink.received).toHaveLength(4);
    expect(await deliveryOf(app, "gone_4", "gone")).toMatchObject({ state: "parked", attempts: 0 });
    expect((await post(app, "/v1/sinks/nope/disable")).status).toBe(404);
    expect((await post(app, "/v1/sinks/nope/enable")).status).toBe(404);
  });

  it("the API shows a probe time only while failing, a reason only while disabled, and the oldest pending delivery's age", async () => {
    const clock = testClock();
    const { sink, app } = await setUp("shown", {}, { nowMs: clock.nowMs });
    const health = new DynamoSinkStore({ client: fixture.store.client, tableName: fixture.store.tableName });
    const probeAt = clock.now + 5_000;
    await health.recordFailure(
      "shown",
      { status: 503, error: "HTTP 503: down", atMs: clock.now },
      { failingAfter: 1, nextProbeAtMs: probeAt, probe: false, counts: true },
    );
    expect(await sinkOf(app, "shown")).toMatchObject({
      state: "failing",
      next_probe_at: Math.ceil(probeAt / 1000),
      disabled_reason: null,
      pending: 0,
      oldest_pending_age_s: null,
    });
    // Disabling a failing sink keeps its probe time in the store; the API does not show it.
    const off = await post(app, "/v1/sinks/shown/disable");
    expect(off.body).toMatchObject({
      state: "disabled",
      next_probe_at: null,
      disabled_reason: "disabled by an operator",
    });
    expect((await health.get("shown")).nextProbeAtMs).toBe(probeAt);

    const createdAt = clock.now;
    await deliver(app, "shown_1", Math.floor(createdAt / 1000));
    expect(sink.received).toHaveLength(0);
    clock.advance(63_700);
    expect(await sinkOf(app, "shown")).toMatchObject({ pending: 1, oldest_pending_age_s: 63 });

    const on = await post(app, "/v1/sinks/shown/enable");
    expect(on.body).toMatchObject({
      state: "healthy",
      next_probe_at: null,
      disabled_reason: null,
      consecutive_failures: 0,
    });
  });

  it("an enable through another instance is seen by the next sweep anywhere", async () => {
    const { sink, app } = await setUp("shared");
    const operator = await fixture.app({
      WEBHOOK_SECRET: app.secret,
      NOTIFY_SINKS: JSON.stringify([webhookSink("shared", `${sink.url}/in`, secret)]),
    });
    sink.script({ status: 410 });
    await deliver(app, "shared_1");
    expect((await sinkOf(app, "shared")).state).toBe("disabled");
    expect((await post(operator, "/v1/sinks/shared/enable")).body.state).toBe("healthy");
    expect((await app.sweep()).delivered).toBe(1);
    expect(await deliveryOf(app, "shared_1", "shared")).toMatchObject({ state: "delivered", attempts: 2 });
  });

  it("a 410 in the middle of a sweep stops that sink's sweep: the other due deliveries are not attempted", async () => {
    const { sink, app } = await setUp("midway", { NOTIFY_CONCURRENCY: "1" });
    await post(app, "/v1/sinks/midway/disable");
    for (let i = 1; i <= 6; i++) await deliver(app, `midway_${i}`);
    await post(app, "/v1/sinks/midway/enable");
    sink.script({ status: 410 });

    const report = await app.sweep();

    expect(sink.received).toHaveLength(1);
    expect(report).toMatchObject({ attempts: 1, parked: 1, dead: 0 });
    expect((await sinkOf(app, "midway")).state).toBe("disabled");
    for (let i = 1; i <= 6; i++) {
      expect((await deliveryOf(app, `midway_${i}`, "midway")).state).toBe("parked");
    }
  });
});

describe("GET /v1/sinks and the sink test (POST /v1/sinks/{name}/test)", () => {
  it("lists every sink with health and backlog", async () => {
    const { app } = await setUp("listed");
    const response = await api(app, "GET", "/v1/sinks");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      data: [
        {
          name: "listed",
          type: "webhook",
          state: "healthy",
          consecutive_failures: 0,
          last_success: null,
          last_failure: null,
          next_probe_at: null,
          disabled_reason: null,
          pending: 0,
          oldest_pending_age_s: null,
          public_key: null,
        },
      ],
      next_cursor: null,
    });
    expect((await api(app, "GET", "/v1/sinks/none")).status).toBe(404);
  });

  it("sends a signed notification marked as a test and reports the outcome, for 200 and 500", async () => {
    const { sink, app } = await setUp("probe");
    const ok = await post(app, "/v1/sinks/probe/test");
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ sink: "probe", ok: true, status: 200, error: null });
    expect(ok.body.latency_ms).toBeTypeOf("number");
    expect(sink.received).toHaveLength(1);
    const [request] = sink.received;
    if (!request) throw new Error("no request");
    const headers = signatureHeaders(request);
    expect(headers["webhook-id"]).toBe(ok.body.webhook_id);
    const payload = new Webhook(secret).verify(request.body, headers) as {
      type: string;
      test?: boolean;
      data: { id: string };
    };
    expect(payload).toMatchObject({ type: "run_step.completed", test: true });

    sink.script({ status: 500, body: "kaput" });
    const bad = await post(app, "/v1/sinks/probe/test");
    expect(bad.status).toBe(200);
    expect(bad.body).toMatchObject({ sink: "probe", ok: false, status: 500, error: "HTTP 500: kaput" });
    expect(sink.received).toHaveLength(2);
    expect((await post(app, "/v1/sinks/none/test")).status).toBe(404);
  });
});
