import { type NotificationEvent, STALLED_EVENT } from "./delivery.js";
import { type RunStep, TERMINAL_TIMESTAMP, type TerminalStatus } from "./run-step-schema.js";

/** A notification ready to be rendered for any sink. */
export interface Notification {
  readonly event: NotificationEvent;
  readonly step: RunStep;
  /** The stored RunStepObject, unknown fields included. */
  readonly document: Record<string, unknown>;
  /** A test an operator asked for (`POST /v1/sinks/{name}/test`): every rendering says so. */
  readonly test?: boolean;
  /**
   * Unix ms the watchdog found the step stalled: set on its `run_step.stalled` notice, and on the
   * terminal notification that came after it, which says the step had stalled.
   */
  readonly stalledAtMs?: number | null;
}

/** Whether this is the watchdog's stall notice. */
const isStall = (n: Notification) => n.event === STALLED_EVENT;
const stalledAt = (n: Notification) =>
  n.stalledAtMs === undefined || n.stalledAtMs === null ? null : new Date(n.stalledAtMs).toISOString();

const testMark = (n: Notification) => (n.test ? "[test] " : "");

// The word a notification is about: a terminal status, or "stalled".
function statusWord(n: Notification): TerminalStatus | "stalled" {
  return n.event.slice("run_step.".length) as TerminalStatus | "stalled";
}

/** When the step reached its terminal status, or was found stalled (falls back to creation), as ISO 8601. */
export function occurredAt(n: Notification): string {
  const word = statusWord(n);
  if (word === "stalled") return stalledAt(n) ?? new Date(n.step.created_at * 1000).toISOString();
  const seconds = n.step[TERMINAL_TIMESTAMP[word]] ?? n.step.created_at;
  return new Date(seconds * 1000).toISOString();
}

// A header value must be printable ASCII; longer ids than this are hashed too, to stay well-formed.
const READABLE_ID = /^[\x21-\x7e]{1,200}$/;

/**
 * The `webhook-id` of a notification to a sink: the same for every retry and resend, so a receiver
 * can de-duplicate, and different per step, status and sink. Readable (`msg_<step>_<status>_<sink>`)
 * when that is a valid header value; otherwise, for step ids with non-ASCII or control characters
 * or of great length, `msg_h_` and a SHA-256 of the three, which is just as stable.
 */
export async function notificationMessageId(
  stepId: string,
  event: NotificationEvent,
  sink: string,
): Promise<string> {
  const status = event.slice("run_step.".length);
  const readable = `msg_${stepId}_${status}_${sink}`;
  if (READABLE_ID.test(readable)) return readable;
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(`${stepId}\n${status}\n${sink}`),
  );
  let binary = "";
  for (const byte of new Uint8Array(digest)) binary += String.fromCharCode(byte);
  return `msg_h_${btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "")}`;
}

/** Body of a `webhook` sink delivery (SPEC §6). */
export function buildWebhookPayload(n: Notification): {
  type: NotificationEvent;
  timestamp: string;
  data: unknown;
  /** When the watchdog found the step stalled (its stall notice, and the terminal one after it). */
  stalled_at?: string;
  test?: true;
} {
  return {
    type: n.event,
    timestamp: occurredAt(n),
    data: n.document,
    ...(stalledAt(n) ? { stalled_at: stalledAt(n) as string } : {}),
    ...(n.test ? { test: true as const } : {}),
  };
}

