import { describe, expect, it } from "vitest";
import {
  buildPagerDutyEvent,
  buildSlackMessage,
  buildWebhookPayload,
  formatConsoleLine,
  headline,
  type Notification,
  notificationMessageId,
  occurredAt,
  problem,
  subjectFacts,
} from "../src/domain/notification-payloads.js";
import { ALL_EVENTS, eventName, parseEventName, SUBJECT_KINDS } from "../src/domain/subject-kinds.js";
import { reader } from "../src/domain/subjects/document-reader.js";
import {
  completedResponse,
  computerUseSession,
  failedResponse,
  functionCallSession,
  incompleteResponse,
} from "./fixtures/openai-objects.js";

// The subject kinds (src/domain/subjects) as a producer declares them, and what every sink renders
// of a response's and an agent session's notification: run steps' own renderings are pinned in
// notification-payloads.test.ts.

const { run_step: STEP, response: RESPONSE, agent_session: SESSION } = SUBJECT_KINDS;
const doc = (value: unknown) => value as Record<string, unknown>;

function responseNotification(
  fixture: unknown,
  event: string,
  extra: Partial<Notification> = {},
): Notification {
  const document = doc(fixture);
  return { event, subjectId: String(document.id), subject: RESPONSE.view(document), document, ...extra };
}

function sessionNotification(fixture: unknown, event: string, eventId = "evt_1"): Notification {
  const document = doc(fixture);
  return { event, subjectId: eventId, subject: SESSION.view(document), document };
}

describe("the kinds", () => {
  it("each declares its statuses, terminal set, notifications and stall-watched statuses", () => {
    expect(STEP).toMatchObject({
      eventPrefix: "run_step",
      statuses: ["in_progress", "completed", "failed", "cancelled", "expired"],
      terminal: ["completed", "failed", "cancelled", "expired"],
      notifiable: ["completed", "failed", "cancelled", "expired"],
      watched: ["in_progress"],
    });
    expect(RESPONSE).toMatchObject({
      eventPrefix: "response",
      statuses: ["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"],
      terminal: ["completed", "failed", "cancelled", "incomplete"],
      notifiable: ["completed", "failed", "cancelled", "incomplete"],
      pagerDefault: ["failed"],
    });
    expect(SESSION).toMatchObject({
      eventPrefix: "agent.session",
      terminal: [],
      notifiable: ["action_required", "failed", "idle"],
      pagerDefault: ["action_required", "failed"],
    });
  });

  it("event names: prefix and status; every notification and stall notice listed; parsed back", () => {
    expect(eventName(SESSION, "idle")).toBe("agent.session.idle");
    expect(ALL_EVENTS).toContain("response.stalled");
    expect(ALL_EVENTS).toContain("agent.session.action_required");
    expect(ALL_EVENTS).not.toContain("response.queued");
    expect(ALL_EVENTS).toHaveLength(4 + 1 + 4 + 1 + 3 + 1);
    expect(parseEventName("agent.session.failed")).toEqual({ kind: SESSION, status: "failed" });
    expect(parseEventName("run_step.stalled")).toEqual({ kind: STEP, status: "stalled" });
    for (const bad of ["response.queued", "agent.session.requires_action", "run_step", "nope.failed", ""]) {
      expect(parseEventName(bad), bad).toBeNull();
    }
  });
});

