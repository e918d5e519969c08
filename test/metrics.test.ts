import parsePrometheusTextFormat, { type ParsedFamily } from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPromMetrics } from "../src/runtime/prom-metrics.js";
import { api, testClock, webhookSink } from "./support/deliveries.js";
import { makeStep } from "./support/run-steps.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, TEST_TOKEN, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
let hook: SinkServer;
let picky: SinkServer;
let app: TestApp;
const sinkSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const METRICS_TOKEN = "metrics-token-0123456789";

beforeAll(async () => {
  [store, hook, picky] = await Promise.all([startTestStore(), startSinkServer(), startSinkServer()]);
  picky.fallback = { status: 400, body: "no" };
  app = await createTestApp(
    store,
    {
      NOTIFY_SINKS: JSON.stringify([
        { name: "hook", type: "webhook", url: `${hook.url}/in`, secret: sinkSecret },
        { name: "picky", type: "webhook", url: `${picky.url}/in`, secret: sinkSecret },
      ]),
    },
    { metrics: createPromMetrics() },
  );
});
afterAll(async () => {
  await app.drain();
  await Promise.all([store.close(), hook.close(), picky.close()]);
});

const scrape = async (target: TestApp, token = TEST_TOKEN) => {
  const response = await target.get("/metrics", token);
  const text = await response.text();
  return { response, text, families: parsePrometheusTextFormat(text) };
};
const status = async (target: TestApp, token: string) => (await target.get("/metrics", token)).status;

/** The value of one sample, found by family name and labels. */
const sample = (families: ParsedFamily[], name: string, labels: Record<string, string>) => {
  const family = families.find((f) => f.name === name);
  const metric = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return metric === undefined ? undefined : Number(metric.value ?? metric.count);
};