/** Escapes text for Slack mrkdwn: `&`, `<` and `>` are control characters there. */
export function escapeSlack(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

const SLACK_ICON: Record<TerminalStatus | "stalled", string> = {
  completed: ":white_check_mark:",
  failed: ":x:",
  cancelled: ":no_entry_sign:",
  expired: ":hourglass:",
  stalled: ":warning:",
};

// Said of a terminal notification whose step the watchdog had found stalled before it ended.
const afterStall = (n: Notification) =>
  !isStall(n) && stalledAt(n) ? ` (had stalled at ${stalledAt(n)})` : "";

// Slack caps a section's text at 3000 characters; long error messages are cut, not rejected.
const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** An incoming-webhook message: a `text` fallback plus `blocks` with what a person needs to act. */
export function buildSlackMessage(n: Notification): { text: string; blocks: unknown[] } {
  const status = statusWord(n);
  const { step } = n;
  const code = (value: string) => `\`${escapeSlack(value)}\``;
  const text = `${testMark(n)}${SLACK_ICON[status]} Run step ${status}: ${escapeSlack(step.id)} (run ${escapeSlack(step.run_id)})${afterStall(n)}`;
  const fields = [
    `*Status*\n${status}`,
    `*Step*\n${code(step.id)}`,
    `*Run*\n${code(step.run_id)}`,
    `*Thread*\n${code(step.thread_id)}`,
    `*Assistant*\n${code(step.assistant_id)}`,
    `*Tokens*\n${step.usage ? `${step.usage.total_tokens} (prompt ${step.usage.prompt_tokens}, completion ${step.usage.completion_tokens})` : "n/a"}`,
  ];
  const blocks: unknown[] = [
    { type: "section", text: { type: "mrkdwn", text: `*${text}*` } },
    { type: "section", fields: fields.map((f) => ({ type: "mrkdwn", text: f })) },
  ];
  if (step.last_error) {
    blocks.push({
      type: "section",
      text: {
        type: "mrkdwn",
        text: clip(`*Error* ${code(step.last_error.code)}\n${escapeSlack(step.last_error.message)}`, 2900),
      },
    });
  }
  blocks.push({ type: "context", elements: [{ type: "mrkdwn", text: `stepwatch · ${occurredAt(n)}` }] });
  return { text, blocks };
}

const SEVERITY: Record<TerminalStatus | "stalled", "info" | "warning" | "error" | "critical"> = {
  completed: "info",
  failed: "error",
  cancelled: "warning",
  expired: "warning",
  stalled: "warning",
};

/** A PagerDuty Events API v2 `trigger`, de-duplicated per step. */
export function buildPagerDutyEvent(n: Notification, routingKey: string): Record<string, unknown> {
  const status = statusWord(n);
  const { step } = n;
  const reason = step.last_error ? `: ${step.last_error.code}: ${step.last_error.message}` : "";
  return {
    routing_key: routingKey,
    event_action: "trigger",
    dedup_key: n.test ? `test_${step.id}` : step.id,
    client: "stepwatch",
    payload: {
      summary: clip(
        `${testMark(n)}Run step ${status}${reason} (step ${step.id}, run ${step.run_id})${afterStall(n)}`,
        1024,
      ),
      source: `assistant ${step.assistant_id}`,
      severity: n.test ? "info" : SEVERITY[status],
      timestamp: occurredAt(n),
      component: "openai-assistants",
      group: step.run_id,
      class: n.event,
      custom_details: {
        step_id: step.id,
        run_id: step.run_id,
        thread_id: step.thread_id,
        assistant_id: step.assistant_id,
        status,
        type: step.type,
        last_error: step.last_error,
        usage: step.usage,
        metadata: step.metadata,
      },
    },
  };
}

/** One human-readable line for the console sink. */
export function formatConsoleLine(n: Notification): string {
  const { step } = n;
  const tokens = step.usage ? ` tokens=${step.usage.total_tokens}` : "";
  const error = step.last_error
    ? ` error=${step.last_error.code}: ${JSON.stringify(step.last_error.message)}`
    : "";
  const stall = stalledAt(n) ? ` stalled_at=${stalledAt(n)}` : "";
  const line = `[notify] ${testMark(n)}${n.event} step=${step.id} run=${step.run_id} thread=${step.thread_id} assistant=${step.assistant_id}${tokens}${error}${stall}`;
  return escapeControls(line);
}

// Control characters (C0, DEL, C1, line and paragraph separators) as \u escapes: an id that
// carries a newline or a terminal escape can neither forge a second (log) line nor colour the terminal.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