describe("what a response reads as", () => {
  it("a run of its own: prompt id else model as assistant, conversation as thread, usage as tokens", () => {
    expect(RESPONSE.view(doc(completedResponse))).toEqual({
      kind: "response",
      id: completedResponse.id,
      runId: completedResponse.id,
      threadId: (completedResponse.conversation as { id: string }).id,
      assistantId: "pmpt_abc123",
      status: "completed",
      model: completedResponse.model,
      promptId: "pmpt_abc123",
      error: null,
      usage: { prompt_tokens: 36, completion_tokens: 87, total_tokens: 123 },
      metadata: { team: "storytime" },
      requiredAction: null,
      createdAt: completedResponse.created_at,
      statusAt: completedResponse.completed_at,
    });
    const failed = RESPONSE.view(doc(failedResponse));
    expect(failed).toMatchObject({
      assistantId: failedResponse.model,
      threadId: failedResponse.id,
      promptId: null,
      error: { code: "server_error", message: "The model produced invalid content." },
      statusAt: null,
    });
    expect(RESPONSE.view(doc(incompleteResponse)).error).toEqual({
      code: "incomplete",
      message: "max_output_tokens",
    });
  });

  it("a document missing or mistyping anything still reads, as empty: a stored subject always renders", () => {
    expect(RESPONSE.view({ id: 7, usage: { input_tokens: 1 }, metadata: [], error: "x" })).toEqual({
      kind: "response",
      id: "",
      runId: "",
      threadId: "",
      assistantId: "",
      status: "",
      model: null,
      promptId: null,
      error: null,
      usage: null,
      metadata: null,
      requiredAction: null,
      createdAt: 0,
      statusAt: null,
    });
    expect(STEP.view({}).statusAt).toBeNull();
    expect(STEP.view({ status: "failed", failed_at: 5, created_at: 1 }).statusAt).toBe(5);
  });

  it("metadata keeps string values only, and a key named __proto__ stays a key", () => {
    const metadata = JSON.parse('{"a":"1","b":2,"__proto__":"x"}') as Record<string, unknown>;
    const read = reader.strings({ metadata }, "metadata");
    expect(read).toEqual(JSON.parse('{"a":"1","__proto__":"x"}'));
    expect(Object.getPrototypeOf(read)).toBe(Object.prototype);
    expect(reader.num({ n: Number.POSITIVE_INFINITY }, "n")).toBeNull();
    expect(reader.list({ l: "x" }, "l")).toEqual([]);
  });
});

describe("what an agent session reads as", () => {
  it("its own thread and run, the agent as assistant, the first required action in a few words", () => {
    expect(SESSION.view(doc(functionCallSession))).toMatchObject({
      kind: "agent_session",
      id: functionCallSession.id,
      runId: functionCallSession.id,
      threadId: functionCallSession.id,
      status: "requires_action",
      requiredAction: { type: "function_call", detail: "lookup_order" },
      statusAt: functionCallSession.last_active_at,
    });
    expect(SESSION.view(doc(computerUseSession)).requiredAction?.type).toBe("computer_use_approval_request");
    expect(SESSION.view({ error: "sandbox crashed" }).error).toEqual({
      code: "session_failed",
      message: "sandbox crashed",
    });
    expect(SESSION.view({ error: "" }).error).toBeNull();
    expect(SESSION.view({ required_actions: [null, 3] }).requiredAction).toBeNull();
  });
});

