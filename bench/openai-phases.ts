// Phases of the bench for OpenAI's platform webhooks (SPEC §9, issue 20), each on a Node server
// started as `npm start` starts it, with OPENAI_WEBHOOK_SECRET, OPENAI_API_KEY and OPENAI_BASE_URL
// pointing at the loopback stand-in of OpenAI's API (test/support/fake-openai.ts, in the bench
// process on the load core), so every accepted event is hydrated after its answer, as in
// production: fetched, stored (R# item), its V# item settled, and notified to a webhook sink.
// - ack: thin events acknowledged/s at c=50 beside run step events/s on the same server,
//   alternating, with the hydrations of one phase finished before the next starts;
// - slow: the answer's latency at c=50 while every API call takes 300 ms;
// - drain: a steady stream of events, an API outage, then hydrations/s until the events that
//   arrived before the recovery are all hydrated, ÷ the arrival rate.
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { type FakeOpenAi, startFakeOpenAi } from "../test/support/fake-openai.js";
import { cpuMeter } from "./cpu.js";
import { startServerProcess, type Track, waitFor } from "./delivery-phases.js";
import { createEventFactory, type SignedEvent } from "./events.js";
import { startLatencySink } from "./latency-sink.js";
import { outcomeCounter, runUniqueEvents } from "./load.js";
import { createThinEventFactory, OPENAI_PATH, RESPONSE_BYTES, responseTemplate } from "./openai-events.js";

const CONNECTIONS = 50;
const API_KEY = "sk-bench-0123456789abcdef";
const nowS = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** What every OpenAI phase needs from the bench. */
export interface OpenAiPhaseOptions {
  /** The bench's server environment (store, credentials, WEBHOOK_SECRET, API_TOKEN). */
  readonly baseEnv: Record<string, string>;
  /** WEBHOOK_SECRET of `baseEnv`: signs the run step events compared with. */
  readonly stepSecret: string;
  readonly core: number | null;
  readonly track: Track;
  /** Processes whose CPU is reported beside the server's (dynalite, the bench). */
  readonly otherPids: Record<string, number>;
  readonly log: (message: string) => void;
}

/** One measured load phase. */
export interface LoadRun {
  readonly route: "run_steps" | "openai";
  readonly events_per_s: number;
  readonly outcomes: Record<string, number>;
  readonly errors: number;
  readonly http_latency_p50_ms: number;
  readonly http_latency_p99_ms: number;
  readonly http_latency_max_ms: number;
  /** Calls the stand-in answered during the measured window (hydrations, a few of them repeated). */
  readonly api_calls_during: number;
  readonly cpu_ms: Record<string, number | null>;
}

/** What {@link measureOpenAiAck} reports. */
export interface OpenAiAckResult {
  /** Mean thin events acknowledged/s ÷ mean run step events/s, same server, alternating. */
  readonly ratio: number;
  readonly ackPerSecond: number;
  readonly runStepPerSecond: number;
  /** p99 of the answer while the stand-in takes 300 ms per call. */
  readonly slowP99Ms: number;
  readonly cpu: Record<string, number | null>[];
  readonly details: Record<string, unknown>;
}

// A stand-in serving a fresh 20 KB response per id (shallow copies of one template: the same bytes,
// its own id), so every event's hydration stores a response of its own.
async function startStandIn(): Promise<{ fake: FakeOpenAi; serve: (id: string) => void }> {
  const fake = await startFakeOpenAi({ apiKey: API_KEY });
  const template = responseTemplate();
  return { fake, serve: (id) => fake.responses.set(id, { ...template, id }) };
}

function openAiEnv(
  options: OpenAiPhaseOptions,
  table: string,
  openAiSecret: string,
  fake: FakeOpenAi,
  sinkUrl: string,
) {
  return {
    ...options.baseEnv,
    DYNAMODB_TABLE: table,
    OPENAI_WEBHOOK_SECRET: openAiSecret,
    OPENAI_API_KEY: API_KEY,
    OPENAI_BASE_URL: fake.url,
    // A webhook sink with the default subscriptions: every response.completed is notified.
    NOTIFY_SINKS: JSON.stringify([
      { name: "hook", type: "webhook", url: sinkUrl, secret: generateWebhookSecret() },
    ]),
  };
}

/**
 * Thin OpenAI events against run step events on one server (own table), then the answer's
 * latency with a slow API. `rounds` 1: run steps, thin events; 2: run steps, thin, thin, run steps.
 */
