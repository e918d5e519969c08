import { isStallEvent, type NotificationEvent } from "./delivery.js";
import type { SubjectView } from "./subject.js";
import { SUBJECT_KINDS } from "./subject-kinds.js";

/** A notification ready to be rendered for any sink. */
export interface Notification {
  readonly event: NotificationEvent;
  /**
   * The id its delivery is keyed by, and its `webhook-id` made from: the subject's own, or for an
   * agent session the OpenAI event that owes it (a session cycles: each event is its own message).
   */
  readonly subjectId: string;
  /** What every rendering says of the subject, read from its stored document by its kind. */
  readonly subject: SubjectView;
  /** The stored object (RunStepObject, Response, AgentSession), unknown fields included. */
  readonly document: Record<string, unknown>;
  /** A test an operator asked for (`POST /v1/sinks/{name}/test`): every rendering says so. */
  readonly test?: boolean;
  /**
   * Unix ms the watchdog found the subject stalled: set on its `.stalled` notice, and on the
   * notification that came after it, which says the subject had stalled.
   */
  readonly stalledAtMs?: number | null;
}

/** Whether this is the watchdog's stall notice. */
const isStall = (n: Notification) => isStallEvent(n.event);
const stalledAt = (n: Notification) =>
  n.stalledAtMs === undefined || n.stalledAtMs === null ? null : new Date(n.stalledAtMs).toISOString();
const kindOf = (n: Notification) => SUBJECT_KINDS[n.subject.kind];
const isStep = (n: Notification) => n.subject.kind === "run_step";

const testMark = (n: Notification) => (n.test ? "[test] " : "");

// The word a notification is about: the status it announces (`failed`, `action_required`), or "stalled".
function statusWord(n: Notification): string {
  return n.event.slice(kindOf(n).eventPrefix.length + 1);
}

/** When the subject reached its status, or was found stalled (falls back to creation), as ISO 8601. */
export function occurredAt(n: Notification): string {
  const { subject } = n;
  if (isStall(n)) return stalledAt(n) ?? new Date(subject.createdAt * 1000).toISOString();
  return new Date((subject.statusAt ?? subject.createdAt) * 1000).toISOString();
}

// A header value must be printable ASCII; longer ids than this are hashed too, to stay well-formed.
const READABLE_ID = /^[\x21-\x7e]{1,200}$/;

/**
 * The `webhook-id` of a notification to a sink: the same for every retry and resend, so a receiver
 * can de-duplicate, and different per subject, status and sink. Readable (`msg_<step>_<status>_<sink>`
 * for a run step, `msg_<id>_<event>_<sink>` for other kinds) when that is a valid header value;
 * otherwise, for ids with non-ASCII or control characters or of great length, `msg_h_` and a
 * SHA-256 of the three, which is just as stable.
 */
export async function notificationMessageId(
  subjectId: string,
  event: NotificationEvent,
  sink: string,
): Promise<string> {
  // A run step's ids are what receivers have de-duplicated on since the start: kept as they were.
  const status = event.startsWith("run_step.") ? event.slice("run_step.".length) : event;
  const readable = `msg_${subjectId}_${status}_${sink}`;
  if (READABLE_ID.test(readable)) return readable;
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(`${subjectId}\n${status}\n${sink}`),
  );
  let binary = "";
  for (const byte of new Uint8Array(digest)) binary += String.fromCharCode(byte);
  return `msg_h_${btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "")}`;
}