describe("GET /metrics", () => {
  it("counts what the traffic did, in the Prometheus text format a real parser reads", async () => {
    await app.send(makeStep({ id: "step_m1" }));
    await app.send(makeStep({ id: "step_m2" }));
    await app.send(makeStep({ id: "step_m1", status: "completed" }));
    await app.send(makeStep({ id: "step_m1", status: "completed" }));
    await app.send(makeStep({ id: "step_m3" }), { secret: sinkSecret });
    await eventually(async () => (hook.received.length > 0 && picky.received.length > 0 ? true : undefined));
    await app.drain();

    const { response, text, families } = await scrape(app);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const ingest = "stepwatch_ingest_events_total";
    expect(sample(families, ingest, { outcome: "created", step_status: "in_progress" })).toBe(2);
    expect(sample(families, ingest, { outcome: "updated", step_status: "completed" })).toBe(1);
    expect(sample(families, ingest, { outcome: "unchanged", step_status: "completed" })).toBe(1);
    expect(sample(families, ingest, { outcome: "invalid_signature", step_status: "none" })).toBe(1);

    const route = "/v1/webhooks/run-steps";
    const http = "stepwatch_http_requests_total";
    expect(sample(families, http, { method: "POST", route, status: "200" })).toBe(4);
    expect(sample(families, http, { method: "POST", route, status: "401" })).toBe(1);
    // The parser flattens labelled histograms: their counts are read from the exposition lines.
    expect(text).toContain(
      `stepwatch_http_request_duration_seconds_count{method="POST",route="${route}"} 5\n`,
    );

    const attempts = "stepwatch_delivery_attempts_total";
    expect(sample(families, attempts, { sink: "hook", outcome: "delivered" })).toBe(1);
    expect(sample(families, attempts, { sink: "picky", outcome: "dead" })).toBe(1);
    expect(text).toContain('stepwatch_delivery_attempt_duration_seconds_count{sink="hook"} 1\n');

    expect(sample(families, "stepwatch_deliveries_dead", { sink: "picky" })).toBe(1);
    expect(sample(families, "stepwatch_deliveries_dead", { sink: "hook" })).toBe(0);
    expect(sample(families, "stepwatch_deliveries_pending", { sink: "hook" })).toBe(0);
    expect(sample(families, "stepwatch_sink_state", { sink: "hook", state: "healthy" })).toBe(1);
    expect(sample(families, "stepwatch_sink_state", { sink: "hook", state: "failing" })).toBe(0);
    expect(families.some((f) => f.name.startsWith("stepwatch_process_"))).toBe(true);
    expect(sample(families, "stepwatch_quarantined_requests", {})).toBe(0);
  });

  it("counts the quarantine: signed requests refused for their body", async () => {
    await app.send("{not json");
    await app.send(makeStep({ id: "step_mq", status: "completed", completed_at: null }));
    const { families } = await scrape(app);
    expect(sample(families, "stepwatch_quarantined_requests", {})).toBe(2);
    const ingest = "stepwatch_ingest_events_total";
    expect(sample(families, ingest, { outcome: "invalid_json", step_status: "none" })).toBe(1);
    expect(sample(families, ingest, { outcome: "invalid_payload", step_status: "none" })).toBe(1);
  });

  it("counts sweeps and shows a backlog's size and age", async () => {
    hook.fallback = { status: 503, body: "down" };
    try {
      await app.send(makeStep({ id: "step_m4", status: "failed" }));
      await app.drain();
      await app.sweep();
      const { families } = await scrape(app);
      expect(sample(families, "stepwatch_deliveries_pending", { sink: "hook" })).toBe(1);
      expect(
        sample(families, "stepwatch_oldest_pending_delivery_age_seconds", { sink: "hook" }),
      ).toBeGreaterThanOrEqual(0);
      expect(sample(families, "stepwatch_sweeps_total", {})).toBe(1);
      expect(sample(families, "stepwatch_delivery_attempts_total", { sink: "hook", outcome: "retry" })).toBe(
        1,
      );
    } finally {
      hook.fallback = { status: 200, body: "ok" };
    }
  });

  it("times each request in seconds, and counts only ingest requests as ingest events", async () => {
    // Every reading of this app's clock is a quarter of a second after the one before: a request's
    // latency is the two readings around it (a /healthz answer reads it nowhere else).
    let now = Date.now();
    const timed = await createTestApp(store, {}, { metrics: createPromMetrics(), nowMs: () => (now += 250) });
    await timed.app.request("/healthz");
    // Requests to other routes, POST ones and a request on the ingest path with another method.
    await timed.get("/v1/runs/run_none");
    await api(timed, "POST", "/v1/deliveries/none/retry");
    await timed.app.request("/v1/webhooks/run-steps");

    const { text, families } = await scrape(timed);
    const healthz = '{le="%s",method="GET",route="/healthz"}';
    const histogram = "stepwatch_http_request_duration_seconds";
    expect(text).toContain(`${histogram}_sum{method="GET",route="/healthz"} 0.25\n`);
    expect(text).toContain(`${histogram}_bucket${healthz.replace("%s", "0.1")} 0\n`);
    expect(text).toContain(`${histogram}_bucket${healthz.replace("%s", "0.25")} 1\n`);
    expect(sample(families, "stepwatch_http_requests_total", { method: "POST", status: "404" })).toBe(1);
    expect(sample(families, "stepwatch_http_requests_total", { method: "GET", route: "/*" })).toBe(1);
    expect(families.find((f) => f.name === "stepwatch_ingest_events_total")?.metrics ?? []).toEqual([]);

    now = Date.now();
    await timed.send(makeStep({ id: "step_timed" }));
    const after = await scrape(timed);
    const ingest = after.families.find((f) => f.name === "stepwatch_ingest_events_total");
    expect(ingest?.metrics).toEqual([
      { labels: { outcome: "created", step_status: "in_progress" }, value: "1" },
    ]);
  });

  it("gives each sink's oldest pending delivery its age at scrape time, 0 for a sink with none", async () => {
    const down = await startSinkServer();
    down.fallback = { status: 503, body: "down" };
    const clock = testClock();
    try {
      const aged = await createTestApp(
        store,
        {
          NOTIFY_SINKS: JSON.stringify([
            webhookSink("aged-up", `${hook.url}/in`, sinkSecret),
            webhookSink("aged-down", `${down.url}/in`, sinkSecret),
          ]),
        },
        { metrics: createPromMetrics(), nowMs: clock.nowMs },
      );
      await aged.send(makeStep({ id: "step_aged", status: "completed" }));
      await aged.drain();
      clock.advance(90_500);
      const { families } = await scrape(aged);
      const age = "stepwatch_oldest_pending_delivery_age_seconds";
      expect(sample(families, "stepwatch_deliveries_pending", { sink: "aged-down" })).toBe(1);
      expect(sample(families, age, { sink: "aged-down" })).toBe(90.5);
      expect(sample(families, "stepwatch_deliveries_pending", { sink: "aged-up" })).toBe(0);
      expect(sample(families, age, { sink: "aged-up" })).toBe(0);
    } finally {
      await down.close();
    }
  });

  it("is never public: the API token, or METRICS_TOKEN alone when it is set", async () => {
    expect((await app.app.request("/metrics")).status).toBe(401);
    expect(await status(app, "not-the-token-0123456789")).toBe(401);
    const separate = await createTestApp(store, { METRICS_TOKEN }, { metrics: createPromMetrics() });
    expect(await status(separate, METRICS_TOKEN)).toBe(200);
    expect(await status(separate, TEST_TOKEN)).toBe(401);
  });

  it("is not served where the runtime keeps no counters", async () => {
    const without = await createTestApp(store);
    expect((await without.get("/metrics")).status).toBe(404);
  });
});

describe("the Prometheus exposition's fixed parts", () => {
  it("process metrics under stepwatch_process_; attempts bucketed up to 30 s, sweeps up to 60 s", async () => {
    const metrics = createPromMetrics();
    metrics.deliveryAttempt("slowpoke", "delivered", 20);
    metrics.sweep(45, 3, 0);
    const { body } = await metrics.render([], 0);
    expect(body).toMatch(/^stepwatch_process_process_cpu_user_seconds_total \d/m);
    expect(body).toMatch(/^stepwatch_process_nodejs_heap_size_used_bytes \d/m);
    expect(body).not.toMatch(/^(process|nodejs)_/m);
    const bucket = (name: string, le: string) =>
      Number(
        body.match(
          new RegExp(
            `^${name}_bucket\\{(?:sink="slowpoke",)?le="${le}"(?:,sink="slowpoke")?\\} (\\d+)$`,
            "m",
          ),
        )?.[1],
      );
    expect([
      bucket("stepwatch_delivery_attempt_duration_seconds", "10"),
      bucket("stepwatch_delivery_attempt_duration_seconds", "30"),
    ]).toEqual([0, 1]);
    expect([
      bucket("stepwatch_sweep_duration_seconds", "30"),
      bucket("stepwatch_sweep_duration_seconds", "60"),
    ]).toEqual([0, 1]);
  });
});
