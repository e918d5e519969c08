import * as v from "valibot";
import { describe, expect, it } from "vitest";
import type { NotificationEvent } from "../src/domain/delivery.js";
import {
  buildPagerDutyEvent,
  buildSlackMessage,
  buildWebhookPayload,
  formatConsoleLine,
  type Notification,
  notificationMessageId,
  occurredAt,
} from "../src/domain/notification-payloads.js";
import { RunStepSchema, type TerminalStatus } from "../src/domain/run-step-schema.js";
import { makeStep } from "./support/run-steps.js";
import { stepNotification } from "./support/subject-notifications.js";

// What each sink receives (SPEC §6), rendered without a network: notifications.test.ts checks the
// same bodies arriving at real HTTP sinks, this file pins their every field and edge.

const CREATED = 1_764_000_000;
const iso = (s: number) => new Date(s * 1000).toISOString();

function notification(
  status: TerminalStatus,
  overrides: Record<string, unknown> = {},
  test = false,
): Notification {
  const document = makeStep({ status, ...overrides });
  v.parse(RunStepSchema, document);
  return stepNotification(`run_step.${status}` as NotificationEvent, document, test ? { test: true } : {});
}

describe("when a notification happened", () => {
  it("is the terminal status's own timestamp, as ISO 8601", () => {
    for (const status of ["completed", "failed", "cancelled", "expired"] as const) {
      expect(occurredAt(notification(status)), status).toBe(iso(CREATED + 30));
    }
    const late = notification("failed", { failed_at: CREATED + 99, completed_at: CREATED + 5 });
    expect(occurredAt(late)).toBe(iso(CREATED + 99));
  });

  it("falls back to created_at when the terminal timestamp is absent (the streaming shape)", () => {
    const n = notification("expired");
    expect(occurredAt(stepNotification(n.event, { ...n.document, expired_at: null }))).toBe(iso(CREATED));
  });
});

describe("webhook-id of a notification", () => {
  it("is readable and stable per (step, status, sink)", async () => {
    expect(await notificationMessageId("step_1", "run_step.failed", "hook")).toBe("msg_step_1_failed_hook");
    expect(await notificationMessageId("step_1", "run_step.failed", "hook")).toBe(
      await notificationMessageId("step_1", "run_step.failed", "hook"),
    );
  });

  it("is a hash (msg_h_ and unpadded base64url of SHA-256) when the readable form is no header value", async () => {
    const expected = async (text: string) =>
      `msg_h_${Buffer.from(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))).toString("base64url")}`;
    for (const stepId of ["step é", "step\n1", "step 1", "x".repeat(200)]) {
      const id = await notificationMessageId(stepId, "run_step.completed", "hook");
      expect(id, JSON.stringify(stepId)).toBe(await expected(`${stepId}\ncompleted\nhook`));
      expect(id).toMatch(/^msg_h_[A-Za-z0-9_-]{43}$/);
    }
    // The longest readable one: 200 printable characters in all.
    const longest = "s".repeat(200 - "msg__completed_hook".length);
    expect(await notificationMessageId(longest, "run_step.completed", "hook")).toBe(
      `msg_${longest}_completed_hook`,
    );
    expect(await notificationMessageId(`${longest}s`, "run_step.completed", "hook")).toMatch(/^msg_h_/);
    // Different statuses and sinks never share a hash.
    const a = await notificationMessageId("step é", "run_step.failed", "hook");
    expect(a).not.toBe(await notificationMessageId("step é", "run_step.expired", "hook"));
    expect(a).not.toBe(await notificationMessageId("step é", "run_step.failed", "hook2"));
  });
});

describe("webhook sink body", () => {
  it("is { type, timestamp, data: the stored document }, and `test: true` only for a test", () => {
    const n = notification("completed", { extra_field: "kept" });
    expect(buildWebhookPayload(n)).toEqual({
      type: "run_step.completed",
      timestamp: iso(CREATED + 30),
      data: n.document,
    });
    expect(buildWebhookPayload({ ...n, test: true })).toEqual({
      type: "run_step.completed",
      timestamp: iso(CREATED + 30),
      data: n.document,
      test: true,
    });
  });
});