/** Body of a `webhook` sink delivery (SPEC §6, §9): the stored object itself, a *fat* event. */
export function buildWebhookPayload(n: Notification): {
  type: NotificationEvent;
  timestamp: string;
  data: unknown;
  /** When the watchdog found the subject stalled (its stall notice, and the one after it). */
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

// Said of a notification whose subject the watchdog had found stalled before it ended.
const afterStall = (n: Notification) =>
  !isStall(n) && stalledAt(n) ? ` (had stalled at ${stalledAt(n)})` : "";

// Slack caps a section's text at 3000 characters; long error messages are cut, not rejected.
const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

const tokens = (usage: SubjectView["usage"]) =>
  usage
    ? `${usage.total_tokens} (prompt ${usage.prompt_tokens}, completion ${usage.completion_tokens})`
    : "n/a";

/** The headline every person-facing rendering starts with: `Run step failed: step_1 (run run_1)`. */
export function headline(n: Notification, escapeText: (text: string) => string = (t) => t): string {
  const { subject } = n;
  const run = subject.runId !== subject.id ? ` (run ${escapeText(subject.runId)})` : "";
  return `${kindOf(n).label} ${statusWord(n)}: ${escapeText(subject.id)}${run}${afterStall(n)}`;
}

/**
 * The facts a person needs, as (label, value, shown as code) in the order they are shown: what it
 * is, where it ran, the model and prompt, the tokens, what is asked of them, its metadata. A run
 * step's list is what Slack showed before there were other kinds.
 */
export function subjectFacts(n: Notification): [label: string, value: string, code: boolean][] {
  const { subject } = n;
  if (isStep(n)) {
    return [
      ["Status", statusWord(n), false],
      ["Step", subject.id, true],
      ["Run", subject.runId, true],
      ["Thread", subject.threadId, true],
      ["Assistant", subject.assistantId, true],
      ["Tokens", tokens(subject.usage), false],
    ];
  }
  const facts: [string, string, boolean][] = [
    ["Status", statusWord(n), false],
    [kindOf(n).label, subject.id, true],
  ];
  if (subject.threadId !== subject.id) facts.push(["Conversation", subject.threadId, true]);
  if (subject.model) facts.push(["Model", subject.model, true]);
  if (subject.promptId) facts.push(["Prompt", subject.promptId, true]);
  else if (subject.kind === "agent_session" && subject.assistantId) {
    facts.push(["Agent", subject.assistantId, true]);
  }
  facts.push(["Tokens", tokens(subject.usage), false]);
  if (subject.requiredAction) {
    const { type, detail } = subject.requiredAction;
    facts.push(["Required action", detail ? `${type}: ${detail}` : type, false]);
  }
  // Slack shows ten fields at most: the first few metadata pairs, the rest in the webhook payload.
  for (const [key, value] of Object.entries(subject.metadata ?? {}).slice(0, 3)) {
    facts.push([`metadata.${key}`, value, false]);
  }
  return facts;
}

/** What went wrong, as a person reads it: "Error" with a code and message, or "Incomplete" with its reason. */
export function problem(n: Notification): { title: string; code: string; message: string } | null {
  const { error } = n.subject;
  if (!error) return null;
  return error.code === "incomplete"
    ? { title: "Incomplete", code: error.message || "unknown reason", message: "" }
    : { title: "Error", code: error.code, message: error.message };
}

/** An incoming-webhook message: a `text` fallback plus `blocks` with what a person needs to act. */
export function buildSlackMessage(n: Notification): { text: string; blocks: unknown[] } {
  const code = (value: string) => `\`${escapeSlack(value)}\``;
  const icon = kindOf(n).icon[statusWord(n)] ?? ":bell:";
  const text = `${testMark(n)}${icon} ${headline(n, escapeSlack)}`;
  const fields = subjectFacts(n).map(
    ([label, value, isCode]) => `*${escapeSlack(label)}*\n${isCode ? code(value) : escapeSlack(value)}`,
  );
  const blocks: unknown[] = [
    { type: "section", text: { type: "mrkdwn", text: `*${text}*` } },
    { type: "section", fields: fields.map((f) => ({ type: "mrkdwn", text: clip(f, 1900) })) },
  ];
  const issue = problem(n);
  if (issue) {
    const message = issue.message ? `\n${escapeSlack(issue.message)}` : "";
    blocks.push({
      type: "section",
      text: { type: "mrkdwn", text: clip(`*${issue.title}* ${code(issue.code)}${message}`, 2900) },
    });
  }
  blocks.push({ type: "context", elements: [{ type: "mrkdwn", text: `stepwatch · ${occurredAt(n)}` }] });
  return { text, blocks };
}

const COMPONENT = {
  run_step: "openai-assistants",
  response: "openai-responses",
  agent_session: "openai-agents",
};

/** A PagerDuty Events API v2 `trigger`, de-duplicated per subject. */
export function buildPagerDutyEvent(n: Notification, routingKey: string): Record<string, unknown> {
  const { subject, document } = n;
  const issue = problem(n);
  const reason = issue ? `: ${issue.code}${issue.message ? `: ${issue.message}` : ""}` : "";
  const where = isStep(n) ? ` (step ${subject.id}, run ${subject.runId})` : ` (${subject.id})`;
  const word = statusWord(n);
  return {
    routing_key: routingKey,
    event_action: "trigger",
    dedup_key: n.test ? `test_${subject.id}` : subject.id,
    client: "stepwatch",
    payload: {
      summary: clip(`${testMark(n)}${kindOf(n).label} ${word}${reason}${where}${afterStall(n)}`, 1024),
      source: isStep(n)
        ? `assistant ${subject.assistantId}`
        : subject.model || subject.assistantId || "openai",
      severity: n.test ? "info" : (kindOf(n).severity[word] ?? "warning"),
      timestamp: occurredAt(n),
      component: COMPONENT[subject.kind],
      group: subject.runId,
      class: n.event,
      custom_details: isStep(n)
        ? {
            step_id: subject.id,
            run_id: subject.runId,
            thread_id: subject.threadId,
            assistant_id: subject.assistantId,
            status: word,
            type: document.type,
            last_error: document.last_error,
            usage: document.usage,
            metadata: document.metadata,
          }
        : {
            [`${subject.kind}_id`]: subject.id,
            thread_id: subject.threadId,
            status: word,
            model: subject.model,
            prompt_id: subject.promptId,
            assistant_id: subject.assistantId,
            error: subject.error,
            required_action: subject.requiredAction,
            usage: subject.usage,
            metadata: subject.metadata,
          },
    },
  };
}

/** One human-readable line for the console sink. */
export function formatConsoleLine(n: Notification): string {
  const { subject } = n;
  const usage = subject.usage ? ` tokens=${subject.usage.total_tokens}` : "";
  const issue = problem(n);
  const error = issue
    ? ` error=${issue.code}${issue.message ? `: ${JSON.stringify(issue.message)}` : ""}`
    : "";
  const stall = stalledAt(n) ? ` stalled_at=${stalledAt(n)}` : "";
  const about = isStep(n)
    ? `step=${subject.id} run=${subject.runId} thread=${subject.threadId} assistant=${subject.assistantId}`
    : `${subject.kind}=${subject.id}${subject.model ? ` model=${subject.model}` : ""}${
        subject.requiredAction ? ` action=${subject.requiredAction.type}` : ""
      }`;
  return escapeControls(`[notify] ${testMark(n)}${n.event} ${about}${usage}${error}${stall}`);
}

// Control characters (C0, DEL, C1, line and paragraph separators) as \u escapes: an id that
// carries a newline or a terminal escape can neither forge a second (log) line nor colour the terminal.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
