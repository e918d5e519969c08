import type { RequiredAction, SubjectKind } from "../subject.js";
import { reader } from "./document-reader.js";

const { str, strOrNull, num, obj, list, strings, usage } = reader;

// What a person is asked to decide, in a few words: the function, server or origin concerned.
function describeAction(action: Readonly<Record<string, unknown>>): RequiredAction {
  const type = str(action, "type");
  const request = obj(action, "request");
  const fn = obj(action, "function");
  const detail =
    strOrNull(fn, "name") ??
    strOrNull(action, "name") ??
    (request
      ? (strOrNull(request, "name") ?? strOrNull(request, "origin") ?? strOrNull(request, "type"))
      : null);
  return { type, detail };
}

/**
 * An OpenAI Agents API session (SPEC §9): a thread whose items are steps. It cycles (`idle`,
 * `in_progress`, `requires_action`, `failed`), so no status is terminal and every OpenAI event of a
 * session is its own notification (`agent.session.<status>`), owed once per event id.
 */
export const AGENT_SESSION_KIND: SubjectKind = {
  name: "agent_session",
  label: "Agent session",
  eventPrefix: "agent.session",
  statuses: ["idle", "in_progress", "requires_action", "failed"],
  terminal: [],
  // Named after the webhook events: `action_required` is the event of status `requires_action`.
  notifiable: ["action_required", "failed", "idle"],
  watched: ["in_progress"],
  pagerDefault: ["action_required", "failed"],
  severity: { action_required: "warning", failed: "error", idle: "info", stalled: "warning" },
  icon: { action_required: ":raising_hand:", failed: ":x:", idle: ":zzz:", stalled: ":warning:" },
  view(doc) {
    const id = str(doc, "id");
    const agent = obj(doc, "agent");
    const error = doc.error;
    const actions = list(doc, "required_actions").filter(
      (a): a is Record<string, unknown> => typeof a === "object" && a !== null && !Array.isArray(a),
    );
    const first = actions[0];
    return {
      kind: "agent_session",
      id,
      runId: id,
      threadId: id,
      assistantId: strOrNull(agent, "id") ?? "",
      status: str(doc, "status"),
      model: strOrNull(agent, "model"),
      promptId: null,
      error:
        typeof error === "string" && error !== ""
          ? { code: "session_failed", message: error }
          : obj(doc, "error")
            ? { code: str(obj(doc, "error"), "code"), message: str(obj(doc, "error"), "message") }
            : null,
      usage: usage(obj(doc, "usage"), "input_tokens", "output_tokens", "total_tokens"),
      metadata: strings(doc, "metadata"),
      requiredAction: first ? describeAction(first) : null,
      createdAt: num(doc, "created_at") ?? 0,
      statusAt: num(doc, "last_active_at"),
    };
  },
};
