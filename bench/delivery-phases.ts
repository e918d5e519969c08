// Delivery phases of the bench: backlog drain on the Node server (default sweep settings), a
// flaky sink's retries beside a hanging sink, and one Worker cron invocation's drain in workerd.
// State is seeded fast (ingest while the sink answers 503, or store writes); draining is always
// the product's own sweeper, in the real server process or Worker.
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type Delivery, newDelivery } from "../src/domain/delivery.js";
import { createLogger } from "../src/observability/logger.js";
import { createNodeDynamoHandler } from "../src/runtime/node-dynamo-handler.js";
import { createDynamoClient } from "../src/store/dynamo-client.js";
import { DynamoDeliveryStore } from "../src/store/dynamo-delivery-store.js";
import { ensureTable } from "../src/store/ensure-table.js";
import { type BenchChild, RESULT, readJsonLine, spawnTs } from "./child-process.js";
import { cpuMeter, processCpuMs } from "./cpu.js";
import { type BenchStatus, createEventFactory, type EventFactory, type SignedEvent } from "./events.js";
import { outcomeCounter, runUniqueEvents } from "./load.js";
import { type ScriptedSink, startScriptedSink, unitHash } from "./scripted-sink.js";
import { benchStore, snapshotMaker } from "./snapshots.js";

/** Registers a child process so the bench stops it, whatever happens. */
export type Track = (child: BenchChild) => BenchChild;

const CONNECTIONS = 50;
const nowS = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;
const median = (xs: readonly number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
};

/** Polls `check` every `everyMs` until it is true or `timeoutMs` passed; returns whether it became true. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (performance.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

/** Waits until `count()` has not changed for `quietMs` (at most `timeoutMs`). */
export async function settle(count: () => number, quietMs = 300, timeoutMs = 5_000): Promise<void> {
  let last = count();
  let since = performance.now();
  await waitFor(
    () => {
      const now = count();
      if (now !== last) {
        last = now;
        since = performance.now();
      }
      return performance.now() - since >= quietMs;
    },
    timeoutMs,
    25,
  );
}

/** A running stepwatch Node server, started as `npm start` starts it. */
export interface ServerProcess {
  readonly child: BenchChild;
  readonly url: string;
  /** Spawn → first /readyz 200, ms. */
  readonly ms: number;
}

