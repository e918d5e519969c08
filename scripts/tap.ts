/**
 * The tap proxy: point an Assistants client at it (OPENAI_BASE_URL) and every run step it streams
 * or lists reaches stepwatch as a signed webhook; requests and responses pass through unchanged.
 *
 *   npm run tap -- --upstream https://api.openai.com/v1 --port 8788 --url http://127.0.0.1:8787 --secret whsec_…
 *   OPENAI_BASE_URL=http://127.0.0.1:8788 node my-agent.js
 *
 * Flags fall back to TAP_UPSTREAM_URL, TAP_PORT, STEPWATCH_URL, STEPWATCH_WEBHOOK_SECRET (and
 * TAP_SPOOL_DIR, default .data/relay-spool). Credentials pass through; they are never logged.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startNodeTap } from "../src/relay/node-tap.js";
import { httpUrl, integerSetting, RelaySettingsError, stepwatchTarget } from "../src/relay/relay-settings.js";
import { readSecrets } from "../src/runtime/local-defaults.js";

const log = (level: string, msg: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);

let settings: Parameters<typeof startNodeTap>[0];
try {
  const { values } = parseArgs({
    options: {
      upstream: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      url: { type: "string" },
      secret: { type: "string" },
      spool: { type: "string" },
      deltas: { type: "boolean", default: false },
    },
  });
  const env = { ...process.env };
  env.STEPWATCH_URL ??= `http://127.0.0.1:${process.env.PORT ?? "8787"}`;
  env.STEPWATCH_WEBHOOK_SECRET ??=
    process.env.WEBHOOK_SECRET?.split(/[\s,]+/)[0] ??
    readSecrets(join(process.env.STEPWATCH_DATA_DIR ?? ".data", "local-secrets.json")).WEBHOOK_SECRET;
  settings = {
    ...stepwatchTarget({ url: values.url, secret: values.secret }, env),
    upstream: httpUrl("--upstream / TAP_UPSTREAM_URL", values.upstream ?? env.TAP_UPSTREAM_URL),
    port: integerSetting("--port / TAP_PORT", values.port ?? env.TAP_PORT, 8788, 0, 65_535),
    host: values.host ?? "127.0.0.1",
    spoolDir:
      values.spool ?? env.TAP_SPOOL_DIR ?? join(process.env.STEPWATCH_DATA_DIR ?? ".data", "relay-spool"),
    includeDeltas: values.deltas === true,
    onError: (message) => log("warn", message),
    onRefused: (r) =>
      log("warn", "stepwatch refused a run step event", {
        step_id: r.stepId,
        event: r.event,
        error: r.error,
      }),
    onRetry: (e, error, delayMs) =>
      log("info", "retrying a run step event", {
        step_id: e.stepId,
        event: e.event,
        error,
        delay_ms: delayMs,
      }),
  };
} catch (error) {
  if (!(error instanceof RelaySettingsError) && !(error instanceof TypeError)) throw error;
  process.stderr.write(`tap: ${(error as Error).message}\n`);
  process.exit(2);
}

const tap = await startNodeTap(settings);
log("info", `stepwatch tap is listening on ${tap.url}`, {
  upstream: settings.upstream,
  stepwatch: settings.url,
});
const stop = () => {
  void tap.close().then(() => process.exit(0));
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
