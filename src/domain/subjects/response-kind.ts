import type { SubjectKind } from "../subject.js";
import { reader } from "./document-reader.js";

const { str, strOrNull, num, obj, strings, usage } = reader;

const TERMINAL = ["completed", "failed", "cancelled", "incomplete"] as const;

/**
 * An OpenAI Responses API response (SPEC §9): a run. It moves `queued` → `in_progress` → one
 * terminal status and never back; each terminal status owes a notification (`response.<status>`).
 */
export const RESPONSE_KIND: SubjectKind = {
  name: "response",
  label: "Response",
  eventPrefix: "response",
  statuses: ["queued", "in_progress", ...TERMINAL],
  terminal: TERMINAL,
  notifiable: TERMINAL,
  watched: ["queued", "in_progress"],
  pagerDefault: ["failed"],
  severity: {
    completed: "info",
    failed: "error",
    cancelled: "warning",
    incomplete: "warning",
    stalled: "warning",
  },
  icon: {
    completed: ":white_check_mark:",
    failed: ":x:",
    cancelled: ":no_entry_sign:",
    incomplete: ":scissors:",
    stalled: ":warning:",
  },
  view(doc) {
    const id = str(doc, "id");
    const model = strOrNull(doc, "model");
    const promptId = strOrNull(obj(doc, "prompt"), "id");
    const error = obj(doc, "error");
    const incomplete = obj(doc, "incomplete_details");
    const status = str(doc, "status");
    return {
      kind: "response",
      id,
      runId: id,
      threadId: strOrNull(obj(doc, "conversation"), "id") ?? id,
      assistantId: promptId ?? model ?? "",
      status,
      model,
      promptId,
      error: error
        ? { code: str(error, "code"), message: str(error, "message") }
        : incomplete
          ? { code: "incomplete", message: str(incomplete, "reason") }
          : null,
      usage: usage(obj(doc, "usage"), "input_tokens", "output_tokens", "total_tokens"),
      metadata: strings(doc, "metadata"),
      requiredAction: null,
      createdAt: num(doc, "created_at") ?? 0,
      statusAt: status === "completed" ? num(doc, "completed_at") : null,
    };
  },
};