/** Starts `src/runtime/node-main.ts` with `env` on `core` and waits until /readyz answers 200. */
export async function startServerProcess(
  env: Record<string, string>,
  core: number | null,
  track: Track,
): Promise<ServerProcess> {
  const t0 = performance.now();
  const child = track(spawnTs("src/runtime/node-main.ts", [], { core, env }));
  const url = await child.line("stepwatch is listening on ");
  const ready = await waitFor(
    () =>
      fetch(`${url}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      ),
    30_000,
    10,
  );
  if (!ready) throw new Error(`server at ${url} never became ready:\n${child.output().slice(-2000)}`);
  return { child, url, ms: performance.now() - t0 };
}

/** A DynamoDB client as the product builds it, for seeding. */
export function benchClient(endpoint: string): DynamoDBClient {
  return createDynamoClient(
    {
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "bench",
      AWS_SECRET_ACCESS_KEY: "bench",
      DYNAMODB_ENDPOINT: endpoint,
    },
    createNodeDynamoHandler(),
  );
}

/** A pending delivery whose first attempt failed with `error` five seconds ago, due now. */
export function failedOnce(error: string, status: number | null) {
  return (stepId: string, runId: string, sink: string, nowMs: number): Delivery => ({
    ...newDelivery(
      { sink, event: "run_step.completed" },
      { kind: "run_step", id: stepId, runId: runId },
      nowMs - 5_000,
    ),
    attempts: 1,
    lastError: error,
    nextAttemptMs: nowMs,
    log: [{ attempt: 1, at: nowMs - 5_000, status, latencyMs: 3, error }],
  });
}

/**
 * Writes `count` completed 2 KB steps owing notifications to `sinks` (as the ingest path applies
 * them: owed sinks and outbox entry), and for each sink the delivery `delivery` makes, with the
 * product's store classes. Returns the step ids (`step_<prefix><n base 36>`).
 */
export async function seedBacklog(options: {
  readonly client: DynamoDBClient;
  readonly table: string;
  readonly prefix: string;
  readonly count: number;
  readonly sinks: readonly string[];
  readonly delivery: (stepId: string, runId: string, sink: string, nowMs: number) => Delivery;
  readonly concurrency?: number;
}): Promise<string[]> {
  const { client, table, count, sinks } = options;
  await ensureTable(client, table, { retentionDays: 0, logger: createLogger("error") });
  const steps = benchStore(client, table);
  const deliveries = new DynamoDeliveryStore({ client, tableName: table, retentionDays: 0 });
  const make = snapshotMaker("completed", options.prefix);
  const intents = sinks.map((sink) => ({ sink, event: "run_step.completed" as const }));
  const ids: string[] = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const snapshot = make(i, nowS());
      const { outcome } = await steps.apply({ ...snapshot, intents });
      if (outcome !== "created") throw new Error(`seeding: step ${snapshot.step.id} was ${outcome}`);
      for (const sink of sinks) {
        const delivery = options.delivery(snapshot.step.id, snapshot.step.run_id, sink, Date.now());
        if (!(await deliveries.create(delivery))) throw new Error(`seeding: delivery ${sink} exists`);
      }
      ids[i] = snapshot.step.id;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 32 }, worker));
  return ids;
}

// Sends unique events at concurrency 50, pre-signed just before (for `seconds`, or exactly `amount`).
async function sendUnique(
  url: string,
  factory: EventFactory,
  status: BenchStatus,
  how: { seconds: number; expectedRate: number } | { amount: number },
) {
  const count = "amount" in how ? how.amount : Math.ceil(how.expectedRate * how.seconds * 1.3);
  const queue: SignedEvent[] = [];
  const now = nowS();
  for (let i = 0; i < count; i++) queue.push(factory.next(status, now));
  let taken = 0;
  const answers = outcomeCounter();
  const t0 = performance.now();
  const result = await runUniqueEvents({
    url,
    connections: CONNECTIONS,
    seconds: "seconds" in how ? how.seconds : 0,
    ...("amount" in how ? { amount: how.amount } : {}),
    nextEvent: () => queue[taken++] ?? factory.next(status, nowS()),
    onAnswer: (s, body) => answers.record(s, body),
  });
  return { answers, result, elapsedS: (performance.now() - t0) / 1000 };
}

// GET on the operator API.
async function api<T>(url: string, token: string, path: string): Promise<T> {
  const response = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (response.status !== 200) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

interface SinkJson {
  readonly state: string;
  readonly pending: number;
  readonly consecutive_failures: number;
  readonly next_probe_at: number | null;
}

// Ids of the steps the sink has delivered whose id starts with `prefix`.
const deliveredWithPrefix = (sink: ScriptedSink, prefix: string) =>
  [...sink.deliveredAt.keys()].filter((id) => id.startsWith(prefix));

// Share of one core a process used between two moments, from CPU samples taken meanwhile.
function busyShare(samples: readonly [number, number][], from: number, to: number): number | null {
  const start = samples.findLast(([t]) => t <= from) ?? samples[0];
  const end = samples.find(([t]) => t >= to) ?? samples.at(-1);
  if (!start || !end || end[0] <= start[0]) return null;
  return round((end[1] - start[1]) / (end[0] - start[0]), 2);
}

/** What {@link measureDrain} found. */
export interface DrainResult {
  readonly drainPerSecond: number;
  readonly terminalIngestPerSecond: number;
  /** CPU of the server (and of the rest of the machine) while it ingested, and while it drained. */
  readonly ingestCpu: Record<string, number | null>;
  readonly drainCpu: Record<string, number | null>;
  readonly details: Record<string, unknown>;
}

/**
 * `drain_ratio_vs_ingest`. One Node server process with default SWEEP_INTERVAL_S, SWEEP_BUDGET_MS
 * and NOTIFY_CONCURRENCY and one webhook sink on loopback:
 * 1. terminal ingest: new `completed` steps at concurrency 50 with the sink answering 204 (each
 *    event applied and notified promptly), after a warm-up; events/s = applied answers / time;
 * 2. backlog: `backlog` more `completed` steps while the sink answers 503 (it turns `failing`
 *    after 5 failures, after which each delivery is recorded pending without an attempt), until
 *    the operator API shows them all pending;
 * 3. recovery: the sink answers 204 again; the server's own sweeper probes it and drains.
 * Drain rate = deliveries due at recovery / (last − first of them received by the sink). Excluded:
 * the few whose prompt attempt was made before the sink turned failing: they wait for their retry
 * (30 s by the default schedule) whatever the sink does; when they arrived is reported, as is the
 * wait before the first delivery (probe back-off, sweep interval).
 */
export async function measureDrain(options: {
  readonly baseEnv: Record<string, string>;
  readonly sinkSecret: string;
  readonly secret: string;
  readonly core: number | null;
  readonly track: Track;
  /** Other processes of the bench (store, this process), measured beside the server. */
  readonly otherPids: Readonly<Record<string, number>>;
  readonly backlog: number;
  readonly warmupS: number;
  readonly phaseS: number;
  readonly expectedRate: number;
  readonly drainTimeoutMs: number;
  /** Whether to wait for the scheduled retries too (30 s more), or only for what was due at recovery. */
  readonly waitForScheduledRetries: boolean;
  readonly log: (message: string) => void;
}): Promise<DrainResult> {
  const { log } = options;
  const sink = await startScriptedSink(() => 204);
  const env = {
    ...options.baseEnv,
    DYNAMODB_TABLE: "stepwatch_bench_drain",
    NOTIFY_SINKS: JSON.stringify([
      { name: "hook", type: "webhook", url: sink.url, secret: options.sinkSecret },
    ]),
  };
  const token = options.baseEnv.API_TOKEN ?? "";
  const server = await startServerProcess(env, options.core, options.track);
  try {
    const sinkState = () => api<SinkJson>(server.url, token, "/v1/sinks/hook");
    const tag = Date.now().toString(36).slice(-4);
    // 1. Terminal ingest, the sink healthy.
    const ingestFactory = createEventFactory(options.secret, `dri${tag}`);
    await sendUnique(server.url, ingestFactory, "completed", {
      seconds: options.warmupS,
      expectedRate: options.expectedRate,
    });
    await settle(() => sink.received());
    const meter = cpuMeter({ server: server.child.pid, ...options.otherPids });
    const ingest = await sendUnique(server.url, ingestFactory, "completed", {
      seconds: options.phaseS,
      expectedRate: options.expectedRate,
    });
    const ingestCpu = meter.stop();
    const terminalIngestPerSecond = ingest.answers.applied() / ingest.elapsedS;
    log(
      `drain: terminal ingest ${round(terminalIngestPerSecond, 0)} events/s, outcomes ${JSON.stringify(ingest.answers.counts)}`,
    );
    // Prompt attempts that overflowed their lane are left pending to the sweeper: let it take them.
    await settle(() => sink.received(), 500, 10_000);
    const leftPending = (await sinkState()).pending;
    if (leftPending > 0) {
      log(`drain: ${leftPending} deliveries of the ingest phase pending; waiting for the sweeper`);
      await waitFor(async () => (await sinkState()).pending === 0, 40_000, 1_000);
    }

    // 2. The backlog, the sink answering 503.
    sink.answer(() => 503);
    sink.reset();
    const backlogPrefix = `step_bkl${tag}`;
    const backlogFactory = createEventFactory(options.secret, `bkl${tag}`);
    const seeding = await sendUnique(server.url, backlogFactory, "completed", { amount: options.backlog });
    const seeded = await waitFor(async () => (await sinkState()).pending >= options.backlog, 60_000, 500);
    const atRecovery = await sinkState();
    const seedingAttempts = sink.received();
    log(
      `drain: ${options.backlog} terminal events in ${round(seeding.elapsedS, 1)} s with the sink answering 503 ` +
        `(${seedingAttempts} attempts); sink ${atRecovery.state}, ${atRecovery.pending} pending`,
    );
    if (!seeded) log("drain: WARNING: the backlog never showed as pending in full");

    // Deliveries whose prompt attempt was made (answered 503) wait for their retry (30 s ± 10% by
    // the default schedule) whatever the sink does now; the others were due from the start.
    const retryScheduled = new Set(sink.stepsSeen());

    // 3. Recovery: the sweeper (default interval) probes the sink and drains the backlog.
    sink.reset();
    sink.answer(() => 204);
    const recoveredAt = performance.now();
    const drainMeter = cpuMeter({ server: server.child.pid, ...options.otherPids });
    // The server's CPU every 100 ms: how busy its core was while it drained.
    const samples: [number, number][] = [];
    const sampler = setInterval(() => {
      const cpu = processCpuMs(server.child.pid);
      if (cpu !== null) samples.push([performance.now(), cpu]);
    }, 100);
    const dueCount = options.backlog - retryScheduled.size;
    const complete = await waitFor(
      () =>
        options.waitForScheduledRetries
          ? deliveredWithPrefix(sink, backlogPrefix).length >= options.backlog
          : deliveredWithPrefix(sink, backlogPrefix).filter((id) => !retryScheduled.has(id)).length >=
            dueCount,
      options.drainTimeoutMs,
      100,
    );
    clearInterval(sampler);
    const drainCpu = drainMeter.stop();
    const all = [...sink.deliveredAt].filter(([id]) => id.startsWith(backlogPrefix));
    const times = all
      .filter(([id]) => !retryScheduled.has(id))
      .map(([, at]) => at)
      .sort((a, b) => a - b);
    const lastOfAll = Math.max(...all.map(([, at]) => at));
    const allDelivered = all.length >= options.backlog;
    const first = times[0] ?? Number.NaN;
    const last = times.at(-1) ?? Number.NaN;
    const drainS = (last - first) / 1000;
    const drainPerSecond = times.length / drainS;
    // Gaps of more than a second between two deliveries: the sweeper stopped (budget) and waited.
    const gaps = times
      .slice(1)
      .map((t, i) => t - (times[i] as number))
      .filter((gap) => gap > 1000)
      .map((gap) => round(gap / 1000, 1));
    log(
      `drain: ${times.length} deliveries due at recovery delivered in ${round(drainS, 1)} s ` +
        `(${round(drainPerSecond, 0)}/s), the first ${round((first - recoveredAt) / 1000, 1)} s after recovery` +
        (gaps.length > 0 ? `, pauses ${gaps.join(", ")} s` : "") +
        (allDelivered
          ? `; all ${all.length}/${options.backlog} (with ${retryScheduled.size} scheduled retries) ` +
            `${round((lastOfAll - recoveredAt) / 1000, 1)} s after recovery`
          : `; ${retryScheduled.size} scheduled retries not waited for`),
    );
    return {
      drainPerSecond,
      terminalIngestPerSecond,
      ingestCpu,
      drainCpu,
      details: {
        backlog: options.backlog,
        delivered: all.length,
        complete,
        due_at_recovery: times.length,
        due_drain_s: round(drainS, 2),
        due_deliveries_per_s: round(drainPerSecond, 0),
        first_delivery_after_recovery_s: round((first - recoveredAt) / 1000, 2),
        due_delivered_after_recovery_s: round((last - recoveredAt) / 1000, 2),
        server_core_busy_while_draining: busyShare(samples, first, last),
        server_core_busy_while_ingesting: round((ingestCpu.server ?? Number.NaN) / (ingestCpu.wall ?? 1), 2),
        pauses_over_1s: gaps,
        retries_scheduled_at_recovery: retryScheduled.size,
        all_delivered_after_recovery_s: allDelivered ? round((lastOfAll - recoveredAt) / 1000, 2) : null,
        sink_requests_during_drain: sink.received(),
        sink_answers_during_drain: { ...sink.answers },
        drain_server_cpu_ms: drainCpu,
        terminal_ingest_events_per_s: round(terminalIngestPerSecond, 0),
        terminal_ingest_outcomes: ingest.answers.counts,
        terminal_ingest_http_p50_ms: ingest.result.latency.p50,
        terminal_ingest_http_p99_ms: ingest.result.latency.p99,
        terminal_ingest_server_cpu_ms: ingestCpu,
        ingest_deliveries_left_pending: leftPending,
        seeding: {
          events_per_s: round(options.backlog / seeding.elapsedS, 0),
          outcomes: seeding.answers.counts,
          attempts_answered_503: seedingAttempts,
          sink_at_recovery: atRecovery,
        },
        settings: "defaults: SWEEP_INTERVAL_S 15, SWEEP_BUDGET_MS = interval, NOTIFY_CONCURRENCY 16",
      },
    };
  } finally {
    await server.child.stop(15_000);
    await sink.close();
  }
}

/** What {@link measureIsolation} found. */
export interface IsolationResult {
  readonly ratio: number;
  readonly details: Record<string, unknown>;
}

// Share of attempts the flaky sink answers 503.
const FLAKY_SHARE = 0.1;
// Settings of the isolation runs (both configurations): short enough for retries to run in seconds.
const ISOLATION_ENV = {
  SWEEP_INTERVAL_S: "0.2",
  NOTIFY_RETRY_SCHEDULE: Array.from({ length: 10 }, () => "0.5").join(","),
  NOTIFY_TIMEOUT_MS: "2000",
};

/**
 * `isolation_ratio`. `steps` steps whose delivery to a flaky sink failed once (pending retries, due
 * now) are delivered by a fresh Node server's sweeper; the flaky sink answers 503 to a tenth of
 * attempts (a hash of step and attempt, never three in a row). "Beside": the server also
 * has a hanging sink (accepts, never answers, every attempt times out) with the same steps' retries
 * pending; "alone": only the flaky sink. Time = first request to the flaky sink → its last step
 * delivered. Ratio = median time beside ÷ median time alone, over `rounds` alternating pairs,
 * leaving out runs in which the flaky sink was turned `failing` (a 5 s wait for its probe, which
 * has nothing to do with the hanging sink; counted and reported).
 */
export async function measureIsolation(options: {
  readonly baseEnv: Record<string, string>;
  readonly endpoint: string;
  readonly sinkSecret: string;
  readonly core: number | null;
  readonly track: Track;
  readonly steps: number;
  readonly rounds: number;
  readonly timeoutMs: number;
  readonly log: (message: string) => void;
}): Promise<IsolationResult> {
  // Never more than two failures in a row: a sink that fails five times in a row is rightly turned
  // `failing`. (It still is, now and then: see BENCHMARKS.md, "the failure counter".)
  let failuresInARow = 0;
  const flaky = await startScriptedSink((stepId, nth) => {
    const fail = unitHash(`${stepId}#${nth}`) < FLAKY_SHARE && failuresInARow < 2;
    failuresInARow = fail ? failuresInARow + 1 : 0;
    return fail ? 503 : 204;
  });
  const hang = await startScriptedSink(() => "hang");
  const client = benchClient(options.endpoint);
  const runs: Record<string, unknown>[] = [];
  // Run times by configuration, and whether the flaky sink was turned `failing` during the run.
  const times: Record<"alone" | "beside", { ms: number; tripped: boolean }[]> = { alone: [], beside: [] };
  const tag = Date.now().toString(36).slice(-4);
  try {
    for (let round_ = 0; round_ < options.rounds; round_++) {
      const order = round_ % 2 === 0 ? (["alone", "beside"] as const) : (["beside", "alone"] as const);
      for (const mode of order) {
        const table = `stepwatch_bench_iso_${tag}_${round_}_${mode}`;
        const prefix = `iso${tag}${round_}${mode[0]}`;
        const sinks = mode === "beside" ? ["flaky", "hang"] : ["flaky"];
        await seedBacklog({
          client,
          table,
          prefix,
          count: options.steps,
          sinks,
          delivery: (stepId, runId, sink, nowMs) =>
            sink === "flaky"
              ? failedOnce("HTTP 503: unavailable", 503)(stepId, runId, sink, nowMs)
              : failedOnce("timed out after 2000 ms", null)(stepId, runId, sink, nowMs),
        });
        flaky.reset();
        hang.reset();
        const configs = [{ name: "flaky", type: "webhook", url: flaky.url, secret: options.sinkSecret }];
        if (mode === "beside") {
          configs.push({ name: "hang", type: "webhook", url: hang.url, secret: options.sinkSecret });
        }
        const env = {
          ...options.baseEnv,
          ...ISOLATION_ENV,
          DYNAMODB_TABLE: table,
          NOTIFY_SINKS: JSON.stringify(configs),
        };
        const server = await startServerProcess(env, options.core, options.track);
        try {
          const prefixId = `step_${prefix}`;
          const complete = await waitFor(
            () => deliveredWithPrefix(flaky, prefixId).length >= options.steps,
            options.timeoutMs,
            20,
          );
          const delivered = deliveredWithPrefix(flaky, prefixId).map((id) => flaky.deliveredAt.get(id) ?? 0);
          const ms = Math.max(...delivered) - (flaky.firstAt() ?? Number.NaN);
          // A pause this long means the flaky sink was turned `failing` and waited for its probe.
          const pause = flaky.longestPauseMs();
          times[mode].push({ ms, tripped: pause > 2_000 });
          runs.push({
            mode,
            ms: round(ms, 0),
            flaky_turned_failing: pause > 2_000,
            longest_pause_ms: round(pause, 0),
            delivered: delivered.length,
            complete,
            flaky_requests: flaky.received(),
            flaky_answers: { ...flaky.answers },
            hang_requests: hang.received(),
          });
          options.log(
            `isolation (${mode}): ${delivered.length}/${options.steps} retries delivered in ${round(ms, 0)} ms ` +
              `(${flaky.received()} attempts; hanging sink got ${hang.received()})` +
              (pause > 2_000
                ? `; the flaky sink was turned failing (${round(pause / 1000, 1)} s pause)`
                : ""),
          );
        } finally {
          await server.child.stop(5_000);
        }
      }
    }
    // Runs in which the flaky sink was turned `failing` (see BENCHMARKS.md, "the failure counter")
    // wait 5 s for a probe whichever configuration they are in: they are left out of the ratio
    // unless a configuration has no other run.
    const clean = (mode: "alone" | "beside") => {
      const untripped = times[mode].filter((t) => !t.tripped).map((t) => t.ms);
      return untripped.length > 0 ? untripped : times[mode].map((t) => t.ms);
    };
    const all = (mode: "alone" | "beside") => times[mode].map((t) => t.ms);
    return {
      ratio: median(clean("beside")) / median(clean("alone")),
      details: {
        steps: options.steps,
        median_ms_alone: round(median(clean("alone")), 0),
        median_ms_beside: round(median(clean("beside")), 0),
        runs_where_flaky_sink_turned_failing: {
          alone: times.alone.filter((t) => t.tripped).length,
          beside: times.beside.filter((t) => t.tripped).length,
        },
        ratio_over_all_runs: round(median(all("beside")) / median(all("alone")), 3),
        runs,
        settings: {
          ...ISOLATION_ENV,
          NOTIFY_CONCURRENCY: "16 (default)",
          flaky: `503 for ${FLAKY_SHARE * 100}% of attempts (hash of step id and attempt; never 3 in a row), else 204`,
        },
      },
    };
  } finally {
    client.destroy();
    await Promise.all([flaky.close(), hang.close()]);
  }
}

