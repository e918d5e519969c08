import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { TAKEN_OPENAI_EVENT_TYPES } from "../domain/openai/openai-webhook-event.js";
import { type Metrics, QUARANTINE_COUNT_LIMIT, type SinkGauges } from "../observability/metrics.js";

const SINK_STATES = ["healthy", "failing", "disabled"] as const;

/**
 * {@link Metrics} on prom-client (the Prometheus client for Node), in a registry of its own so that
 * several instances in one process (tests) never share counters. Node only: the Worker bundle does
 * not carry it.
 */
const TAKEN_TYPES = new Set(Object.keys(TAKEN_OPENAI_EVENT_TYPES));

export function createPromMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "stepwatch_process_" });
  const registers = [registry];
  const http = new Counter({
    name: "stepwatch_http_requests_total",
    help: "HTTP requests answered, by method, route pattern and status.",
    labelNames: ["method", "route", "status"],
    registers,
  });
  const httpSeconds = new Histogram({
    name: "stepwatch_http_request_duration_seconds",
    help: "Time to answer an HTTP request, by method and route pattern.",
    labelNames: ["method", "route"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const ingest = new Counter({
    name: "stepwatch_ingest_events_total",
    help: "Run step webhooks by outcome (created, updated, unchanged, stale, conflict, ignored, or the error code of a refusal) and step status.",
    labelNames: ["outcome", "step_status"],
    registers,
  });
  const attempts = new Counter({
    name: "stepwatch_delivery_attempts_total",
    help: "Notification delivery attempts by sink and outcome (delivered, retry, dead, parked).",
    labelNames: ["sink", "outcome"],
    registers,
  });
  const attemptSeconds = new Histogram({
    name: "stepwatch_delivery_attempt_duration_seconds",
    help: "Time of one delivery attempt, by sink.",
    labelNames: ["sink"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  const sweeps = new Counter({ name: "stepwatch_sweeps_total", help: "Sweeps run.", registers });
  const sweepSeconds = new Histogram({
    name: "stepwatch_sweep_duration_seconds",
    help: "Time of one sweep.",
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60],
    registers,
  });
  const sweepAttempts = new Counter({
    name: "stepwatch_sweep_attempts_total",
    help: "Delivery attempts made by sweeps.",
    registers,
  });
  const recovered = new Counter({
    name: "stepwatch_outbox_recovered_total",
    help: "Deliveries the outbox recovery wrote for transitions whose instance died before recording them.",
    registers,
  });
  const pending = new Gauge({
    name: "stepwatch_deliveries_pending",
    help: "Pending deliveries (parked ones included) per sink, read from the store at scrape time.",
    labelNames: ["sink"],
    registers,
  });
  const dead = new Gauge({
    name: "stepwatch_deliveries_dead",
    help: "Dead deliveries per sink, read from the store at scrape time.",
    labelNames: ["sink"],
    registers,
  });
  const oldest = new Gauge({
    name: "stepwatch_oldest_pending_delivery_age_seconds",
    help: "Age of each sink's oldest pending delivery (0 without any).",
    labelNames: ["sink"],
    registers,
  });
  const state = new Gauge({
    name: "stepwatch_sink_state",
    help: "1 for the state each sink is in, 0 for the others.",
    labelNames: ["sink", "state"],
    registers,
  });
  const openAiEvents = new Counter({
    name: "stepwatch_openai_events_total",
    help: "OpenAI platform events received, by type (taken ones; every other type counts as `other`) and outcome.",
    labelNames: ["type", "outcome"],
    registers,
  });
  const hydrations = new Counter({
    name: "stepwatch_hydrations_total",
    help: "Fetches of an OpenAI event's subject from the API, by subject kind and outcome.",
    labelNames: ["kind", "outcome"],
    registers,
  });
  const hydrationSeconds = new Histogram({
    name: "stepwatch_hydration_seconds",
    help: "Latency of one fetch from OpenAI's API.",
    labelNames: ["kind"],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  const quarantine = new Gauge({
    name: "stepwatch_quarantined_requests",
    help: `Signed requests kept in the quarantine (replayed ones included until they expire), counted up to ${QUARANTINE_COUNT_LIMIT} at scrape time.`,
    registers,
  });
  return {
    httpRequest(method, route, status, seconds) {
      http.inc({ method, route, status: String(status) });
      httpSeconds.observe({ method, route }, seconds);
    },
    ingest(outcome, stepStatus) {
      ingest.inc({ outcome, step_status: stepStatus ?? "none" });
    },
    openAiEvent(type, outcome) {
      // Ignored types are any an OpenAI account can send: one label value for all of them keeps
      // the series bounded whatever a sender invents.
      openAiEvents.inc({ type: TAKEN_TYPES.has(type) ? type : "other", outcome });
    },
    hydration(kind, outcome, seconds) {
      hydrations.inc({ kind, outcome });
      hydrationSeconds.observe({ kind }, seconds);
    },
    deliveryAttempt(sink, outcome, seconds) {
      attempts.inc({ sink, outcome });
      attemptSeconds.observe({ sink }, seconds);
    },
    sweep(seconds, made, wrote) {
      sweeps.inc();
      sweepSeconds.observe(seconds);
      sweepAttempts.inc(made);
      recovered.inc(wrote);
    },
    async render(sinks: readonly SinkGauges[], quarantined: number) {
      quarantine.set(quarantined);
      for (const sink of sinks) {
        pending.set({ sink: sink.name }, sink.pending);
        dead.set({ sink: sink.name }, sink.dead);
        oldest.set({ sink: sink.name }, sink.oldestPendingAgeS ?? 0);
        for (const s of SINK_STATES) state.set({ sink: sink.name, state: s }, sink.state === s ? 1 : 0);
      }
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
