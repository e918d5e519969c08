// Child process: the store's ceiling. Drives dynalite with the raw client, replaying the exact
// conditional UpdateItem body the product sends (captured from the SDK once), with unique step ids,
// at a fixed concurrency. Prints BENCH_RESULT {"opsPerSecond",...} and exits.
import { parseArgs } from "node:util";
import { createNodeDynamoHandler } from "../src/runtime/node-dynamo-handler.js";
import { createDynamoClient } from "../src/store/dynamo-client.js";
import { announce, RESULT } from "./child-process.js";
import { createRawDynamoClient } from "./raw-dynamo-client.js";
import { captureUpdateItemBody } from "./snapshots.js";

const { values } = parseArgs({
  options: {
    endpoint: { type: "string" },
    table: { type: "string" },
    prefix: { type: "string", default: "ceil" },
    seconds: { type: "string", default: "10" },
    warmup: { type: "string", default: "2" },
    concurrency: { type: "string", default: "50" },
  },
});
const endpoint = values.endpoint ?? "";
const table = values.table ?? "";
const concurrency = Number(values.concurrency);

const sdk = createDynamoClient(
  {
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "bench",
    AWS_SECRET_ACCESS_KEY: "bench",
    DYNAMODB_ENDPOINT: endpoint,
  },
  createNodeDynamoHandler(),
);
const template = await captureUpdateItemBody(sdk, table);
sdk.destroy();
// Parts alternate text / placeholder, so one event costs a join, not a JSON round trip.
const parts = template.body.split(new RegExp(`(${template.stepMark}|${template.runMark})`));

const raw = createRawDynamoClient(endpoint, concurrency);
let next = 0;
const bodyFor = (index: number) => {
  const step = `step_${values.prefix}${index.toString(36)}`;
  const run = `run_${values.prefix}${Math.floor(index / 8).toString(36)}`;
  return parts.map((p) => (p === template.stepMark ? step : p === template.runMark ? run : p)).join("");
};

async function drive(seconds: number) {
  const deadline = performance.now() + seconds * 1000;
  let ok = 0;
  let failed = 0;
  let firstError = "";
  const worker = async () => {
    while (performance.now() < deadline) {
      const answer = await raw.call("UpdateItem", bodyFor(next++));
      if (answer.status === 200) ok++;
      else {
        failed++;
        firstError ||= `${answer.status} ${answer.body.slice(0, 200)}`;
      }
    }
  };
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return { ok, failed, firstError, elapsedS, clientCpuMs: (cpu.user + cpu.system) / 1000 };
}

await drive(Number(values.warmup));
const run = await drive(Number(values.seconds));
raw.close();
announce(RESULT, {
  opsPerSecond: run.ok / run.elapsedS,
  ok: run.ok,
  failed: run.failed,
  firstError: run.firstError,
  seconds: run.elapsedS,
  clientCpuMsPerOp: run.clientCpuMs / Math.max(1, run.ok + run.failed),
  bodyBytes: Buffer.byteLength(template.body),
});
