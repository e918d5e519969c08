/**
 * Signs and posts a realistic run step event, so the quickstart needs no hand-computed HMACs.
 *
 *   npm run send-sample -- --status completed
 *   npm run send-sample -- --status failed --step step_42 --run run_7 --shape stream
 *
 * The secret comes from WEBHOOK_SECRET, or from .data/local-secrets.json as `npm start` made it.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { RUN_STEP_STATUSES, type RunStepStatus } from "../src/domain/run-step-schema.js";
import { createWebhookSigner } from "../src/domain/webhook-signer.js";
import { readSecrets } from "../src/runtime/local-defaults.js";

const { values } = parseArgs({
  options: {
    url: { type: "string", default: `http://127.0.0.1:${process.env.PORT ?? "8787"}` },
    status: { type: "string", default: "completed" },
    step: { type: "string", default: "step_sample_1" },
    run: { type: "string", default: "run_sample_1" },
    shape: { type: "string", default: "webhook" },
    secret: { type: "string" },
  },
});

const status = values.status as RunStepStatus;
if (!RUN_STEP_STATUSES.includes(status)) {
  console.error(`--status must be one of ${RUN_STEP_STATUSES.join(", ")}`);
  process.exit(2);
}
const secret =
  values.secret ??
  process.env.WEBHOOK_SECRET?.split(/[\s,]+/)[0] ??
  readSecrets(join(process.env.STEPWATCH_DATA_DIR ?? ".data", "local-secrets.json")).WEBHOOK_SECRET;
if (!secret) {
  console.error("No secret: set WEBHOOK_SECRET, pass --secret, or run `npm start` once to generate one.");
  process.exit(2);
}

const now = Math.floor(Date.now() / 1000);
const at = (s: RunStepStatus) => (status === s ? now : null);
const step = {
  id: values.step,
  object: "thread.run.step",
  created_at: now - 12,
  assistant_id: "asst_sample",
  thread_id: "thread_sample",
  run_id: values.run,
  type: "tool_calls",
  status,
  step_details: {
    type: "tool_calls",
    tool_calls: [
      {
        id: "call_sample",
        type: "function",
        function: {
          name: "get_weather",
          arguments: '{"city":"Lisbon"}',
          output: status === "completed" ? "22°C, sunny" : null,
        },
      },
    ],
  },
  last_error:
    status === "failed"
      ? { code: "server_error", message: "The tool call timed out <after 30s> & gave up" }
      : null,
  expired_at: at("expired"),
  cancelled_at: at("cancelled"),
  failed_at: at("failed"),
  completed_at: at("completed"),
  metadata: { team: "support" },
  usage: status === "in_progress" ? null : { prompt_tokens: 812, completion_tokens: 64, total_tokens: 876 },
};
const name = `thread.run.step.${status}`;
const body = JSON.stringify(
  values.shape === "bare"
    ? step
    : values.shape === "stream"
      ? { event: name, data: step }
      : { id: `evt_${crypto.randomUUID()}`, object: "event", type: name, created_at: now, data: step },
);

const signer = await createWebhookSigner(secret);
const headers = await signer.sign(`msg_${crypto.randomUUID()}`, now, body);
const response = await fetch(`${values.url}/v1/webhooks/run-steps`, {
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body,
});
console.log(`${response.status} ${await response.text()}`);
process.exitCode = response.ok ? 0 : 1;
