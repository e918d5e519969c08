/**
 * Replays a recorded Assistants stream (the SSE wire format) into stepwatch as signed run step
 * webhooks: for back-filling, and for trying stepwatch with realistic data.
 *
 *   npm run relay -- --file samples/tool-calls-run.sse --url http://127.0.0.1:8787 --secret whsec_…
 *   cat transcript.sse | npm run relay -- --file -
 *
 * Exits 0 once stepwatch has acknowledged every run step event of the transcript; otherwise 1 with
 * one line saying why (2 for bad settings). --url / --secret fall back to STEPWATCH_URL /
 * STEPWATCH_WEBHOOK_SECRET, then to the local server `npm start` runs and the secret it generated.
 */
import { createReadStream } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { openFileSpool } from "../src/relay/file-spool.js";
import { createForwarder, type RefusedEvent } from "../src/relay/forwarder.js";
import { integerSetting, RelaySettingsError, stepwatchTarget } from "../src/relay/relay-settings.js";
import { runStepEventOf } from "../src/relay/run-step-events.js";
import { SseParser } from "../src/relay/sse-parser.js";
import { readSecrets } from "../src/runtime/local-defaults.js";

const fail = (code: number, line: string): never => {
  process.stderr.write(`relay: ${line.replace(/\s+/g, " ")}\n`);
  process.exit(code);
};

let values: Record<string, string | boolean | undefined>;
try {
  ({ values } = parseArgs({
    options: {
      file: { type: "string" },
      url: { type: "string" },
      secret: { type: "string" },
      deltas: { type: "boolean", default: false },
      spool: { type: "string" },
      "give-up-after": { type: "string" },
    },
  }));
} catch (error) {
  fail(2, (error as Error).message);
}
const flag = (name: string) => (typeof values[name] === "string" ? (values[name] as string) : undefined);

const file = flag("file") ?? fail(2, "--file <transcript.sse> (or - for stdin) is required");
const env = { ...process.env };
env.STEPWATCH_URL ??= `http://127.0.0.1:${process.env.PORT ?? "8787"}`;
env.STEPWATCH_WEBHOOK_SECRET ??=
  process.env.WEBHOOK_SECRET?.split(/[\s,]+/)[0] ??
  readSecrets(join(process.env.STEPWATCH_DATA_DIR ?? ".data", "local-secrets.json")).WEBHOOK_SECRET;
let target: ReturnType<typeof stepwatchTarget>;
let giveUpS: number;
try {
  target = stepwatchTarget({ url: flag("url"), secret: flag("secret") }, env);
  giveUpS = integerSetting("--give-up-after", flag("give-up-after"), 30, 1, 86_400);
} catch (error) {
  if (error instanceof RelaySettingsError) fail(2, error.message);
  throw error;
}

const refused: RefusedEvent[] = [];
const spoolDir = flag("spool");
const spool = spoolDir ? await openFileSpool(spoolDir) : undefined;
const forwarder = await createForwarder({
  ...target,
  giveUpAfterMs: giveUpS * 1000,
  onRefused: (r) => refused.push(r),
  ...(spool ? { spool } : {}),
});

const parser = new SseParser();
const input = file === "-" ? process.stdin : createReadStream(file);
let events = 0;
try {
  const accept = async (found: ReturnType<SseParser["push"]>) => {
    for (const e of found) {
      const event = await runStepEventOf(e.event, e.data, { includeDeltas: values.deltas === true });
      if (!event) continue;
      events++;
      await forwarder.accept(event);
    }
  };
  for await (const chunk of input) await accept(parser.push(chunk as Uint8Array));
  await accept(parser.end());
  await forwarder.idle();
} catch (error) {
  await forwarder.close();
  const code = (error as NodeJS.ErrnoException).code;
  fail(1, code === "ENOENT" ? `cannot read ${file}: no such file` : (error as Error).message);
}
await forwarder.close();
const first = refused[0];
if (first) {
  fail(
    1,
    `stepwatch refused ${refused.length} of ${events} run step events; first: ${first.event} for step ${first.stepId}: ${first.error}`,
  );
}
const { acknowledged, retries } = forwarder.stats;
process.stdout.write(`relayed ${acknowledged} run step events to ${target.url} (${retries} retries)\n`);
