// A realistic mix of run step events for the CPU figure: each step in_progress, then its terminal
// snapshot, and every fifth request a redelivery of an event sent shortly before.
import { cpuMeter } from "./cpu.js";
import type { EventFactory, SignedEvent } from "./events.js";
import { outcomeCounter, runUniqueEvents } from "./load.js";

/** Steps between a step's in_progress and its terminal snapshot: both never in flight together. */
const TERMINAL_LAG = 50;
/** Every REDELIVER_EVERY-th request is a redelivery (20% of requests). */
const REDELIVER_EVERY = 5;
/** A redelivery repeats the original event sent this many originals before (or one more, alternately). */
const REDELIVER_DISTANCE = 60;

/**
 * An endless stream of signed events: originals alternate between a new step's `in_progress` and
 * the `completed` snapshot of the step started TERMINAL_LAG steps earlier (so every step is
 * in_progress, then terminal, as OpenAI sends them; the first TERMINAL_LAG are in_progress only);
 * every fifth request repeats, byte for byte (same webhook-id, body and signature), the original
 * sent REDELIVER_DISTANCE (or one more) originals before: a sender's redelivery.
 */
export function mixedStream(factory: EventFactory, nowS: () => number) {
  const recent: SignedEvent[] = [];
  let requests = 0;
  let redeliveries = 0;
  let started = 0;
  let terminal = 0;
  let nextIsTerminal = false;
  const original = (): SignedEvent => {
    const useTerminal = nextIsTerminal && started - terminal > TERMINAL_LAG;
    nextIsTerminal = !nextIsTerminal;
    const event = useTerminal
      ? factory.forStep(terminal++, "completed", nowS())
      : factory.forStep(started++, "in_progress", nowS());
    recent.push(event);
    if (recent.length > REDELIVER_DISTANCE * 3) recent.splice(0, REDELIVER_DISTANCE);
    return event;
  };
  return {
    next(): SignedEvent {
      requests++;
      if (requests % REDELIVER_EVERY === 0 && recent.length > REDELIVER_DISTANCE) {
        // Alternately one original further back: in_progress and terminal events both get redelivered.
        return recent[recent.length - REDELIVER_DISTANCE - (redeliveries++ % 2)] as SignedEvent;
      }
      return original();
    },
  };
}

/** What one mixed-load measurement found. */
export interface MixedLoadResult {
  /** Requests answered 200 (every outcome: created, updated, unchanged, stale). */
  readonly events: number;
  readonly eventsPerSecond: number;
  readonly outcomes: Record<string, number>;
  readonly errors: number;
  readonly cpu: Record<string, number | null>;
  readonly cpuMsPerEvent: number;
  readonly notificationsReceived: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
}

/**
 * Drives `url` with {@link mixedStream} at `connections` for a warm-up, then for `seconds`; server
 * CPU is measured from the start of the measured run until the sink has received every prompt
 * notification it caused (the sink quiet for 300 ms), so each terminal event's delivery counts.
 */
export async function runMixedLoad(options: {
  readonly url: string;
  readonly pids: Readonly<Record<string, number>>;
  readonly factory: EventFactory;
  readonly received: () => number;
  readonly connections: number;
  readonly warmupS: number;
  readonly seconds: number;
  readonly expectedRate: number;
  readonly settle: (count: () => number) => Promise<void>;
}): Promise<MixedLoadResult> {
  const nowS = () => Math.floor(Date.now() / 1000);
  const stream = mixedStream(options.factory, nowS);
  // Pre-signed just before each run (the load generator shares a core with the store).
  const drive = async (seconds: number) => {
    const queue = Array.from({ length: Math.ceil(options.expectedRate * seconds * 1.3) }, () =>
      stream.next(),
    );
    let taken = 0;
    const answers = outcomeCounter();
    const t0 = performance.now();
    const result = await runUniqueEvents({
      url: options.url,
      connections: options.connections,
      seconds,
      nextEvent: () => queue[taken++] ?? stream.next(),
      onAnswer: (status, body) => answers.record(status, body),
    });
    return { answers, result, elapsedS: (performance.now() - t0) / 1000 };
  };
  await drive(options.warmupS);
  await options.settle(options.received);
  const before = options.received();
  const meter = cpuMeter(options.pids);
  const run = await drive(options.seconds);
  await options.settle(options.received);
  const cpu = meter.stop();
  const counts = run.answers.counts;
  const events = Object.entries(counts)
    .filter(([outcome]) => !outcome.startsWith("http_"))
    .reduce((total, [, n]) => total + n, 0);
  return {
    events,
    eventsPerSecond: events / run.elapsedS,
    outcomes: counts,
    errors: run.result.errors + run.result.timeouts,
    cpu,
    cpuMsPerEvent: (cpu.server ?? Number.NaN) / events,
    notificationsReceived: options.received() - before,
    latencyP50Ms: run.result.latency.p50,
    latencyP99Ms: run.result.latency.p99,
  };
}