export async function measureOpenAiAck(
  options: OpenAiPhaseOptions & {
    readonly warmupS: number;
    readonly serverWarmupS: number;
    readonly phaseS: number;
    readonly rounds: 1 | 2;
    /** Longest wait for one phase's hydrations to finish before the next phase. */
    readonly settleTimeoutMs: number;
  },
): Promise<OpenAiAckResult> {
  const { log } = options;
  const { fake, serve } = await startStandIn();
  const sink = await startLatencySink();
  const openAiSecret = generateWebhookSecret();
  try {
    const server = await startServerProcess(
      openAiEnv(options, "stepwatch_bench_openai", openAiSecret, fake, sink.url),
      options.core,
      options.track,
    );
    // Accepted events whose response the stand-in has not served yet. Counted by id, not by calls:
    // a sweep also fetches events whose first hydration is still queued in the lane (their V# item
    // is due from the start), so calls outnumber events.
    const unhydrated = new Set<string>();
    let phaseNo = 0;
    const pids = { server: server.child.pid, ...options.otherPids };
    // Waits until the stand-in has answered a fetch for every accepted event and the sink has
    // stopped receiving: the next phase does not pay for this one's hydrations.
    const settleHydrations = async (timeoutMs = options.settleTimeoutMs) => {
      const t0 = performance.now();
      const done = await waitFor(
        () => {
          for (const id of unhydrated) if (fake.count(`/v1/responses/${id}`) > 0) unhydrated.delete(id);
          return unhydrated.size === 0;
        },
        timeoutMs,
        100,
      );
      let last = sink.received();
      await waitFor(
        async () => {
          await sleep(300);
          const now = sink.received();
          const quiet = now === last;
          last = now;
          return quiet;
        },
        10_000,
        0,
      );
      return { ms: round(performance.now() - t0, 0), complete: done, left: unhydrated.size };
    };
    const drive = async (route: LoadRun["route"], seconds: number, expectedRate: number) => {
      const label = `${route === "openai" ? "oa" : "os"}${phaseNo++}x`;
      const next =
        route === "openai"
          ? (() => {
              const factory = createThinEventFactory(openAiSecret, label, serve);
              return (now: number) => factory.next(now);
            })()
          : (() => {
              const factory = createEventFactory(options.stepSecret, label);
              return (now: number) => factory.next("in_progress", now);
            })();
      // Pre-signed just before the phase (well within the 300 s tolerance), as the ingest phases do.
      const queue: SignedEvent[] = [];
      const now = nowS();
      for (let i = 0; i < Math.ceil(expectedRate * seconds * 1.3); i++) queue.push(next(now));
      let taken = 0;
      const answers = outcomeCounter();
      const fetchedBefore = fake.requests.length;
      const meter = cpuMeter(pids);
      const t0 = performance.now();
      const result = await runUniqueEvents({
        url: server.url,
        connections: CONNECTIONS,
        seconds,
        ...(route === "openai" ? { path: OPENAI_PATH } : {}),
        nextEvent: () => queue[taken++] ?? next(nowS()),
        onAnswer: (status, body, id) => {
          if (answers.record(status, body) === "accepted") unhydrated.add(id);
        },
      });
      const elapsedS = (performance.now() - t0) / 1000;
      const cpu = meter.stop();
      const ok = route === "openai" ? (answers.counts.accepted ?? 0) : answers.applied();
      const run: LoadRun = {
        route,
        events_per_s: round(ok / elapsedS, 0),
        outcomes: answers.counts,
        errors: result.errors + result.timeouts,
        http_latency_p50_ms: result.latency.p50,
        http_latency_p99_ms: result.latency.p99,
        http_latency_max_ms: result.latency.max,
        api_calls_during: fake.requests.length - fetchedBefore,
        cpu_ms: cpu,
      };
      return { run, cpu, rate: ok / elapsedS };
    };

    // Warm-up of both routes (the server's JIT), then their hydrations finished.
    const warm = await drive("run_steps", options.serverWarmupS, 800);
    await drive("openai", options.warmupS, warm.rate);
    const warmSettle = await settleHydrations();
    const order: LoadRun["route"][] =
      options.rounds === 1 ? ["run_steps", "openai"] : ["run_steps", "openai", "openai", "run_steps"];
    const runs: LoadRun[] = [];
    const settles: unknown[] = [warmSettle];
    const cpus: Record<string, number | null>[] = [];
    let rate = warm.rate;
    for (const route of order) {
      const { run, cpu, rate: measured } = await drive(route, options.phaseS, rate);
      rate = Math.max(rate, measured);
      runs.push(run);
      cpus.push(cpu);
      log(
        `openai ack phase: ${route} ${run.events_per_s} events/s, p99 ${run.http_latency_p99_ms} ms, ` +
          `${run.api_calls_during} API calls during it`,
      );
      if (route === "openai") settles.push(await settleHydrations());
    }

    // The answer with a slow API: every fetch takes 300 ms, the fetch lane stays full, the answers
    // must not notice. Its hydrations are left to run out (and counted), not waited for in full.
    fake.latencyMs = 300;
    const slowWarm = await drive("openai", options.warmupS, rate);
    const slow = await drive("openai", options.phaseS, rate);
    cpus.push(slow.cpu);
    fake.latencyMs = 0;
    // Only a look at how fast the lane's queue shrinks: the server is stopped next anyway.
    const slowSettle = await settleHydrations(15_000);
    log(
      `openai slow API (300 ms): ${slow.run.events_per_s} acks/s, p50 ${slow.run.http_latency_p50_ms} ms, ` +
        `p99 ${slow.run.http_latency_p99_ms} ms; ${slow.run.api_calls_during} API calls during it`,
    );
    await server.child.stop();

    const ack = mean(runs.filter((r) => r.route === "openai").map((r) => r.events_per_s));
    const steps = mean(runs.filter((r) => r.route === "run_steps").map((r) => r.events_per_s));
    return {
      ratio: ack / steps,
      ackPerSecond: ack,
      runStepPerSecond: steps,
      slowP99Ms: slow.run.http_latency_p99_ms,
      cpu: cpus,
      details: {
        response_json_bytes: RESPONSE_BYTES,
        order,
        runs,
        hydration_settle_after_phase: settles,
        slow_api: {
          api_latency_ms: 300,
          warmup: slowWarm.run,
          measured: slow.run,
          settle_after: slowSettle,
        },
        notifications_received: sink.received(),
      },
    };
  } finally {
    await fake.close();
    await sink.close();
  }
}