/** What {@link measureWorkerDrain} found. */
export interface WorkerDrainResult {
  readonly delivered: number;
  readonly details: Record<string, unknown>;
}

/**
 * `drain_per_scheduled_invocation`. A child process (`bench/worker-drain-main.ts`) seeds `backlog`
 * pending deliveries (first attempt failed, due now) with the store classes, starts the Worker in
 * workerd through wrangler (as the tests do), runs its `scheduled` handler once
 * (GET /__scheduled, 200 once it finished) and reports; the figure is what the loopback sink
 * received (2xx, distinct steps) during that one invocation.
 */
export async function measureWorkerDrain(options: {
  readonly endpoint: string;
  readonly secret: string;
  readonly sinkSecret: string;
  readonly core: number | null;
  readonly track: Track;
  readonly backlog: number;
  readonly log: (message: string) => void;
}): Promise<WorkerDrainResult> {
  const sink = await startScriptedSink(() => 204);
  const tag = Date.now().toString(36).slice(-4);
  const prefix = `wkd${tag}`;
  const child = options.track(
    spawnTs(
      "bench/worker-drain-main.ts",
      ["--endpoint", options.endpoint, "--table", `stepwatch_bench_worker_${tag}`, "--sink-url", sink.url],
      {
        core: options.core,
        env: {
          BENCH_BACKLOG: String(options.backlog),
          BENCH_PREFIX: prefix,
          BENCH_WEBHOOK_SECRET: options.secret,
          BENCH_SINK_SECRET: options.sinkSecret,
        },
      },
    ),
  );
  try {
    const result = await readJsonLine<Record<string, unknown>>(child, RESULT, 300_000);
    const delivered = deliveredWithPrefix(sink, `step_${prefix}`).length;
    options.log(
      `worker: one scheduled invocation delivered ${delivered} of ${options.backlog} ` +
        `(${JSON.stringify(result)}; sink got ${sink.received()} requests)`,
    );
    return {
      delivered,
      details: {
        backlog: options.backlog,
        delivered,
        sink_requests: sink.received(),
        sink_answers: { ...sink.answers },
        ...result,
      },
    };
  } finally {
    await child.stop(20_000);
    await sink.close();
  }
}
