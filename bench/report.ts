/** The figures the issue asks for, keyed as in the JSON output. */
export interface Figures {
  readonly ingest_ratio_vs_store_ceiling: number;
  readonly cpu_ms_per_event: number;
  readonly http_path_ratio_vs_bare_hono: number;
  readonly writes_per_event_nonterminal: number;
  readonly writes_per_event_terminal: number;
  readonly reads_per_applied_event: number;
  readonly worker_bundle_gzip_kib: number | null;
  readonly notify_latency_p50_ms: number;
  readonly notify_latency_p99_ms: number;
  readonly startup_ms: number;
  readonly drain_ratio_vs_ingest: number | null;
  readonly drain_per_scheduled_invocation: number | null;
  readonly isolation_ratio: number | null;
  readonly wru_per_step_lifecycle: number | null;
  readonly wru_per_retry_cycle: number | null;
  readonly cpu_ratio_mixed_vs_created: number | null;
  readonly node_idle_rss_mib: number;
  readonly node_idle_rss_mib_npm_start: number;
  readonly node_ready_ms: number;
  readonly node_ready_ms_npm_start: number;
  readonly prod_install_mib: number | null;
  readonly worker_cpu_ms_per_event: number | null;
  readonly relay_overhead_ms_p50: number | null;
  readonly relay_overhead_ms_p99: number | null;
  readonly tap_cpu_ms_per_forwarded_event: number | null;
  readonly openai_ack_ratio_vs_run_steps: number | null;
  readonly openai_ack_ms_p99: number | null;
  readonly hydration_drain_ratio: number | null;
  readonly wru_per_response_lifecycle: number | null;
}

interface Goal {
  readonly what: string;
  readonly text: string;
  /** true / false, or null when the figure is only reported or could not be measured. */
  met(value: number | null): boolean | null;
}

const atLeast = (limit: number) => (value: number | null) =>
  value === null || Number.isNaN(value) ? null : value >= limit;
const atMost = (limit: number) => (value: number | null) =>
  value === null || Number.isNaN(value) ? null : value <= limit;