/** What {@link measureHydrationDrain} reports. */
export interface HydrationDrainResult {
  /** Hydrations/s from the recovery until the backlog was hydrated (or the cap) ÷ arrivals/s then. */
  readonly ratio: number | null;
  readonly details: Record<string, unknown>;
  readonly cpu: Record<string, number | null>;
}

/**
 * A steady stream of thin events at `rate`/s to a fresh server (own table, default sweep
 * settings); after `beforeS` the API goes down (sockets destroyed on arrival) for `outageS`, then
 * comes back. The backlog is every event sent before the recovery and not hydrated before the
 * outage; the window runs from the recovery until the last of it is hydrated, `capS` at most.
 * Hydrations are the stand-in's answers (after the recovery every call succeeds).
 */
export async function measureHydrationDrain(
  options: OpenAiPhaseOptions & {
    readonly rate: number;
    readonly beforeS: number;
    readonly outageS: number;
    readonly capS: number;
  },
): Promise<HydrationDrainResult> {
  const { log } = options;
  const { fake, serve } = await startStandIn();
  const sink = await startLatencySink();
  const openAiSecret = generateWebhookSecret();
  try {
    const server = await startServerProcess(
      openAiEnv(options, "stepwatch_bench_hydrate", openAiSecret, fake, sink.url),
      options.core,
      options.track,
    );
    const factory = createThinEventFactory(openAiSecret, `hd${Date.now().toString(36)}`, serve);
    const path = (id: string) => `/v1/responses/${id}`;
    const sent: { id: string; at: number }[] = [];
    const answers = outcomeCounter();
    let stop = false;
    const inFlight = new Set<Promise<void>>();
    // Arrivals at a steady rate, each event sent at its time (not in bursts), answers not awaited.
    const arrivals = (async () => {
      const t0 = performance.now();
      while (!stop) {
        const due = Math.floor(((performance.now() - t0) / 1000) * options.rate);
        while (sent.length < due) {
          const event = factory.next(nowS());
          sent.push({ id: event.stepId, at: performance.now() });
          const request = fetch(`${server.url}${OPENAI_PATH}`, {
            method: "POST",
            headers: event.headers,
            body: event.body,
          })
            .then(async (response) => {
              answers.record(response.status, await response.text());
            })
            .catch(() => {
              answers.record(0, "");
            })
            .finally(() => inFlight.delete(request));
          inFlight.add(request);
        }
        await sleep(5);
      }
      await Promise.all(inFlight);
    })();

    await sleep(options.beforeS * 1000);
    // Hydrated before the outage: the API was up, so every call for them succeeded.
    const hydratedBefore = new Set(sent.filter((e) => fake.count(path(e.id)) > 0).map((e) => e.id));
    fake.outage = "destroy";
    const fetchedAtOutage = fake.requests.length;
    log(`hydration drain: API down for ${options.outageS} s, events arriving at ${options.rate}/s`);
    await sleep(options.outageS * 1000);
    fake.outage = "off";
    const recoveredAt = performance.now();
    const meter = cpuMeter({ server: server.child.pid, ...options.otherPids });
    const fetchedAtRecovery = fake.requests.length;
    const sentAtRecovery = sent.length;
    const backlog = new Map<string, number>();
    for (const e of sent.slice(0, sentAtRecovery)) {
      if (!hydratedBefore.has(e.id)) backlog.set(e.id, fake.count(path(e.id)));
    }
    const backlogSize = backlog.size;
    const attemptsDuringOutage = fetchedAtRecovery - fetchedAtOutage;
    // Backlog hydrated per 5 s after the recovery, and when the first and last of it were.
    const series: number[] = [];
    let firstAt: number | null = null;
    let lastAt: number | null = null;
    const capAt = recoveredAt + options.capS * 1000;
    while (backlog.size > 0 && performance.now() < capAt) {
      await sleep(250);
      const at = performance.now();
      for (const [id, before] of backlog) {
        if (fake.count(path(id)) > before) {
          backlog.delete(id);
          firstAt ??= at;
          lastAt = at;
          const bucket = Math.floor((at - recoveredAt) / 5000);
          while (series.length <= bucket) series.push(0);
          series[bucket] = (series[bucket] ?? 0) + 1;
        }
      }
    }
    const endAt = performance.now();
    const fetchedInWindow = fake.requests.length - fetchedAtRecovery;
    const arrivedInWindow = sent.filter((e) => e.at >= recoveredAt && e.at <= endAt).length;
    const cpu = meter.stop();
    stop = true;
    await arrivals;
    const windowS = (endAt - recoveredAt) / 1000;
    const hydrationsPerS = fetchedInWindow / windowS;
    const arrivalsPerS = arrivedInWindow / windowS;
    // What the server itself says once arrivals stopped and its last prompt fetches ended.
    await sleep(1000);
    const sources = await fetch(`${server.url}/v1/sources`, {
      headers: { authorization: `Bearer ${options.baseEnv.API_TOKEN ?? ""}` },
    })
      .then((r) => r.json() as Promise<unknown>)
      .catch((error: unknown) => ({ error: String(error) }));
    await server.child.stop();
    const drained = backlog.size === 0;
    log(
      `hydration drain: backlog ${backlogSize}, ${drained ? "hydrated" : `${backlog.size} left`} ` +
        `${round(windowS, 1)} s after recovery; ${round(hydrationsPerS, 0)} hydrations/s vs ${round(arrivalsPerS, 0)} arrivals/s`,
    );
    return {
      ratio: arrivalsPerS > 0 ? hydrationsPerS / arrivalsPerS : null,
      cpu,
      details: {
        arrival_rate_per_s: options.rate,
        api_up_before_s: options.beforeS,
        outage_s: options.outageS,
        outage_kind: "sockets destroyed on arrival",
        cap_s: options.capS,
        events_sent: sent.length,
        outcomes: answers.counts,
        backlog_at_recovery: backlogSize,
        fetch_attempts_during_outage: attemptsDuringOutage,
        backlog_drained: drained,
        backlog_left_at_cap: backlog.size,
        window_s: round(windowS, 1),
        hydrations_in_window: fetchedInWindow,
        hydrations_per_s: round(hydrationsPerS, 1),
        arrivals_per_s: round(arrivalsPerS, 1),
        backlog_hydrations_per_s: round((backlogSize - backlog.size) / windowS, 1),
        first_backlog_hydration_after_recovery_s:
          firstAt === null ? null : round((firstAt - recoveredAt) / 1000, 1),
        last_backlog_hydration_after_recovery_s:
          lastAt === null ? null : round((lastAt - recoveredAt) / 1000, 1),
        backlog_hydrated_per_5s: series,
        sources_after: sources,
        notifications_received: sink.received(),
      },
    };
  } finally {
    await fake.close();
    await sink.close();
  }
}
