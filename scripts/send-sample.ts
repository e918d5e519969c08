/**
 * Signs and posts a realistic run step event, so the quickstart needs no hand-computed HMACs.
 *
 *   npm run send-sample -- --status completed
 *   npm run send-sample -- --status failed --step step_42 --run run_7 --shape stream
 *
 * The secret comes from WEBHOOK_SECRET, or from .data/local-secrets.json as `npm start` made it.
 *
 * With `--openai <type>` it sends a thin OpenAI platform event instead (SPEC §9), naming the sample
 * object `npm run openai-standin` serves for that type, to /v1/webhooks/openai, signed with
 * OPENAI_WEBHOOK_SECRET (flag `--secret`, the variable, or .data/local-secrets.json):
 *
 *   npm run send-sample -- --openai response.failed
 *   npm run send-sample -- --openai agent.session.action_required --event evt_again_1
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { RUN_STEP_STATUSES, type RunStepStatus } from "../src/domain/run-step-schema.js";
import { createWebhookSigner, type WebhookSignatureHeaders } from "../src/domain/webhook-signer.js";
import { readSecrets } from "../src/runtime/local-defaults.js";
import { OPENAI_SAMPLE_TYPES, OPENAI_SAMPLES } from "./support/openai-samples.js";

const options = {
  url: { type: "string", default: `http://127.0.0.1:${process.env.PORT ?? "8787"}` },
  status: { type: "string", default: "completed" },
  step: { type: "string", default: "step_sample_1" },
  run: { type: "string", default: "run_sample_1" },
  shape: { type: "string", default: "webhook" },
  secret: { type: "string" },
  openai: { type: "string" },
  event: { type: "string" },
} as const;
let values: ReturnType<typeof parseArgs<{ options: typeof options }>>["values"];
try {
  ({ values } = parseArgs({ options }));
} catch (error) {
  // parseArgs names the unknown flag or the missing value; a typo deserves no stack trace.
  console.error(`send-sample: ${(error as Error).message}`);
  process.exit(2);
}
const localSecrets = () => {
  try {
    return readSecrets(join(process.env.STEPWATCH_DATA_DIR ?? ".data", "local-secrets.json"));
  } catch (error) {
    console.error(`send-sample: ${(error as Error).message}`);
    process.exit(2);
  }
};

if (values.openai !== undefined) await sendOpenAiSample(values.openai);
else await sendRunStep();

/** A thin OpenAI event naming the stand-in's sample for `type`, as OpenAI sends it. */
async function sendOpenAiSample(type: string): Promise<void> {
  // Own keys only: "toString" is no event type.
  const sample = Object.hasOwn(OPENAI_SAMPLES, type)
    ? OPENAI_SAMPLES[type as keyof typeof OPENAI_SAMPLES]
    : undefined;
  if (!sample) {
    console.error(`send-sample: --openai must be one of ${OPENAI_SAMPLE_TYPES.join(", ")}`);
    process.exit(2);
  }
  const secret =
    values.secret ??
    process.env.OPENAI_WEBHOOK_SECRET?.split(/[\s,]+/).find(Boolean) ??
    localSecrets().OPENAI_WEBHOOK_SECRET;
  if (!secret) {
    console.error(
      "send-sample: no secret: set OPENAI_WEBHOOK_SECRET, pass --secret, or run `npm start` once to generate one.",
    );
    process.exit(2);
  }
  const now = Math.floor(Date.now() / 1000);
  const event = {
    id: values.event ?? `evt_${crypto.randomUUID().replaceAll("-", "")}`,
    object: "event",
    created_at: now,
    type,
    data: { id: sample.id },
  };
  const body = JSON.stringify(event);
  const headers = await (await createWebhookSigner(secret)).sign(`wh_${crypto.randomUUID()}`, now, body);
  const response = await post(`${values.url}/v1/webhooks/openai`, headers, body);
  console.log(`${response.status} ${await response.text()}`);
  if (response.status === 404) {
    console.log(
      "stepwatch serves /v1/webhooks/openai only with OPENAI_WEBHOOK_SECRET set (npm start generates one).",
    );
  }
  if (!response.ok) {
    process.exitCode = 1;
    return;
  }
  // The generated local token may be shown (the banner shows it too); a configured one never is.
  const token = process.env.API_TOKEN?.trim() ? "$API_TOKEN" : (localSecrets().API_TOKEN ?? "$API_TOKEN");
  const read = (path: string) => `  curl -s -H "Authorization: Bearer ${token}" ${values.url}${path}`;
  console.log(
    [
      `stepwatch fetches ${sample.id} from OPENAI_BASE_URL after this answer (npm run openai-standin serves it).`,
      ...(sample.kind === "response"
        ? [
            "Read the hydrated response, and the run and steps it projects to:",
            read(`/v1/responses/${sample.id}`),
            read(`/v1/runs/${sample.id}`),
            read(`/v1/runs/${sample.id}/steps`),
          ]
        : [
            "Its notification appears in stepwatch's output; pending fetches and the API's state:",
            read("/v1/sources"),
          ]),
    ].join("\n"),
  );
}

async function post(url: string, headers: WebhookSignatureHeaders, body: string): Promise<Response> {
  try {
    return await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });
  } catch (error) {
    console.error(
      `send-sample: could not reach ${url}: ${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}`,
    );
    process.exit(1);
  }
}

async function sendRunStep(): Promise<void> {
  const status = values.status as RunStepStatus;
  if (!RUN_STEP_STATUSES.includes(status)) {
    console.error(`--status must be one of ${RUN_STEP_STATUSES.join(", ")}`);
    process.exit(2);
  }
  const secret =
    values.secret ?? process.env.WEBHOOK_SECRET?.split(/[\s,]+/)[0] ?? localSecrets().WEBHOOK_SECRET;
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
  const response = await post(`${values.url}/v1/webhooks/run-steps`, headers, body);
  console.log(`${response.status} ${await response.text()}`);
  process.exitCode = response.ok ? 0 : 1;
}
