/**
 * The long fuzz campaign: mutated, correctly signed run step events against the real Node server
 * (embedded dynalite in a fresh data directory), over real HTTP with keep-alive connections.
 *
 *   npm run fuzz -- --cases 100000 [--concurrency 16] [--seed 42]
 *
 * Prints one JSON summary: statuses, server errors (5xx), undocumented statuses, dropped
 * connections (a request that got no answer), and read-backs that differ from what was sent. Exits
 * 1 when any of those is not 0. The same generator runs a few thousand cases inside `npm test`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import fc from "fast-check";
import { Webhook } from "standardwebhooks";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { startNodeServer } from "../src/runtime/node-server.js";
import {
  DOCUMENTED_CODES,
  DOCUMENTED_STATUSES,
  type FuzzCase,
  fuzzCases,
  readBackDocument,
} from "../test/support/fuzz-events.js";

const { values } = parseArgs({
  options: {
    cases: { type: "string", default: "10000" },
    concurrency: { type: "string", default: "16" },
    seed: { type: "string" },
  },
});
const total = Number(values.cases);
const concurrency = Number(values.concurrency);
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
const BATCH = 1_000;

const dataDir = mkdtempSync(join(tmpdir(), "stepwatch-fuzz-"));
const secret = generateWebhookSecret();
const token = `fuzz-${crypto.randomUUID()}`;
const server = await startNodeServer(
  {
    PORT: "0",
    WEBHOOK_SECRET: secret,
    API_TOKEN: token,
    MAX_BODY_BYTES: "358400",
    NOTIFY_SINKS: "[]",
    LOG_LEVEL: "error",
  },
  dataDir,
);
const signer = new Webhook(secret);

const summary = {
  cases: 0,
  seed,
  statuses: {} as Record<string, number>,
  server_errors: 0,
  undocumented: 0,
  dropped_connections: 0,
  stored_read_back: 0,
  read_back_mismatches: 0,
  not_quarantined: 0,
  duration_s: 0,
  examples: [] as string[],
};
const note = (what: string) => {
  if (summary.examples.length < 10) summary.examples.push(what.slice(0, 300));
};

async function run(fuzz: FuzzCase, n: number): Promise<void> {
  const id = `msg_fuzz_${n}`;
  const now = new Date();
  let response: Response;
  try {
    response = await fetch(`${server.url}/v1/webhooks/run-steps`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "webhook-id": id,
        "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
        "webhook-signature": signer.sign(id, now, fuzz.body),
      },
      body: fuzz.body,
    });
  } catch (error) {
    summary.dropped_connections++;
    note(`dropped: ${String(error)} for ${fuzz.body}`);
    return;
  }
  const text = await response.text();
  summary.statuses[response.status] = (summary.statuses[response.status] ?? 0) + 1;
  if (response.status >= 500) {
    summary.server_errors++;
    note(`${response.status} ${text} for ${fuzz.body}`);
  }
  if (!DOCUMENTED_STATUSES.has(response.status)) summary.undocumented++;
  const answer = JSON.parse(text) as { outcome?: string; error?: { code: string; quarantine_id?: string } };
  if (response.status !== 200) {
    if (!answer.error || !DOCUMENTED_CODES.has(answer.error.code)) summary.undocumented++;
    if (!answer.error?.quarantine_id) summary.not_quarantined++;
    return;
  }
  if (answer.outcome !== "created" || fuzz.stepId === null) return;
  const read = await fetch(`${server.url}/v1/run-steps/${encodeURIComponent(fuzz.stepId)}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const stored = (await read.json()) as Record<string, unknown>;
  summary.stored_read_back++;
  if (read.status !== 200 || readBackDocument(stored) !== JSON.stringify(fuzz.document)) {
    summary.read_back_mismatches++;
    note(`read-back differs for ${fuzz.body}`);
  }
}

const started = performance.now();
try {
  const generator = fuzzCases(`step_fuzz_${seed}`);
  for (let done = 0; done < total; done += BATCH) {
    const batch = fc.sample(generator, { numRuns: Math.min(BATCH, total - done), seed: seed + done });
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < batch.length) {
          const i = next++;
          await run(batch[i] as FuzzCase, done + i);
        }
      }),
    );
    summary.cases = done + batch.length;
    process.stderr.write(`\r${summary.cases} / ${total}`);
  }
} finally {
  summary.duration_s = Math.round((performance.now() - started) / 100) / 10;
  process.stderr.write("\n");
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(summary, null, 2));
const failed =
  summary.server_errors + summary.undocumented + summary.dropped_connections + summary.read_back_mismatches;
process.exit(failed + summary.not_quarantined === 0 ? 0 : 1);
