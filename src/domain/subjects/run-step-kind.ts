import { TERMINAL_STATUSES, TERMINAL_TIMESTAMP, type TerminalStatus } from "../run-step-schema.js";
import type { SubjectKind } from "../subject.js";
import { reader } from "./document-reader.js";

const { str, strOrNull, num, obj, strings, usage } = reader;

const isTerminal = (status: string): status is TerminalStatus =>
  (TERMINAL_STATUSES as readonly string[]).includes(status);

/**
 * An OpenAI Assistants run step (SPEC §3–§6), the founding subject: it moves `in_progress` → one
 * terminal status, each terminal status owes a notification, and `in_progress` is watched for stalls.
 */
export const RUN_STEP_KIND: SubjectKind = {
  name: "run_step",
  label: "Run step",
  eventPrefix: "run_step",
  statuses: ["in_progress", ...TERMINAL_STATUSES],
  terminal: TERMINAL_STATUSES,
  notifiable: TERMINAL_STATUSES,
  watched: ["in_progress"],
  pagerDefault: ["failed", "expired"],
  severity: {
    completed: "info",
    failed: "error",
    cancelled: "warning",
    expired: "warning",
    stalled: "warning",
  },
  icon: {
    completed: ":white_check_mark:",
    failed: ":x:",
    cancelled: ":no_entry_sign:",
    expired: ":hourglass:",
    stalled: ":warning:",
  },
  view(doc) {
    const status = str(doc, "status");
    const lastError = obj(doc, "last_error");
    return {
      kind: "run_step",
      id: str(doc, "id"),
      runId: str(doc, "run_id"),
      threadId: str(doc, "thread_id"),
      assistantId: str(doc, "assistant_id"),
      status,
      model: strOrNull(doc, "model"),
      promptId: null,
      error: lastError ? { code: str(lastError, "code"), message: str(lastError, "message") } : null,
      usage: usage(obj(doc, "usage"), "prompt_tokens", "completion_tokens", "total_tokens"),
      metadata: strings(doc, "metadata"),
      requiredAction: null,
      createdAt: num(doc, "created_at") ?? 0,
      statusAt: isTerminal(status) ? num(doc, TERMINAL_TIMESTAMP[status]) : null,
    };
  },
};