describe("slack sink message", () => {
  it("says status, step, run, thread, assistant, tokens, error code and message, and when", () => {
    const message = buildSlackMessage(notification("failed"));
    expect(message.text).toBe(":x: Run step failed: step_abc123 (run run_abc123)");
    expect(message.blocks).toEqual([
      {
        type: "section",
        text: { type: "mrkdwn", text: "*:x: Run step failed: step_abc123 (run run_abc123)*" },
      },
      {
        type: "section",
        fields: [
          "*Status*\nfailed",
          "*Step*\n`step_abc123`",
          "*Run*\n`run_abc123`",
          "*Thread*\n`thread_abc123`",
          "*Assistant*\n`asst_abc123`",
          "*Tokens*\n579 (prompt 123, completion 456)",
        ].map((text) => ({ type: "mrkdwn", text })),
      },
      { type: "section", text: { type: "mrkdwn", text: "*Error* `server_error`\nThe model crashed" } },
      { type: "context", elements: [{ type: "mrkdwn", text: `stepwatch · ${iso(CREATED + 30)}` }] },
    ]);
  });

  it("has an icon per status, n/a tokens without usage, no error block without an error, [test] for a test", () => {
    const icons = {
      completed: ":white_check_mark:",
      failed: ":x:",
      cancelled: ":no_entry_sign:",
      expired: ":hourglass:",
    };
    for (const [status, icon] of Object.entries(icons)) {
      expect(buildSlackMessage(notification(status as TerminalStatus)).text.startsWith(`${icon} `)).toBe(
        true,
      );
    }
    const done = buildSlackMessage(notification("completed", { usage: null }, true));
    expect(done.text).toBe("[test] :white_check_mark: Run step completed: step_abc123 (run run_abc123)");
    expect(JSON.stringify(done.blocks)).toContain("*Tokens*\\nn/a");
    expect(done.blocks).toHaveLength(3);
  });

  it("escapes &, < and > in everything a sender wrote (Slack's control characters)", () => {
    const message = buildSlackMessage(
      notification("failed", {
        id: "step_<!channel>&",
        run_id: "run_<@U1>",
        last_error: { code: "server_error", message: "a <b> & c > d" },
      }),
    );
    expect(message.text).toBe(":x: Run step failed: step_&lt;!channel&gt;&amp; (run run_&lt;@U1&gt;)");
    const all = JSON.stringify(message);
    expect(all).not.toMatch(/<|>/);
    expect(all).toContain("a &lt;b&gt; &amp; c &gt; d");
  });

  it("cuts an error message past Slack's section limit, keeping it under 3000 characters", () => {
    const message = buildSlackMessage(
      notification("failed", { last_error: { code: "server_error", message: "m".repeat(5000) } }),
    );
    const errorBlock = message.blocks[2] as { text: { text: string } };
    expect(errorBlock.text.text).toHaveLength(2900);
    expect(errorBlock.text.text.endsWith("m…")).toBe(true);
    // Exactly at the limit: kept whole.
    const prefix = "*Error* `server_error`\n";
    const exact = buildSlackMessage(
      notification("failed", {
        last_error: { code: "server_error", message: "m".repeat(2900 - prefix.length) },
      }),
    );
    expect((exact.blocks[2] as { text: { text: string } }).text.text).toBe(
      `${prefix}${"m".repeat(2900 - prefix.length)}`,
    );
    const short = buildSlackMessage(
      notification("failed", { last_error: { code: "server_error", message: "m".repeat(10) } }),
    );
    expect((short.blocks[2] as { text: { text: string } }).text.text).toBe(
      `*Error* \`server_error\`\n${"m".repeat(10)}`,
    );
  });
});

describe("pagerduty sink event", () => {
  it("is an Events API v2 trigger de-duplicated by step id, with what an on-call needs", () => {
    const n = notification("failed");
    expect(buildPagerDutyEvent(n, "R0UTING")).toEqual({
      routing_key: "R0UTING",
      event_action: "trigger",
      dedup_key: "step_abc123",
      client: "stepwatch",
      payload: {
        summary: "Run step failed: server_error: The model crashed (step step_abc123, run run_abc123)",
        source: "assistant asst_abc123",
        severity: "error",
        timestamp: iso(CREATED + 30),
        component: "openai-assistants",
        group: "run_abc123",
        class: "run_step.failed",
        custom_details: {
          step_id: "step_abc123",
          run_id: "run_abc123",
          thread_id: "thread_abc123",
          assistant_id: "asst_abc123",
          status: "failed",
          type: "message_creation",
          last_error: { code: "server_error", message: "The model crashed" },
          usage: { prompt_tokens: 123, completion_tokens: 456, total_tokens: 579 },
          metadata: {},
        },
      },
    });
  });

  it("severity per status; a test is info, marked, and never de-duplicated with a real page", () => {
    const severity = (status: TerminalStatus) =>
      (buildPagerDutyEvent(notification(status), "k").payload as { severity: string }).severity;
    expect([severity("completed"), severity("failed"), severity("cancelled"), severity("expired")]).toEqual([
      "info",
      "error",
      "warning",
      "warning",
    ]);
    const test = buildPagerDutyEvent(notification("failed", {}, true), "k");
    expect(test.dedup_key).toBe("test_step_abc123");
    expect(test.payload).toMatchObject({ severity: "info" });
    expect((test.payload as { summary: string }).summary.startsWith("[test] Run step failed: ")).toBe(true);
  });

  it("a summary without an error has no reason, and is cut at PagerDuty's 1024 characters", () => {
    const expired = buildPagerDutyEvent(notification("expired"), "k").payload as { summary: string };
    expect(expired.summary).toBe("Run step expired (step step_abc123, run run_abc123)");
    const long = buildPagerDutyEvent(
      notification("failed", { last_error: { code: "server_error", message: "m".repeat(2000) } }),
      "k",
    ).payload as { summary: string };
    expect(long.summary).toHaveLength(1024);
    expect(long.summary.endsWith("…")).toBe(true);
  });
});

describe("console sink line", () => {
  it("marks a test, and leaves out tokens and error when the step has none", () => {
    expect(formatConsoleLine(notification("completed", { usage: null }, true))).toBe(
      "[notify] [test] run_step.completed step=step_abc123 run=run_abc123 thread=thread_abc123 assistant=asst_abc123",
    );
  });

  it("escapes DEL, C1 and the paragraph separator, but not printable text around them", () => {
    const line = formatConsoleLine(notification("completed", { id: "a\u007fb\u009fc\u2029d\u00a0e~" }));
    expect(line).toContain("step=a\\u007fb\\u009fc\\u2029d\u00a0e~ ");
  });
});
