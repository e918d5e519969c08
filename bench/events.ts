import { createHmac } from "node:crypto";
import { decodeWebhookSecret } from "../src/domain/webhook-secret.js";
import { makeToolCallsStep } from "../test/support/run-steps.js";

/** One signed delivery, ready to send. */
export interface SignedEvent {
  readonly stepId: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Statuses the bench sends. */
export type BenchStatus = "in_progress" | "completed";

// Placeholders swapped for real ids by string concatenation: far cheaper than JSON per event.
const STEP_MARK = "step_BENCHSTEPID";
const RUN_MARK = "run_BENCHRUNID";
// Steps per run, as a run of an assistant with tools typically has.
const STEPS_PER_RUN = 8;

const PYTHON = [
  "import pandas as pd",
  "df = pd.read_csv('/mnt/data/orders.csv', parse_dates=['created_at'])",
  "monthly = df.groupby(df.created_at.dt.to_period('M'))['amount'].agg(['count', 'sum', 'mean'])",
  "monthly['growth'] = monthly['sum'].pct_change().round(3)",
  "print(monthly.tail(6).to_string())",
  "monthly.plot(y='sum', kind='bar', figsize=(8, 4)).get_figure().savefig('/mnt/data/monthly.png')",
].join("\n");
const LOGS = [
  "         count        sum    mean  growth",
  "created_at",
  "2025-05    1204   98213.50   81.57   0.041",
  "2025-06    1187   97002.10   81.72  -0.012",
  "2025-07    1302  106420.85   81.74   0.097",
  "2025-08    1255  103117.40   82.16  -0.031",
  "2025-09    1349  111980.00   83.01   0.086",
  "2025-10    1401  118064.25   84.27   0.054",
].join("\n");

/** A tool_calls run step of about 2 KB, the size of a typical one, as JSON with id placeholders. */
export function stepTemplate(status: BenchStatus): Record<string, unknown> {
  return makeToolCallsStep({
    id: STEP_MARK,
    run_id: RUN_MARK,
    status,
    metadata: { customer: "cus_8f2a61", conversation: "conv_2025_10_q4_report", priority: "high" },
    step_details: {
      type: "tool_calls",
      tool_calls: [
        {
          id: "call_ci",
          type: "code_interpreter",
          code_interpreter: {
            input: PYTHON,
            outputs: [
              { type: "logs", logs: LOGS },
              { type: "image", image: { file_id: "file-9kPz2mQ7vT3xW1yL" } },
            ],
          },
        },
        {
          id: "call_fs",
          type: "file_search",
          file_search: {
            ranking_options: { ranker: "default_2024_08_21", score_threshold: 0.5 },
            results: [
              {
                file_id: "file-3hF8sK2pQ9",
                file_name: "q3-board-report.pdf",
                score: 0.87,
                content: [{ type: "text", text: "Revenue grew 8.6% month over month in September." }],
              },
              {
                file_id: "file-7pQ2rT9wX4",
                file_name: "pricing-changes-2025.md",
                score: 0.64,
                content: [
                  { type: "text", text: "From July, annual plans are billed monthly at a 12% discount." },
                ],
              },
            ],
          },
        },
        {
          id: "call_fn",
          type: "function",
          function: {
            name: "create_chart_summary",
            arguments: '{"period":"2025-05..2025-10","metric":"sum","format":"markdown"}',
            output: null,
          },
        },
      ],
    },
  });
}

/** Makes unique, signed run step events as fast as string concatenation allows. */
export interface EventFactory {
  /** The next event: a new step id (and every 8th a new run id), signed for `nowSeconds`. */
  next(status: BenchStatus, nowSeconds: number): SignedEvent;
  /** An event for an existing step number, e.g. the terminal snapshot of a step sent before. */
  forStep(index: number, status: BenchStatus, nowSeconds: number): SignedEvent;
  /** Ids handed out so far. */
  readonly count: number;
  /** The step id of step number `index`. */
  stepId(index: number): string;
}

/**
 * An event factory for one secret. `prefix` keeps the ids of separate phases (and runs) apart.
 * Signing uses node:crypto directly, the Standard Webhooks scheme: base64 HMAC-SHA256 of
 * `id.timestamp.body` under the secret's key bytes.
 */
export function createEventFactory(secret: string, prefix: string): EventFactory {
  const key = Buffer.from(decodeWebhookSecret(secret));
  const templates = {
    in_progress: split(JSON.stringify(stepTemplate("in_progress"))),
    completed: split(JSON.stringify(stepTemplate("completed"))),
  };
  let count = 0;
  const stepId = (index: number) => `step_${prefix}${index.toString(36)}`;
  const make = (index: number, status: BenchStatus, nowSeconds: number): SignedEvent => {
    const id = stepId(index);
    const run = `run_${prefix}${Math.floor(index / STEPS_PER_RUN).toString(36)}`;
    const body = templates[status].map((part) => (part === STEP_MARK ? id : part === RUN_MARK ? run : part));
    const text = body.join("");
    const messageId = `msg_${prefix}${status === "in_progress" ? "p" : "c"}${index.toString(36)}`;
    const timestamp = String(Math.floor(nowSeconds));
    const signature = createHmac("sha256", key)
      .update(`${messageId}.${timestamp}.`)
      .update(text)
      .digest("base64");
    return {
      stepId: id,
      body: text,
      headers: {
        "content-type": "application/json",
        "webhook-id": messageId,
        "webhook-timestamp": timestamp,
        "webhook-signature": `v1,${signature}`,
      },
    };
  };
  return {
    next(status, nowSeconds) {
      return make(count++, status, nowSeconds);
    },
    forStep: make,
    get count() {
      return count;
    },
    stepId,
  };
}

// Splits the JSON around the placeholders, keeping them as separate parts to substitute.
function split(json: string): string[] {
  return json.split(new RegExp(`(${STEP_MARK}|${RUN_MARK})`));
}

/**
 * Posts a signed event to an in-process app (as the runtimes would hand it the request) and checks
 * the ingest outcome; `phase` names the bench phase in the error.
 */
export async function postToApp(
  app: { fetch(request: Request): Response | Promise<Response> },
  event: SignedEvent,
  expected: string,
  phase: string,
): Promise<void> {
  const response = await app.fetch(
    new Request("http://bench/v1/webhooks/run-steps", {
      method: "POST",
      headers: event.headers,
      body: event.body,
    }),
  );
  const answer = (await response.json()) as { outcome?: string };
  if (answer.outcome !== expected) {
    throw new Error(`${phase}: expected outcome ${expected}, got ${JSON.stringify(answer)}`);
  }
}
