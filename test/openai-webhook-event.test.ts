import { describe, expect, it } from "vitest";
import {
  parseOpenAiWebhookEvent,
  TAKEN_OPENAI_EVENT_TYPES,
} from "../src/domain/openai/openai-webhook-event.js";
import { completedResponse, failedResponse, idleSession } from "./fixtures/openai-objects.js";

// OpenAI's published example envelope.
const thin = (type: string, data: Record<string, unknown> = { id: "resp_abc123" }, extra = {}) => ({
  id: "evt_abc123",
  object: "event",
  created_at: 1_719_168_000,
  type,
  data,
  ...extra,
});

describe("parseOpenAiWebhookEvent: taken types", () => {
  it.each(Object.entries(TAKEN_OPENAI_EVENT_TYPES))("%s is taken as kind %s", (type, kind) => {
    const data = { id: "sub_1", environment_type: "none" };
    const parsed = parseOpenAiWebhookEvent(thin(type, data));
    expect(parsed).toEqual({
      ok: true,
      event: {
        id: "evt_abc123",
        type,
        createdAt: 1_719_168_000,
        subjectId: "sub_1",
        kind,
        data,
        inline: undefined,
      },
    });
  });

  it("lists exactly the nine types of SPEC §9", () => {
    expect(Object.keys(TAKEN_OPENAI_EVENT_TYPES).sort()).toEqual([
      "agent.session.action_required",
      "agent.session.created",
      "agent.session.failed",
      "agent.session.idle",
      "agent.session.in_progress",
      "response.cancelled",
      "response.completed",
      "response.failed",
      "response.incomplete",
    ]);
  });

  it("accepts a response event without `object` (OpenAI's reference marks it optional)", () => {
    const { object: _omitted, ...bare } = thin("response.completed");
    const parsed = parseOpenAiWebhookEvent(bare);
    expect(parsed.ok && parsed.event.kind).toBe("response");
  });

  it("keeps unknown fields of data exactly as received", () => {
    const data = { id: "sess_1", required_action: { type: "function_call" }, novel: [1, { x: null }] };
    const parsed = parseOpenAiWebhookEvent(thin("agent.session.action_required", data, { extra: true }));
    expect(parsed.ok && parsed.event.data).toBe(data);
  });
});

describe("parseOpenAiWebhookEvent: ignored types", () => {
  it.each([
    ["batch.completed", { id: "batch_abc123" }, "batch_abc123"],
    ["fine_tuning.job.succeeded", { id: "ftjob_abc123" }, "ftjob_abc123"],
    ["eval.run.canceled", { id: "evalrun_abc123" }, "evalrun_abc123"],
    ["realtime.call.incoming", { call_id: "rtc_1", sip_headers: [] }, null],
    ["safety.alert.created", { id: "sa_1" }, "sa_1"],
    ["agent.environment.ready", { id: "env_1" }, "env_1"],
    ["thread.run.step.completed", { id: "step 1 with spaces" }, null],
  ])("%s is ignored", (type, data, subjectId) => {
    expect(parseOpenAiWebhookEvent(thin(type, data))).toEqual({
      ok: true,
      event: {
        id: "evt_abc123",
        type,
        createdAt: 1_719_168_000,
        subjectId,
        kind: "ignored",
        data,
        inline: undefined,
      },
    });
  });
});