describe("a response's notification, per sink", () => {
  it("webhook: the fetched Response itself as data, its webhook-id by event name", async () => {
    const n = responseNotification(failedResponse, "response.failed");
    expect(buildWebhookPayload(n)).toEqual({
      type: "response.failed",
      timestamp: new Date(failedResponse.created_at * 1000).toISOString(),
      data: failedResponse,
    });
    expect(await notificationMessageId(failedResponse.id, "response.failed", "hook")).toBe(
      `msg_${failedResponse.id}_response.failed_hook`,
    );
    expect(occurredAt(responseNotification(completedResponse, "response.completed"))).toBe(
      new Date((completedResponse.completed_at as number) * 1000).toISOString(),
    );
  });

  it("slack: headline, model, prompt, conversation, tokens, metadata and the error a person acts on", () => {
    const n = responseNotification({ ...failedResponse, metadata: { team: "a<b" } }, "response.failed");
    expect(headline(n)).toBe(`Response failed: ${failedResponse.id}`);
    const message = buildSlackMessage(n);
    expect(message.text).toBe(`:x: Response failed: ${failedResponse.id}`);
    const fields = (message.blocks[1] as { fields: Array<{ text: string }> }).fields.map((f) => f.text);
    expect(fields).toEqual([
      "*Status*\nfailed",
      `*Response*\n\`${failedResponse.id}\``,
      `*Model*\n\`${failedResponse.model}\``,
      "*Tokens*\n120 (prompt 120, completion 0)",
      "*metadata.team*\na&lt;b",
    ]);
    expect(message.blocks[2]).toEqual({
      type: "section",
      text: { type: "mrkdwn", text: "*Error* `server_error`\nThe model produced invalid content." },
    });
    const completed = subjectFacts(responseNotification(completedResponse, "response.completed"));
    expect(completed.map(([label]) => label)).toEqual([
      "Status",
      "Response",
      "Conversation",
      "Model",
      "Prompt",
      "Tokens",
      "metadata.team",
    ]);
  });

  it("an incomplete response says why, not as an error", () => {
    const n = responseNotification(incompleteResponse, "response.incomplete");
    expect(problem(n)).toEqual({ title: "Incomplete", code: "max_output_tokens", message: "" });
    expect(buildSlackMessage(n).blocks[2]).toEqual({
      type: "section",
      text: { type: "mrkdwn", text: "*Incomplete* `max_output_tokens`" },
    });
    expect(formatConsoleLine(n)).toBe(
      `[notify] response.incomplete response=${incompleteResponse.id} model=${incompleteResponse.model} tokens=52 error=max_output_tokens`,
    );
  });

  it("pagerduty: one incident per response, severity by status, what an on-call needs in custom_details", () => {
    const event = buildPagerDutyEvent(responseNotification(failedResponse, "response.failed"), "RK");
    expect(event).toMatchObject({
      routing_key: "RK",
      event_action: "trigger",
      dedup_key: failedResponse.id,
      payload: {
        summary: `Response failed: server_error: The model produced invalid content. (${failedResponse.id})`,
        source: failedResponse.model,
        severity: "error",
        component: "openai-responses",
        group: failedResponse.id,
        class: "response.failed",
        custom_details: {
          response_id: failedResponse.id,
          status: "failed",
          model: failedResponse.model,
          prompt_id: null,
          error: { code: "server_error", message: "The model produced invalid content." },
          usage: { prompt_tokens: 120, completion_tokens: 0, total_tokens: 120 },
        },
      },
    });
    const incomplete = buildPagerDutyEvent(
      responseNotification(incompleteResponse, "response.incomplete"),
      "RK",
    );
    expect((incomplete.payload as { severity: string }).severity).toBe("warning");
  });
});

describe("an agent session's notification, per sink", () => {
  it("says what is asked of a person; its webhook-id is the event's, so each event is its own message", async () => {
    const n = sessionNotification(functionCallSession, "agent.session.action_required", "evt_9");
    expect(buildSlackMessage(n).text).toBe(
      `:raising_hand: Agent session action_required: ${functionCallSession.id}`,
    );
    expect(subjectFacts(n)).toContainEqual(["Required action", "function_call: lookup_order", false]);
    expect(subjectFacts(n)).toContainEqual(["Agent", functionCallSession.agent.id, true]);
    expect(formatConsoleLine(n)).toBe(
      `[notify] agent.session.action_required agent_session=${functionCallSession.id} model=${functionCallSession.agent.model} action=function_call tokens=1500`,
    );
    const page = buildPagerDutyEvent(n, "RK");
    expect(page).toMatchObject({
      dedup_key: functionCallSession.id,
      payload: {
        severity: "warning",
        component: "openai-agents",
        custom_details: {
          agent_session_id: functionCallSession.id,
          required_action: { type: "function_call" },
        },
      },
    });
    expect(await notificationMessageId(n.subjectId, n.event, "hook")).toBe(
      "msg_evt_9_agent.session.action_required_hook",
    );
  });
});
