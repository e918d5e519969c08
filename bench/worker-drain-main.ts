// Child process: one Worker cron invocation's drain. Seeds BENCH_BACKLOG pending deliveries (first
// attempt failed, due now) to the webhook sink at --sink-url with the product's store classes, starts
// the Worker in workerd exactly as the tests do (wrangler's unstable_startWorker, wrangler.toml,
// its default sweep limits), runs the `scheduled` handler once through GET /__scheduled (200 once
// the handler finished) and prints BENCH_RESULT {status, duration_ms, pending_after, ...}.
import { parseArgs } from "node:util";
import { DynamoDeliveryStore } from "../src/store/dynamo-delivery-store.js";
import { startWorkerRuntime, type WorkerRuntime } from "../test/support/worker-runtime.js";
import { announce, exitWithParent, RESULT } from "./child-process.js";
import { benchClient, failedOnce, seedBacklog } from "./delivery-phases.js";

const { values } = parseArgs({
  options: {
    endpoint: { type: "string" },
    table: { type: "string" },
    "sink-url": { type: "string" },
  },
});
const endpoint = values.endpoint ?? "";
const table = values.table ?? "";
const backlog = Number(process.env.BENCH_BACKLOG ?? "2000");
const prefix = process.env.BENCH_PREFIX ?? "wkd";

let runtime: WorkerRuntime | undefined;
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  // workerd is wrangler's child: dispose it before leaving, or it would outlive this process.
  // A moment after, so that this process reaps workerd once it has exited (no zombie left behind).
  const done = () => setTimeout(() => process.exit(0), 500);
  (runtime ? runtime.dispose() : Promise.resolve()).then(done, done);
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
exitWithParent(stop);

const client = benchClient(endpoint);
const t0 = performance.now();
await seedBacklog({
  client,
  table,
  prefix,
  count: backlog,
  sinks: ["hook"],
  delivery: failedOnce("HTTP 503: unavailable", 503),
});
const seedMs = performance.now() - t0;

const t1 = performance.now();
runtime = await startWorkerRuntime({
  WEBHOOK_SECRET: process.env.BENCH_WEBHOOK_SECRET ?? "",
  API_TOKEN: "swt_bench_token_not_secret",
  DYNAMODB_TABLE: table,
  DYNAMODB_ENDPOINT: endpoint,
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "bench",
  AWS_SECRET_ACCESS_KEY: "bench",
  LOG_LEVEL: "warn",
  NOTIFY_SINKS: JSON.stringify([
    { name: "hook", type: "webhook", url: values["sink-url"], secret: process.env.BENCH_SINK_SECRET },
  ]),
});
const startMs = performance.now() - t1;

const t2 = performance.now();
const invocation = await runtime.scheduled();
const durationMs = performance.now() - t2;
const deliveries = new DynamoDeliveryStore({ client, tableName: table, retentionDays: 0 });
const after = await deliveries.backlog("hook");
announce(RESULT, {
  status: invocation.status,
  outcome: invocation.outcome,
  invocation_ms: Math.round(durationMs),
  pending_after: after.pending,
  seed_ms: Math.round(seedMs),
  worker_start_ms: Math.round(startMs),
});
client.destroy();
stop();
