// The tap's cost on loopback (`npm run bench`, or `npx tsx bench/relay-overhead.ts [--events 2000]
// [--step-every 10]` for one JSON line): the latency it adds to each streamed chunk reaching the client, and its CPU
// per forwarded run step event. The tap runs as its own process, as `npm run tap` runs it; this
// process is the streaming upstream, the 200-answering stepwatch stand-in and the client, reading
// chunk by chunk, first straight from the upstream, then through the tap. Each chunk carries the
// time it was written, so latency is measured on one clock; overhead = tapped percentile − direct
// percentile. The tap's CPU is read from /proc for the tapped phase, until every event is forwarded.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { spawnTs } from "./child-process.js";
import { processCpuMs } from "./cpu.js";

/** What {@link measureRelayOverhead} reports. */
export interface RelayOverhead {
  /** Chunks streamed, and how many of them were run step events. */
  readonly events: number;
  readonly run_step_events: number;
  readonly relay_overhead_ms_p50: number;
  readonly relay_overhead_ms_p99: number;
  readonly tap_cpu_ms_per_forwarded_event: number;
  readonly forwarded: number;
}

const step = (i: number, sentAt: number) =>
  JSON.stringify({
    id: `step_bench_${i}`,
    object: "thread.run.step",
    created_at: 1_767_225_600,
    assistant_id: "asst_bench",
    thread_id: "thread_bench",
    run_id: "run_bench",
    type: "message_creation",
    status: "in_progress",
    step_details: { type: "message_creation", message_creation: { message_id: `msg_${i}` } },
    last_error: null,
    cancelled_at: null,
    completed_at: null,
    failed_at: null,
    expires_at: 1_767_226_200,
    usage: null,
    sent_at: sentAt,
  });

const listen = (server: Server) =>
  new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)),
  );

const percentile = (xs: readonly number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
};

const round = (x: number) => Math.round(x * 1000) / 1000;

// A message delta as the stream carries them between run step events: passed on, never teed.
const messageDelta = (i: number, sentAt: number) =>
  JSON.stringify({
    id: "msg_bench",
    object: "thread.message.delta",
    delta: { content: [{ index: 0, type: "text", text: { value: ` token${i}` } }] },
    sent_at: sentAt,
  });

/**
 * Streams `events` chunks through the tap and straight, and compares: one chunk a millisecond, as
 * a model streams, each `stepEvery`-th a run step event (teed), the others message deltas (passed
 * on). `stepEvery` 1 is the stress case where every chunk is forwarded.
 */
export async function measureRelayOverhead(events = 2000, stepEvery = 10): Promise<RelayOverhead> {
  const steps = Math.ceil(events / stepEvery);
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" });
    let i = 0;
    const next = () => {
      if (i >= events) return res.end("event: done\ndata: [DONE]\n\n");
      const at = performance.now();
      res.write(
        i % stepEvery === 0
          ? `event: thread.run.step.in_progress\ndata: ${step(i, at)}\n\n`
          : `event: thread.message.delta\ndata: ${messageDelta(i, at)}\n\n`,
      );
      i++;
      setTimeout(next, 1);
    };
    next();
  });
  let received = 0;
  const receiver = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      received++;
      res.end("{}");
    });
  });
  const [upstreamPort, receiverPort] = await Promise.all([listen(upstream), listen(receiver)]);
  const spoolDir = mkdtempSync(join(tmpdir(), "stepwatch-tap-bench-"));
  const tap = spawnTs(
    "scripts/tap.ts",
    [
      "--upstream",
      `http://127.0.0.1:${upstreamPort}/v1`,
      "--port",
      "0",
      "--url",
      `http://127.0.0.1:${receiverPort}`,
      "--secret",
      generateWebhookSecret(),
      // With its spool, as `npm run tap` runs by default: every event is on disk before it is sent.
      "--spool",
      spoolDir,
    ],
    { core: null },
  );
  try {
    // The rest of the tap's "listening on <url>" log line.
    const ready = await tap.line('"msg":"stepwatch tap is listening on ', 30_000);
    const tapUrl = /^(http:\/\/[^"\s]+)/.exec(ready)?.[1] ?? "";

    const measure = async (base: string) => {
      const response = await fetch(`${base}/threads/thread_bench/runs`, { method: "POST", body: "{}" });
      const decoder = new TextDecoder();
      const latencies: number[] = [];
      let buffer = "";
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        const now = performance.now();
        buffer += decoder.decode(chunk, { stream: true });
        for (const m of buffer.matchAll(/"sent_at":([\d.]+)/g)) latencies.push(now - Number(m[1]));
        buffer = buffer.slice(buffer.lastIndexOf("\n\n") + 2);
      }
      return latencies;
    };

    await measure(`http://127.0.0.1:${upstreamPort}/v1`); // warm-up
    const direct = await measure(`http://127.0.0.1:${upstreamPort}/v1`);
    await measure(tapUrl); // the tap's warm-up: its forwarding too
    for (let wait = 0; received < steps && wait < 600; wait++) await new Promise((r) => setTimeout(r, 50));
    received = 0;
    const cpuBefore = processCpuMs(tap.pid) ?? 0;
    const tapped = await measure(tapUrl);
    for (let wait = 0; received < steps && wait < 600; wait++) await new Promise((r) => setTimeout(r, 50));
    const tapCpu = (processCpuMs(tap.pid) ?? 0) - cpuBefore;
    return {
      events,
      run_step_events: steps,
      relay_overhead_ms_p50: round(percentile(tapped, 50) - percentile(direct, 50)),
      relay_overhead_ms_p99: round(percentile(tapped, 99) - percentile(direct, 99)),
      tap_cpu_ms_per_forwarded_event: round(tapCpu / Math.max(1, received)),
      forwarded: received,
    };
  } finally {
    await tap.stop();
    upstream.close();
    receiver.close();
    rmSync(spoolDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { events: { type: "string", default: "2000" }, "step-every": { type: "string", default: "10" } },
  });
  console.log(
    JSON.stringify(await measureRelayOverhead(Number(values.events), Number(values["step-every"]))),
  );
  process.exit(0);
}
