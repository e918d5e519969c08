// What the bench sends and serves for OpenAI's platform webhooks (SPEC §9): thin events signed as
// OpenAI signs them (Standard Webhooks, OPENAI_WEBHOOK_SECRET), and the hydrated object the
// loopback stand-in of OpenAI's API answers with, a 10-item 20 KB completed response.
import { createHmac } from "node:crypto";
import { decodeWebhookSecret } from "../src/domain/webhook-secret.js";
import { completedResponse, OUTPUT_ITEMS, type WireResponse } from "../test/fixtures/openai-objects.js";
import type { SignedEvent } from "./events.js";

/** The OpenAI webhook route. */
export const OPENAI_PATH = "/v1/webhooks/openai";
/** JSON size the bench's response is built to. */
export const RESPONSE_BYTES = 20 * 1024;

// Text that deflates about as English prose does (3–4×): words drawn from a small vocabulary by a
// seeded generator, so every run stores the same bytes. Repeating one sentence would deflate 20×
// and understate every write of the stored response.
const WORDS = (
  "the a of to and in that is for it as with was on be by this are from at or an have not which " +
  "customer order invoice refund shipment report quarter revenue growth margin region product " +
  "price discount annual monthly plan account balance payment schedule contract renewal churn " +
  "analysis summary table chart trend forecast estimate variance budget cost spend segment " +
  "we you they our their will would should could can may might must also only then than more " +
  "less most first last next previous between across within during after before because while " +
  "increase decrease compare review confirm update create delete list search fetch compute check"
).split(" ");

function prose(bytes: number, seed: number): string {
  let state = seed >>> 0 || 1;
  const next = () => {
    // xorshift32: fast, deterministic, good enough to pick words.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  const out: string[] = [];
  let length = 0;
  let sentence = 0;
  while (length < bytes) {
    let word = WORDS[Math.floor(next() * WORDS.length)] ?? "the";
    if (sentence === 0) word = word.charAt(0).toUpperCase() + word.slice(1);
    sentence++;
    if (sentence > 8 + Math.floor(next() * 10)) {
      word += ".";
      sentence = 0;
    } else if (next() < 0.06) {
      word += ",";
    }
    out.push(word);
    length += word.length + 1;
  }
  return out.join(" ").slice(0, bytes);
}

/**
 * A completed background response of 10 output items (reasoning, two file searches, a web search,
 * two function calls with their outputs, code interpreter, the message) whose JSON is
 * {@link RESPONSE_BYTES}, built from the SDK-typed fixtures of the tests; `id` is filled in later.
 */
export function responseTemplate(): WireResponse {
  const build = (messageBytes: number): WireResponse => ({
    ...completedResponse,
    id: "resp_BENCH",
    output: [
      { ...OUTPUT_ITEMS.reasoning, summary: [{ type: "summary_text", text: prose(1500, 1) }] },
      {
        ...OUTPUT_ITEMS.file_search_call,
        id: "fs_bench_1",
        results: [
          {
            file_id: "file-2dtbBZdjtDKS8eqWxqbgDi",
            filename: "q3-board-report.pdf",
            score: 0.87,
            text: prose(1200, 2),
          },
          {
            file_id: "file-3eucCAekuELT9frXyrchEj",
            filename: "pricing-2025.md",
            score: 0.64,
            text: prose(900, 3),
          },
        ],
      },
      { ...OUTPUT_ITEMS.web_search_call, id: "ws_bench_1" },
      {
        ...OUTPUT_ITEMS.function_call,
        id: "fc_bench_1",
        call_id: "call_bench_1",
        name: "lookup_orders",
        arguments: JSON.stringify({
          customer: "cus_8f2a61",
          from: "2025-05-01",
          to: "2025-10-31",
          limit: 50,
        }),
      },
      {
        ...OUTPUT_ITEMS.function_call_output,
        id: "fco_bench_1",
        call_id: "call_bench_1",
        output: JSON.stringify({ orders: prose(3000, 4).split(". ") }),
      },
      {
        ...OUTPUT_ITEMS.code_interpreter_call,
        id: "ci_bench_1",
        code: `import pandas as pd\n# ${prose(1200, 5)}\nprint(df.describe())`,
        outputs: [{ type: "logs", logs: prose(1500, 6) }],
      },
      {
        ...OUTPUT_ITEMS.file_search_call,
        id: "fs_bench_2",
        queries: ["renewal terms"],
        results: [
          { file_id: "file-7pQ2rT9wX4", filename: "contracts.md", score: 0.71, text: prose(1200, 7) },
        ],
      },
      {
        ...OUTPUT_ITEMS.function_call,
        id: "fc_bench_2",
        call_id: "call_bench_2",
        name: "create_chart_summary",
        arguments: '{"period":"2025-05..2025-10","metric":"sum","format":"markdown"}',
      },
      {
        ...OUTPUT_ITEMS.function_call_output,
        id: "fco_bench_2",
        call_id: "call_bench_2",
        output: prose(2000, 8),
      },
      {
        ...OUTPUT_ITEMS.message,
        content: [{ type: "output_text", text: prose(messageBytes, 9), annotations: [] }],
      },
    ],
  });
  // The message takes whatever the other items leave of the 20 KB.
  const without = JSON.stringify(build(0)).length;
  return build(Math.max(0, RESPONSE_BYTES - without));
}

/** Makes signed thin `response.completed` events, each for a new response the stand-in serves. */
export interface ThinEventFactory {
  /** The next event (its `stepId` is the response id), signed for `nowSeconds`. */
  next(nowSeconds: number): SignedEvent;
  readonly count: number;
}

/**
 * A thin event factory for OpenAI's `secret`. `serve` is called with each new response's id
 * before its event exists, so the stand-in can answer its hydration. `prefix` keeps phases apart.
 */
export function createThinEventFactory(
  secret: string,
  prefix: string,
  serve: (responseId: string) => void,
): ThinEventFactory {
  const key = Buffer.from(decodeWebhookSecret(secret));
  let count = 0;
  return {
    next(nowSeconds) {
      const n = (count++).toString(36);
      const responseId = `resp_${prefix}${n}`;
      serve(responseId);
      const timestamp = String(Math.floor(nowSeconds));
      const body = `{"id":"evt_${prefix}${n}","object":"event","created_at":${timestamp},"type":"response.completed","data":{"id":"${responseId}"}}`;
      const messageId = `wh_${prefix}${n}`;
      const signature = createHmac("sha256", key)
        .update(`${messageId}.${timestamp}.`)
        .update(body)
        .digest("base64");
      return {
        stepId: responseId,
        body,
        headers: {
          "content-type": "application/json",
          "webhook-id": messageId,
          "webhook-timestamp": timestamp,
          "webhook-signature": `v1,${signature}`,
        },
      };
    },
    get count() {
      return count;
    },
  };
}
