// Workers bill CPU time: workerd's process CPU per ingested event (`worker_cpu_ms_per_event`), the
// Worker from wrangler.toml in workerd as the tests run it (wrangler's local runtime, its proxy
// included), against a real dynalite. `npx tsx bench/worker-cpu.ts [--events 2000]` prints one
// JSON line; `npm run bench` reports it beside the Node server's `cpu_ms_per_event`.
import { readdirSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { startTestStore, TEST_AWS } from "../test/support/test-store.js";
import { startWorkerRuntime } from "../test/support/worker-runtime.js";
import { processCpuMs } from "./cpu.js";
import { createEventFactory } from "./events.js";

/** What {@link measureWorkerCpu} reports. */
export interface WorkerCpu {
  readonly events: number;
  readonly worker_cpu_ms_per_event: number;
  readonly events_per_s: number;
  readonly workerd_processes: number;
}

// The workerd processes below this one (wrangler starts them), from /proc (Linux).
function workerdPids(): number[] {
  const parents = new Map<number, number>();
  const names = new Map<number, string>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parents.set(Number(entry), Number(fields[1]));
      names.set(Number(entry), name);
    } catch {
      // Gone meanwhile.
    }
  }
  const below = (pid: number): boolean => {
    for (let p = parents.get(pid), hops = 0; p !== undefined && hops < 20; p = parents.get(p), hops++) {
      if (p === process.pid) return true;
    }
    return false;
  };
  return [...names].filter(([pid, name]) => name.includes("workerd") && below(pid)).map(([pid]) => pid);
}

const cpuOf = (pids: readonly number[]) => pids.reduce((sum, pid) => sum + (processCpuMs(pid) ?? 0), 0);

/** Ingests `events` new in_progress steps through the Worker, 16 at a time, and reads workerd's CPU. */
export async function measureWorkerCpu(events = 2000): Promise<WorkerCpu> {
  const store = await startTestStore("stepwatch_bench_worker_cpu");
  const secret = generateWebhookSecret();
  const runtime = await startWorkerRuntime({
    WEBHOOK_SECRET: secret,
    API_TOKEN: "swt_bench_token_not_secret",
    DYNAMODB_TABLE: store.tableName,
    DYNAMODB_ENDPOINT: store.endpoint,
    // The test store's own key pair: its guard refuses any other (issue 21).
    ...TEST_AWS,
    LOG_LEVEL: "warn",
  });
  try {
    const factory = createEventFactory(secret, `wcpu${Date.now().toString(36)}`);
    const url = new URL("/v1/webhooks/run-steps", runtime.url);
    const send = async (count: number) => {
      let left = count;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (left-- > 0) {
            const event = factory.next("in_progress", Date.now() / 1000);
            const response = await fetch(url, { method: "POST", headers: event.headers, body: event.body });
            const answer = (await response.json()) as { outcome?: string };
            if (answer.outcome !== "created") throw new Error(`worker answered ${JSON.stringify(answer)}`);
          }
        }),
      );
    };
    await send(200); // warm-up: the isolate, its client and its connections
    const pids = workerdPids();
    const before = cpuOf(pids);
    const started = performance.now();
    await send(events);
    const seconds = (performance.now() - started) / 1000;
    const used = cpuOf(pids) - before;
    return {
      events,
      worker_cpu_ms_per_event: Math.round((used / events) * 1000) / 1000,
      events_per_s: Math.round(events / seconds),
      workerd_processes: pids.length,
    };
  } finally {
    await runtime.dispose();
    await store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { events: { type: "string", default: "2000" } } });
  console.log(JSON.stringify(await measureWorkerCpu(Number(values.events))));
  process.exit(0);
}
