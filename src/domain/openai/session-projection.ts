import type { RunStepStatus } from "../run-step-schema.js";
import type { AgentSessionItem, AgentSessionObject, AgentSessionStatus } from "./agent-session-object.js";
import { itemStepStatus } from "./item-step-status.js";
import type { ProjectedStep } from "./response-projection.js";
import { stepError } from "./step-error.js";

/** An agent session as a thread (SPEC §9). */
export interface ProjectedSessionThread {
  readonly thread_id: string;
  readonly assistant_id: string;
  readonly status: AgentSessionStatus;
  readonly model: string | null;
  readonly created_at: number;
  readonly last_active_at: number;
  readonly usage: {
    readonly prompt_tokens: number;
    readonly completion_tokens: number;
    readonly total_tokens: number;
  } | null;
  /** The types of the actions the session waits for (function_call, computer_use_approval_request, …). */
  readonly required_action_types: readonly string[];
}

/** The thread and steps of one session. */
export interface SessionProjection {
  readonly thread: ProjectedSessionThread;
  readonly steps: readonly ProjectedStep[];
}

/**
 * Projects a session and its items (as listed, oldest first) onto the run-and-step model: the
 * session is a thread, each item with an id a step. A step's run is the item's `turn_id` (the
 * SDK's items all carry one: a turn is what a run was, one round of work on the thread), or the
 * session id for an item without one. assistant_id = the agent's id, else its model, else the
 * session id. Items have no timestamp, so a step's created_at is the session's (stable over
 * re-fetches, unlike last_active_at) and its order is its position in the list.
 */
export function projectSession(
  session: AgentSessionObject,
  items: readonly AgentSessionItem[],
): SessionProjection {
  const assistantId = session.agent?.id ?? session.agent?.model ?? session.id;
  const thread: ProjectedSessionThread = {
    thread_id: session.id,
    assistant_id: assistantId,
    status: session.status,
    model: session.agent?.model ?? null,
    created_at: session.created_at,
    last_active_at: session.last_active_at,
    usage: session.usage
      ? {
          prompt_tokens: session.usage.input_tokens,
          completion_tokens: session.usage.output_tokens,
          total_tokens: session.usage.total_tokens,
        }
      : null,
    required_action_types: session.required_actions.map((action) => action.type),
  };
  // A failed session will not finish what it left open; any other status may still carry on.
  const settled: RunStepStatus | null = session.status === "failed" ? "failed" : null;
  const parentError = session.error ? { code: "session_failed", message: session.error } : null;
  const steps: ProjectedStep[] = [];
  items.forEach((item, position) => {
    if (item.id === null) return;
    // Items without a status (agent_message, approval requests and results) are records of
    // something that has happened: completed.
    const status = itemStepStatus(item.status, settled, "completed");
    const { type, step_details } = sessionStepDetails(item, item.id);
    steps.push({
      id: item.id,
      run_id: item.turn_id ?? session.id,
      thread_id: session.id,
      assistant_id: assistantId,
      type,
      status,
      step_details,
      created_at: item.created_at ?? session.created_at,
      position,
      last_error: stepError(item, status, parentError),
    });
  });
  return { thread, steps };
}

function sessionStepDetails(
  item: AgentSessionItem,
  id: string,
): { type: string; step_details: Record<string, unknown> } {
  const raw = item as Record<string, unknown>;
  if (item.type === "message") {
    return {
      type: "message_creation",
      step_details: { type: "message_creation", message_creation: { message_id: id } },
    };
  }
  if (item.type === "function_call") {
    // A session's arguments are parsed JSON, a run step's a string: kept as the string it was sent as.
    const args = typeof raw.arguments === "string" ? raw.arguments : JSON.stringify(raw.arguments ?? null);
    return {
      type: "tool_calls",
      step_details: {
        type: "tool_calls",
        tool_calls: [
          {
            id: typeof raw.call_id === "string" ? raw.call_id : id,
            type: "function",
            function: { name: raw.name ?? null, arguments: args, output: null },
          },
        ],
      },
    };
  }
  return { type: item.type, step_details: { type: item.type, [item.type]: item } };
}