describe("parseOpenAiWebhookEvent: refusals", () => {
  const refused = (body: unknown) => {
    const parsed = parseOpenAiWebhookEvent(body);
    if (parsed.ok) throw new Error("accepted");
    return parsed.issues;
  };

  it.each([null, [], "event", 42])("a body that is not an object: %j", (body) => {
    expect(refused(body)).toEqual([{ path: "", message: "must be a JSON object" }]);
  });

  it("a missing data.id on a taken type, with its path", () => {
    expect(refused(thin("response.failed", {}))).toEqual([{ path: "data.id", message: "is required" }]);
  });

  it.each([
    ["empty", ""],
    ["too long", `resp_${"a".repeat(251)}`],
    ["a key separator", "resp#1"],
    ["a slash", "resp/../1"],
    ["a space", "resp 1"],
    ["non-ASCII", "resp_é"],
    ["a number", 7],
  ])("a hostile subject id (%s)", (_name, id) => {
    const issues = refused(thin("response.completed", { id }));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("data.id");
  });

  it("accepts ids of exactly 255 characters and refuses 256", () => {
    expect(parseOpenAiWebhookEvent(thin("response.completed", { id: "r".repeat(255) })).ok).toBe(true);
    expect(refused(thin("response.completed", { id: "r".repeat(256) }))[0]?.message).toBe(
      "data.id must be at most 255 characters",
    );
  });

  it.each([
    ["id", { id: "evt#1" }],
    ["id", { id: "" }],
    ["object", { object: "thread.run.step" }],
    ["created_at", { created_at: 1.5 }],
    ["created_at", { created_at: -1 }],
    ["created_at", { created_at: 1_719_168_000_000 }],
    ["created_at", { created_at: "1719168000" }],
    ["type", { type: "Response.Completed" }],
    ["type", { type: "response" }],
    ["type", { type: `a.${"b".repeat(127)}` }],
    ["data", { data: [] }],
    ["data", { data: null }],
  ])("a bad envelope field: %s %j", (path, override) => {
    const issues = refused({ ...thin("response.completed"), ...override });
    expect(issues.map((issue) => issue.path)).toEqual([path]);
  });

  it("a missing created_at or type is required", () => {
    const { created_at: _c, type: _t, ...rest } = thin("response.completed");
    expect(refused(rest)).toEqual([
      { path: "created_at", message: "is required" },
      { path: "type", message: "is required" },
    ]);
  });

  it("ill-formed Unicode and non-finite numbers anywhere, ignored types included", () => {
    expect(refused(thin("batch.completed", { id: "b", note: "\ud800" }))).toEqual([
      { path: "data.note", message: "must be well-formed Unicode (no lone surrogates)" },
    ]);
    expect(refused(thin("response.completed", { id: "r", n: Number.POSITIVE_INFINITY }))[0]?.path).toBe(
      "data.n",
    );
  });
});

describe("parseOpenAiWebhookEvent: inline objects from a relay", () => {
  it("exposes a full Response sent as data", () => {
    const parsed = parseOpenAiWebhookEvent(thin("response.completed", { ...completedResponse }));
    if (!parsed.ok || parsed.event.kind !== "response") throw new Error("refused");
    expect(parsed.event.subjectId).toBe(completedResponse.id);
    expect(parsed.event.inline?.status).toBe("completed");
    expect(parsed.event.inline?.output).toHaveLength(completedResponse.output.length);
  });

  it("exposes a full AgentSession sent as data, whatever status it has moved on to", () => {
    const parsed = parseOpenAiWebhookEvent(thin("agent.session.in_progress", { ...idleSession }));
    if (!parsed.ok || parsed.event.kind !== "agent_session") throw new Error("refused");
    expect(parsed.event.inline?.id).toBe(idleSession.id);
    expect(parsed.event.inline?.status).toBe("idle");
  });

  it("refuses a relayed response whose status is not the one its type names", () => {
    expect(parseOpenAiWebhookEvent(thin("response.completed", { ...failedResponse }))).toEqual({
      ok: false,
      issues: [
        { path: "data.status", message: 'type "response.completed" disagrees with data.status "failed"' },
      ],
    });
  });

  it("refuses an inline object of the wrong kind or shape, with data-prefixed paths", () => {
    const wrongKind = parseOpenAiWebhookEvent(thin("response.completed", { ...idleSession }));
    expect(wrongKind.ok).toBe(false);
    expect(!wrongKind.ok && wrongKind.issues.map((i) => i.path)).toContain("data.object");
    const broken = parseOpenAiWebhookEvent(
      thin("agent.session.idle", { ...idleSession, status: "sleeping", last_active_at: "now" }),
    );
    expect(!broken.ok && broken.issues.map((i) => i.path)).toEqual(["data.last_active_at", "data.status"]);
  });
});