/** Each figure's goal, as the issue sets it. */
export const GOALS: Readonly<Record<keyof Figures, Goal>> = {
  ingest_ratio_vs_store_ceiling: {
    what: "ingested events/s (c=50, HTTP end to end) ÷ raw-client conditional updates/s on the same dynalite",
    text: "≥ 0.8",
    met: atLeast(0.8),
  },
  cpu_ms_per_event: {
    what: "server CPU (user+sys) per applied event, ms",
    text: "≤ 0.35",
    met: atMost(0.35),
  },
  http_path_ratio_vs_bare_hono: {
    what: "ingest path without the store call ÷ bare Hono reading the same body, req/s",
    text: "≥ 0.6",
    met: atLeast(0.6),
  },
  writes_per_event_nonterminal: {
    what: "DynamoDB writes per in_progress event",
    text: "1",
    met: (v) => v === 1,
  },
  writes_per_event_terminal: {
    what: "DynamoDB writes per terminal event (2xx sink)",
    text: "≤ 2",
    met: atMost(2),
  },
  reads_per_applied_event: { what: "DynamoDB reads per applied event", text: "0", met: (v) => v === 0 },
  worker_bundle_gzip_kib: { what: "minified Worker bundle, gzip, KiB", text: "≤ 90", met: atMost(90) },
  notify_latency_p50_ms: {
    what: "terminal event accepted → loopback sink received, p50, at 100 events/s, ms",
    text: "≤ 25",
    met: atMost(25),
  },
  notify_latency_p99_ms: { what: "same, p99, ms", text: "≤ 100", met: atMost(100) },
  startup_ms: {
    what: "Node server start → /readyz 200 (table present), ms",
    text: "report",
    met: () => null,
  },
  node_idle_rss_mib: {
    what: "`node dist/node-main.js`, embedded store, idle: resident memory, MiB",
    text: "report",
    met: () => null,
  },
  node_idle_rss_mib_npm_start: {
    what: "same under `npm start` (npm and node), MiB",
    text: "report",
    met: () => null,
  },
  node_ready_ms: {
    what: "`node dist/node-main.js` spawn → /readyz 200, ms",
    text: "report",
    met: () => null,
  },
  node_ready_ms_npm_start: { what: "same under `npm start`, ms", text: "report", met: () => null },
  prod_install_mib: { what: "`npm ci --omit=dev`: node_modules, MiB", text: "report", met: () => null },
  worker_cpu_ms_per_event: {
    what: "workerd's process CPU per ingested in_progress event (wrangler's local runtime, 16 at a time), ms",
    text: "report (beside cpu_ms_per_event)",
    met: () => null,
  },
  relay_overhead_ms_p50: {
    what:
      "latency the tap (its own process, with its spool) adds to each streamed chunk, p50, ms (a chunk " +
      "a millisecond, one in ten a run step event)",
    text: "≤ 1",
    met: atMost(1),
  },
  relay_overhead_ms_p99: { what: "same, p99, ms", text: "≤ 5", met: atMost(5) },
  tap_cpu_ms_per_forwarded_event: {
    what: "the tap's CPU per run step event forwarded (parse, spool, sign, send; every chunk one), ms",
    text: "report",
    met: () => null,
  },
  drain_ratio_vs_ingest: {
    what:
      "deliveries/s while a backlog drains to a recovered loopback sink (Node server, default sweep " +
      "settings) ÷ terminal events/s the same server ingests",
    text: "≥ 1.0",
    met: atLeast(1),
  },
  drain_per_scheduled_invocation: {
    what: "deliveries made by one Worker `scheduled` invocation in workerd, backlog of 2,000 pending",
    text: "≥ 1000",
    met: atLeast(1000),
  },
  isolation_ratio: {
    what: "time to deliver 300 steps' retries to a flaky sink beside a hanging sink ÷ the same alone",
    text: "≤ 1.25",
    met: atMost(1.25),
  },
  wru_per_step_lifecycle: {
    what:
      "DynamoDB write units (table + indexes, AWS size rules) of a 2 KB step: in_progress, completed, " +
      "delivered to one sink at the first attempt",
    text: "≤ 9",
    met: atMost(9),
  },
  wru_per_retry_cycle: {
    what: "write units of one failed attempt (503), retried by a sweep and delivered",
    text: "report",
    met: () => null,
  },
  cpu_ratio_mixed_vs_created: {
    what:
      "server CPU per event, mix (in_progress then terminal, 20% redelivered, one webhook sink) ÷ " +
      "cpu_ms_per_event (created only), c=50",
    text: "report; ≤ 2.0",
    met: atMost(2),
  },
  openai_ack_ratio_vs_run_steps: {
    what:
      "thin OpenAI events acknowledged/s by POST /v1/webhooks/openai (c=50, each hydrated after its answer: " +
      "20 KB response fetched, stored, notified) ÷ run step events/s on the same server, alternating",
    text: "≥ 0.9",
    met: atLeast(0.9),
  },
  openai_ack_ms_p99: {
    what: "answer latency of POST /v1/webhooks/openai at c=50 while every API call takes 300 ms, p99, ms",
    text: "≤ 50",
    met: atMost(50),
  },
  hydration_drain_ratio: {
    what:
      "hydrations/s after an API outage (20 s, shortened from 60; events arriving at 100/s throughout) until " +
      "the events that arrived before the recovery are hydrated ÷ arrivals/s then (default sweep settings)",
    text: "≥ 1.0",
    met: atLeast(1),
  },
  wru_per_response_lifecycle: {
    what:
      "write units (table + indexes) of a 10-item 20 KB response: thin event recorded, hydrated, notified " +
      "to one webhook sink",
    text: "report",
    met: () => null,
  },
};

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + " ".repeat(width - text.length);
}

/** The human-readable report: the figures against their goals, then what they were measured on. */
export function formatTable(
  figures: Figures,
  environment: { node: string; cpu_model: string; cpu_count: number; placement: { note: string } },
  details: {
    ingest_events_per_s: number;
    store_ceiling_ops_per_s: number;
    total_s: number;
    summary_lines?: readonly string[];
  },
  busyPhases: readonly string[],
): string {
  const rows = (Object.keys(GOALS) as (keyof Figures)[]).map((key) => {
    const value = figures[key];
    const met = GOALS[key].met(value);
    return [
      key,
      value === null ? "n/a" : String(value),
      GOALS[key].text,
      met === null ? "–" : met ? "yes" : "NO",
    ];
  });
  const header = ["figure", "value", "goal", "met"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => pad(c, widths[i] ?? 0)).join("  ");
  return [
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    "",
    `ingest ${details.ingest_events_per_s} events/s vs store ceiling ${details.store_ceiling_ops_per_s} ops/s`,
    ...(details.summary_lines ?? []),
    `${environment.cpu_model} × ${environment.cpu_count}, Node ${environment.node}; ${environment.placement.note}`,
    `bench took ${details.total_s} s; full results in bench/results/latest.json`,
    ...(busyPhases.length > 0
      ? [
          `WARNING: other processes used > 10% of a core during: ${busyPhases.join(", ")}; re-run on a quiet machine`,
        ]
      : []),
  ].join("\n");
}
