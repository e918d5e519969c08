// `npx tsx bench/relay-overhead.ts [--events 2000]`: the tap's added latency per streamed chunk and
// its CPU per forwarded run step event, on loopback. One process: a streaming upstream, the tap
// (no spool) forwarding to a 200-answering receiver, and a client reading chunk by chunk, first
// straight from the upstream, then through the tap. Each chunk carries the time it was written, so
// latency is measured on one clock; overhead = tapped percentile − direct percentile.
// Not yet part of `npm run bench` (bench/run.ts, bench/report.ts): prints one JSON line.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { startNodeTap } from "../src/relay/node-tap.js";

const { values } = parseArgs({ options: { events: { type: "string", default: "2000" } } });
const EVENTS = Number(values.events);

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

const listen = (server: ReturnType<typeof createServer>) =>
  new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)),
  );

const upstream = createServer((_req, res) => {
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" });
  let i = 0;
  const next = () => {
    if (i >= EVENTS) return res.end("event: done\ndata: [DONE]\n\n");
    res.write(`event: thread.run.step.in_progress\ndata: ${step(i++, performance.now())}\n\n`);
    setTimeout(next, 1);
  };
  next();
});
const receiver = createServer((req, res) => {
  req.resume();
  req.on("end", () => res.end("{}"));
});
const upstreamPort = await listen(upstream);
const receiverPort = await listen(receiver);
const tap = await startNodeTap({
  upstream: `http://127.0.0.1:${upstreamPort}/v1`,
  port: 0,
  url: `http://127.0.0.1:${receiverPort}`,
  secret: generateWebhookSecret(),
  spoolDir: null,
});

const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
};

async function measure(base: string): Promise<{ latencies: number[]; cpuMs: number }> {
  const cpu = process.cpuUsage();
  const res = await fetch(`${base}/threads/thread_bench/runs`, { method: "POST", body: "{}" });
  const decoder = new TextDecoder();
  const latencies: number[] = [];
  let buffer = "";
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    const now = performance.now();
    buffer += decoder.decode(chunk, { stream: true });
    for (const m of buffer.matchAll(/"sent_at":([\d.]+)/g)) latencies.push(now - Number(m[1]));
    buffer = buffer.slice(buffer.lastIndexOf("\n\n") + 2);
  }
  const used = process.cpuUsage(cpu);
  return { latencies, cpuMs: (used.user + used.system) / 1000 };
}

await measure(`http://127.0.0.1:${upstreamPort}/v1`); // warm-up
const direct = await measure(`http://127.0.0.1:${upstreamPort}/v1`);
const cpuBefore = process.cpuUsage();
const tapped = await measure(tap.url);
await tap.forwarder.idle();
const cpuTapped = process.cpuUsage(cpuBefore);
// The tapped phase's CPU until every event is acknowledged (signing and sending included).
const tappedCpuWithForwarding = (cpuTapped.user + cpuTapped.system) / 1000;
const forwarded = tap.forwarder.stats.acknowledged;
await tap.close();
upstream.close();
receiver.close();
const round = (x: number) => Math.round(x * 1000) / 1000;
console.log(
  JSON.stringify({
    events: EVENTS,
    relay_overhead_ms_p50: round(percentile(tapped.latencies, 50) - percentile(direct.latencies, 50)),
    relay_overhead_ms_p99: round(percentile(tapped.latencies, 99) - percentile(direct.latencies, 99)),
    tap_cpu_ms_per_forwarded_event: round((tappedCpuWithForwarding - direct.cpuMs) / Math.max(1, forwarded)),
    forwarded,
  }),
);
