import { dirname, join, relative } from "node:path";
import type { NodeServer } from "./node-server.js";

/**
 * Prints what a newcomer needs after `npm start`: where it listens, the secrets, a command to try.
 * On stderr, with the console sink's lines: stdout carries only JSON log records, so a log shipper
 * reading it never mistakes human text for a record (or a record for human text).
 */
export function printBanner(server: NodeServer): void {
  const { url, local, embedded } = server;
  const where = (file: string) => relative(process.cwd(), file) || file;
  const lines = [
    "",
    `stepwatch is listening on ${url}`,
    `  store:  ${embedded ? `embedded dynalite at ${embedded.endpoint}, persisted under ${where(join(dirname(local.secretsFile), "dynamodb"))}` : "DYNAMODB_ENDPOINT / AWS"}`,
  ];
  if (local.generated.WEBHOOK_SECRET) {
    lines.push(
      `  WEBHOOK_SECRET=${local.generated.WEBHOOK_SECRET}   (generated once, kept in ${where(local.secretsFile)})`,
    );
  }
  if (local.generated.API_TOKEN) {
    lines.push(`  API_TOKEN=${local.generated.API_TOKEN}   (bearer token of the read API)`);
  }
  if (local.generated.OPENAI_WEBHOOK_SECRET) {
    lines.push(
      `  OPENAI_WEBHOOK_SECRET=${local.generated.OPENAI_WEBHOOK_SECRET}   (verifies POST /v1/webhooks/openai; try it with npm run openai-standin)`,
    );
  }
  if (local.consoleSink) lines.push("  sinks:  console (set NOTIFY_SINKS for webhook, Slack, PagerDuty)");
  const token = local.generated.API_TOKEN ?? "$API_TOKEN";
  lines.push(
    "",
    "Send a signed sample event (in another terminal):",
    `  npm run send-sample -- --url ${url} --status completed`,
    "Read it back:",
    `  curl -s -H "Authorization: Bearer ${token}" ${url}/v1/run-steps/step_sample_1`,
    `  curl -s -H "Authorization: Bearer ${token}" ${url}/v1/runs/run_sample_1`,
    `Or in the operator console (it asks for the API token once per browser tab):`,
    `  ${url}/console/#/runs/run_sample_1`,
    "",
  );
  process.stderr.write(`${lines.join("\n")}\n`);
}
