import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { PAGERDUTY_ENQUEUE_URL, SinkListSchema } from "../src/domain/sink-config-schema.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { DEFAULT_ON, PAGERDUTY_DEFAULT_ON } from "./support/default-subscriptions.js";

// NOTIFY_SINKS (SPEC §6, README "Notifications"): what an operator may write, and the words a
// mistake is answered with (an operator fixes configuration from these messages alone).

const secret = generateWebhookSecret();
const signingKey = `whsk_${Buffer.alloc(32, 7).toString("base64")}`;

/** The first issue as `path: message`, or "ok". */
function check(sinks: unknown): string {
  const result = v.safeParse(SinkListSchema, sinks);
  if (result.success) return "ok";
  const issue = result.issues[0];
  const path = v.getDotPath(issue) ?? "";
  return `${path}: ${issue.message}`;
}

const hook = (extra: Record<string, unknown> = {}) => ({
  type: "webhook",
  url: "https://h.example/x",
  secret,
  ...extra,
});

describe("NOTIFY_SINKS entries", () => {
  it("fills name from type, `on` per type (every kind's notifications; PagerDuty: what pages a person) and PagerDuty's URL", () => {
    const sinks = v.parse(SinkListSchema, [
      { type: "console" },
      { type: "pagerduty", routing_key: "R" },
      { type: "slack", name: "ops-1_A", url: "http://s.example/", on: ["completed"] },
    ]);
    expect(sinks).toEqual([
      {
        type: "console",
        name: "console",
        on: DEFAULT_ON,
      },
      {
        type: "pagerduty",
        name: "pagerduty",
        routing_key: "R",
        url: PAGERDUTY_ENQUEUE_URL,
        on: PAGERDUTY_DEFAULT_ON,
      },
      { type: "slack", name: "ops-1_A", url: "http://s.example/", on: ["completed"] },
    ]);
    expect(PAGERDUTY_ENQUEUE_URL).toBe("https://events.pagerduty.com/v2/enqueue");
  });

  it("a webhook sink signs with a secret, a signing_key or both, never neither", () => {
    expect(check([hook()])).toBe("ok");
    expect(check([hook({ secret: undefined, signing_key: signingKey })])).toBe("ok");
    expect(check([hook({ signing_key: signingKey })])).toBe("ok");
    expect(check([{ type: "webhook", url: "https://h.example/x" }])).toBe(
      "0: a webhook sink needs a secret, a signing_key or both",
    );
    expect(check([hook({ secret: "whsec_!!" })])).toBe(
      "0.secret: must be a Standard Webhooks secret: whsec_ followed by base64 of 24–64 bytes",
    );
    expect(check([hook({ signing_key: "whsk_abc" })])).toBe(
      "0.signing_key: must be whsk_ followed by base64 of 32 or 64 bytes",
    );
    expect(check([hook({ secret: 5 })])).toBe("0.secret: must be a string");
  });

  it("names: 1–64 letters, digits, _ or -, starting with a letter or digit; unique, defaults counted", () => {
    const message = "0.name: must be 1–64 letters, digits, _ or -, starting with a letter or digit";
    expect(check([{ type: "console", name: "a".repeat(64) }])).toBe("ok");
    expect(check([{ type: "console", name: "9" }])).toBe("ok");
    for (const name of ["", "a".repeat(65), "-a", "_a", "a b", "a.b", "é", "a\n"]) {
      expect(check([{ type: "console", name }]), JSON.stringify(name)).toBe(message);
    }
    expect(check([{ type: "console", name: 1 }])).toBe("0.name: must be a string");
    expect(check([{ type: "console" }, { type: "console", name: "console" }])).toBe(
      ": sink names must be unique (name defaults to type)",
    );
    expect(check([{ type: "console" }, { type: "console", name: "other" }])).toBe("ok");
  });

  it("URLs must be absolute http(s)", () => {
    expect(check([hook({ url: "HTTPS://h.example" })])).toBe("ok");
    expect(check([hook({ url: "ftp://h.example/x" })])).toBe("0.url: must be an http(s) URL");
    expect(check([hook({ url: "ftp://h.example/?to=https://x" })])).toBe("0.url: must be an http(s) URL");
    expect(check([hook({ url: "/relative" })])).toBe("0.url: must be an absolute URL");
    expect(check([hook({ url: 1 })])).toBe("0.url: must be a string");
    expect(check([{ type: "slack", url: "mailto:a@b.c" }])).toBe("0.url: must be an http(s) URL");
  });

  it("`on` lists a run step's terminal statuses (or the watchdog's stalled), or any kind's full event names, at least one", () => {
    const among =
      "completed, failed, cancelled, expired, stalled or full event names such as response.failed, agent.session.action_required";
    expect(check([{ type: "console", on: ["failed", "expired"] }])).toBe("ok");
    expect(check([{ type: "console", on: ["stalled"] }])).toBe("ok");
    expect(
      check([{ type: "console", on: ["run_step.failed", "response.stalled", "agent.session.idle"] }]),
    ).toBe("ok");
    expect(check([{ type: "console", on: ["response.queued"] }])).toBe(
      `0.on.0: must list statuses among ${among}`,
    );
    expect(check([{ type: "console", on: [] }])).toBe("0.on: must list at least one status");
    expect(check([{ type: "console", on: ["in_progress"] }])).toBe(
      `0.on.0: must list statuses among ${among}`,
    );
    expect(check([{ type: "console", on: "failed" }])).toBe(
      `0.on: must be a list of statuses among ${among}`,
    );
  });

  it("filters: assistant ids (at least one) and string metadata pairs", () => {
    expect(check([{ type: "console", filter: { metadata: ["x"] } }])).toBe(
      "0.filter.metadata: must be an object of strings",
    );
    expect(check([{ type: "console", filter: { assistant_id: ["a"], metadata: { k: "v" } } }])).toBe("ok");
    expect(check([{ type: "console", filter: { assistant_id: [] } }])).toBe(
      "0.filter.assistant_id: must list at least one assistant id",
    );
    expect(check([{ type: "console", filter: { assistant_id: "a" } }])).toBe(
      "0.filter.assistant_id: must be a list of assistant ids",
    );
    expect(check([{ type: "console", filter: { assistant_id: [1] } }])).toBe(
      "0.filter.assistant_id.0: must be a string",
    );
    expect(check([{ type: "console", filter: { metadata: { k: 1 } } }])).toBe(
      "0.filter.metadata.k: metadata filter values must be strings",
    );
    expect(check([{ type: "console", filter: { metadata: "x" } }])).toBe(
      "0.filter.metadata: must be an object of strings",
    );
    expect(check([{ type: "console", filter: "x" }])).toBe("0.filter: must be an object");
  });

  it("pagerduty needs a non-empty routing_key", () => {
    expect(check([{ type: "pagerduty" }])).toBe("0.routing_key: is required");
    expect(check([{ type: "pagerduty", routing_key: "" }])).toBe("0.routing_key: must not be empty");
    expect(check([{ type: "pagerduty", routing_key: 1 }])).toBe("0.routing_key: must be a string");
  });

  it("a missing or unknown type, and a list that is no list", () => {
    const message = '0.type: type must be "webhook", "slack", "pagerduty" or "console"';
    expect(check([{ type: "email" }])).toBe(message);
    expect(check([{}])).toBe(message);
    expect(check({ type: "console" })).toBe(": must be a JSON array of sinks");
    expect(check([])).toBe("ok");
    expect(check([{ type: "slack" }])).toBe("0.url: is required");
  });

  it("names an unknown field, with the known one it most likely meant", () => {
    const unknown = (field: string, extra: Record<string, unknown> = {}) =>
      check([{ type: "console", [field]: 1, ...extra }]);
    // Case aside.
    expect(unknown("Name")).toBe('0.Name: has an unknown field "Name" (did you mean "name"?)');
    // Two edits on a long name; one on a short one.
    expect(unknown("fitler")).toBe('0.fitler: has an unknown field "fitler" (did you mean "filter"?)');
    expect(unknown("fxltxr")).toBe('0.fxltxr: has an unknown field "fxltxr" (did you mean "filter"?)');
    expect(unknown("fxxtxr")).toBe('0.fxxtxr: has an unknown field "fxxtxr"');
    expect(unknown("onn")).toBe('0.onn: has an unknown field "onn" (did you mean "on"?)');
    expect(unknown("typo")).toBe('0.typo: has an unknown field "typo" (did you mean "type"?)');
    expect(unknown("nm")).toBe('0.nm: has an unknown field "nm"');
    expect(unknown("zzzz")).toBe('0.zzzz: has an unknown field "zzzz"');
    // Insertions and deletions count one edit each.
    expect(unknown("filters")).toBe('0.filters: has an unknown field "filters" (did you mean "filter"?)');
    expect(unknown("filer")).toBe('0.filer: has an unknown field "filer" (did you mean "filter"?)');
    // The start of a longer field, from four characters on.
    expect(check([{ type: "console", filter: { assistant: ["a"] } }])).toBe(
      '0.filter.assistant: has an unknown field "assistant" (did you mean "assistant_id"?)',
    );
    expect(check([{ type: "console", filter: { meta: {} } }])).toBe(
      '0.filter.meta: has an unknown field "meta" (did you mean "metadata"?)',
    );
    expect(check([{ type: "console", filter: { met: {} } }])).toBe(
      '0.filter.met: has an unknown field "met"',
    );
    // The nearest wins when several are near: "urk" is one edit from "url", not "uri".
    expect(check([hook({ urk: 1 })])).toBe('0.urk: has an unknown field "urk" (did you mean "url"?)');
    // Of two fields equally near, the first listed.
    expect(check([hook({ secrey: 1 })])).toBe(
      '0.secrey: has an unknown field "secrey" (did you mean "secret"?)',
    );
  });
});
