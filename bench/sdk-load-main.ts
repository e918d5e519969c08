// Child process: the store call alone. Applies unique in_progress snapshots through the product's
// DynamoStepStore at a fixed concurrency, with the DynamoDB client either as stepwatch configures
// it now ("product") or as it was before the hot-path work ("baseline"), and optionally records a
// CPU profile of the measured window only. Prints BENCH_RESULT {...} and exits.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { parseArgs } from "node:util";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { createNodeDynamoHandler } from "../src/runtime/node-dynamo-handler.js";
import { createDynamoClient } from "../src/store/dynamo-client.js";
import { createBaselineDynamoClient } from "./baseline-dynamo-client.js";
import { announce, RESULT } from "./child-process.js";
import { benchStore, snapshotMaker } from "./snapshots.js";

const { values } = parseArgs({
  options: {
    endpoint: { type: "string" },
    table: { type: "string" },
    variant: { type: "string", default: "product" },
    prefix: { type: "string", default: "sdk" },
    seconds: { type: "string", default: "8" },
    warmup: { type: "string", default: "2" },
    concurrency: { type: "string", default: "50" },
    profile: { type: "string" },
  },
});
const endpoint = values.endpoint ?? "";
const table = values.table ?? "";
const concurrency = Number(values.concurrency);

const client: DynamoDBClient =
  values.variant === "baseline"
    ? createBaselineDynamoClient(endpoint)
    : createDynamoClient(
        {
          AWS_REGION: "us-east-1",
          AWS_ACCESS_KEY_ID: "bench",
          AWS_SECRET_ACCESS_KEY: "bench",
          DYNAMODB_ENDPOINT: endpoint,
        },
        createNodeDynamoHandler(),
      );
const store = benchStore(client, table);
const snapshot = snapshotMaker("in_progress", `${values.prefix}${values.variant === "baseline" ? "b" : "p"}`);
let next = 0;

async function drive(seconds: number) {
  const deadline = performance.now() + seconds * 1000;
  const outcomes: Record<string, number> = {};
  let failed = 0;
  let firstError = "";
  const now = Math.floor(Date.now() / 1000);
  const worker = async () => {
    while (performance.now() < deadline) {
      try {
        const { outcome } = await store.apply(snapshot(next++, now));
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      } catch (error) {
        failed++;
        firstError ||= String(error);
      }
    }
  };
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const calls = Object.values(outcomes).reduce((a, b) => a + b, 0) + failed;
  return { outcomes, failed, firstError, elapsedS, cpuMs: (cpu.user + cpu.system) / 1000, calls };
}

await drive(Number(values.warmup));
let session: Session | undefined;
if (values.profile) {
  session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  // 250 µs sampling: enough samples for a per-call profile of a few seconds.
  await session.post("Profiler.setSamplingInterval", { interval: 250 });
  await session.post("Profiler.start");
}
const run = await drive(Number(values.seconds));
if (session && values.profile) {
  const { profile } = await session.post("Profiler.stop");
  writeFileSync(values.profile, JSON.stringify(profile));
  session.disconnect();
}
client.destroy();
announce(RESULT, {
  variant: values.variant,
  opsPerSecond: (run.calls - run.failed) / run.elapsedS,
  cpuMsPerCall: run.cpuMs / Math.max(1, run.calls),
  outcomes: run.outcomes,
  failed: run.failed,
  firstError: run.firstError,
  seconds: run.elapsedS,
});
