import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../src/config/config-schema.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { DEFAULT_ON, PAGERDUTY_DEFAULT_ON } from "./support/default-subscriptions.js";

const secret = generateWebhookSecret();

const error = (env: Record<string, unknown>) => {
  try {
    parseConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
};

describe("configuration", () => {
  it("applies the documented defaults", () => {
    const config = parseConfig({ WEBHOOK_SECRET: secret });
    expect(config).toMatchObject({
      WEBHOOK_SECRET: [secret],
      API_TOKEN: [],
      DYNAMODB_TABLE: "stepwatch",
      NOTIFY_SINKS: [],
      SIGNATURE_TOLERANCE_S: 300,
      MAX_BODY_BYTES: 262_144,
      RETENTION_DAYS: 0,
      NOTIFY_RETRY_SCHEDULE: [30, 120, 600, 3600, 21_600, 86_400],
      NOTIFY_TIMEOUT_MS: 10_000,
      SWEEP_INTERVAL_S: 15,
      LOG_LEVEL: "info",
      PORT: 8787,
      HOST: "127.0.0.1",
      HEADERS_TIMEOUT_MS: 10_000,
      REQUEST_TIMEOUT_MS: 30_000,
      KEEP_ALIVE_TIMEOUT_MS: 5_000,
      MAX_CONNECTIONS: 1_024,
    });
  });

  it("reads the Node server's connection bounds, and refuses a headers time-out beyond the request's", () => {
    const config = parseConfig({
      WEBHOOK_SECRET: secret,
      HEADERS_TIMEOUT_MS: "2000",
      REQUEST_TIMEOUT_MS: "2000",
      KEEP_ALIVE_TIMEOUT_MS: "100",
      MAX_CONNECTIONS: "1",
    });
    expect(config).toMatchObject({
      HEADERS_TIMEOUT_MS: 2_000,
      REQUEST_TIMEOUT_MS: 2_000,
      KEEP_ALIVE_TIMEOUT_MS: 100,
      MAX_CONNECTIONS: 1,
    });
    expect(error({ WEBHOOK_SECRET: secret, HEADERS_TIMEOUT_MS: "2001", REQUEST_TIMEOUT_MS: "2000" })).toBe(
      "Invalid configuration: HEADERS_TIMEOUT_MS must not exceed REQUEST_TIMEOUT_MS (the headers are part of the request)",
    );
    expect(
      error({
        WEBHOOK_SECRET: secret,
        MAX_CONNECTIONS: "0",
        KEEP_ALIVE_TIMEOUT_MS: "99",
        REQUEST_TIMEOUT_MS: "999",
      }).split("\n"),
    ).toEqual([
      "Invalid configuration: REQUEST_TIMEOUT_MS must be a whole number from 1000 to 600000",
      "Invalid configuration: KEEP_ALIVE_TIMEOUT_MS must be a whole number from 100 to 600000",
      "Invalid configuration: MAX_CONNECTIONS must be a whole number from 1 to 1000000",
    ]);
  });

  it("reads several secrets and tokens separated by spaces or commas", () => {
    const second = generateWebhookSecret();
    const config = parseConfig({
      WEBHOOK_SECRET: `${secret}, ${second}`,
      API_TOKEN: `${"a".repeat(16)} ${"b".repeat(20)}`,
    });
    expect(config.WEBHOOK_SECRET).toEqual([secret, second]);
    expect(config.API_TOKEN).toEqual(["a".repeat(16), "b".repeat(20)]);
  });

  it("takes whpk_ public keys beside or instead of whsec_ secrets, and webhook sinks with a signing_key", () => {
    const whpk = `whpk_${Buffer.alloc(32, 9).toString("base64")}`;
    expect(parseConfig({ WEBHOOK_SECRET: `${secret},${whpk}` }).WEBHOOK_SECRET).toEqual([secret, whpk]);
    expect(parseConfig({ WEBHOOK_SECRET: whpk }).WEBHOOK_SECRET).toEqual([whpk]);
    for (const bytes of [32, 64]) {
      const signing_key = `whsk_${Buffer.alloc(bytes, 3).toString("base64")}`;
      const config = parseConfig({
        WEBHOOK_SECRET: secret,
        NOTIFY_SINKS: JSON.stringify([{ type: "webhook", url: "https://x", signing_key }]),
      });
      expect(config.NOTIFY_SINKS).toMatchObject([{ type: "webhook", signing_key }]);
    }
  });

  it("fills sink defaults: name from type, on by type", () => {
    const config = parseConfig({
      WEBHOOK_SECRET: secret,
      NOTIFY_SINKS: JSON.stringify([{ type: "console" }, { type: "pagerduty", routing_key: "rk" }]),
    });
    expect(config.NOTIFY_SINKS).toEqual([
      {
        type: "console",
        name: "console",
        on: DEFAULT_ON,
      },
      {
        type: "pagerduty",
        name: "pagerduty",
        routing_key: "rk",
        url: "https://events.pagerduty.com/v2/enqueue",
        on: PAGERDUTY_DEFAULT_ON,
      },
    ]);
  });

  it.each([
    [{}, /^Invalid configuration: WEBHOOK_SECRET is required/],
    [
      { WEBHOOK_SECRET: "not-a-secret" },
      /^Invalid configuration: WEBHOOK_SECRET entry #1 must start with "whsec_" \(HMAC secret\) or "whpk_" \(Ed25519 public key\)$/,
    ],
    [
      { WEBHOOK_SECRET: `${secret} whsk_${Buffer.alloc(32, 1).toString("base64")}` },
      /^Invalid configuration: WEBHOOK_SECRET entry #2 is a whsk_ signing key, which stays with the sender: configure its whpk_ instead$/,
    ],
    [
      { WEBHOOK_SECRET: `whpk_${Buffer.alloc(31, 1).toString("base64")}` },
      /^Invalid configuration: WEBHOOK_SECRET entry #1 must be whpk_ followed by base64 of 32 bytes \(got 31\)$/,
    ],
    [
      { WEBHOOK_SECRET: "whpk_not*base64" },
      /^Invalid configuration: WEBHOOK_SECRET entry #1 must be whpk_ followed by base64 of 32 bytes$/,
    ],
    [
      {
        WEBHOOK_SECRET: secret,
        NOTIFY_SINKS: '[{"type":"webhook","url":"https://x","signing_key":"whsk_AAAA"}]',
      },
      /^Invalid configuration: NOTIFY_SINKS\[0\]\.signing_key must be whsk_ followed by base64 of 32 or 64 bytes$/,
    ],
    [
      { WEBHOOK_SECRET: secret, NOTIFY_SINKS: '[{"type":"webhook","url":"https://x"}]' },
      /^Invalid configuration: NOTIFY_SINKS\[0\] a webhook sink needs a secret, a signing_key or both$/,
    ],
    [
      { WEBHOOK_SECRET: secret, SIGNATURE_TOLERANCE_S: "ten" },
      /^Invalid configuration: SIGNATURE_TOLERANCE_S must be a whole number/,
    ],
    [
      { WEBHOOK_SECRET: secret, MAX_BODY_BYTES: "999999999" },
      /^Invalid configuration: MAX_BODY_BYTES must be a whole number from 1024 to 358400$/,
    ],
    [
      { WEBHOOK_SECRET: secret, NOTIFY_RETRY_SCHEDULE: "1,x" },
      /^Invalid configuration: NOTIFY_RETRY_SCHEDULE must be comma-separated seconds/,
    ],
    [
      { WEBHOOK_SECRET: secret, LOG_LEVEL: "loud" },
      /^Invalid configuration: LOG_LEVEL must be debug, info, warn or error$/,
    ],
    [
      { WEBHOOK_SECRET: secret, API_TOKEN: "short" },
      /^Invalid configuration: API_TOKEN each token must be at least 16 characters$/,
    ],
    [
      { WEBHOOK_SECRET: secret, NOTIFY_SINKS: "[{" },
      /^Invalid configuration: NOTIFY_SINKS must be a JSON array of sinks$/,
    ],
    [
      { WEBHOOK_SECRET: secret, NOTIFY_SINKS: '[{"type":"carrier-pigeon"}]' },
      /^Invalid configuration: NOTIFY_SINKS\[0\]\.type type must be/,
    ],
    [
      { WEBHOOK_SECRET: secret, NOTIFY_SINKS: JSON.stringify([{ type: "webhook", url: "ftp://x", secret }]) },
      /^Invalid configuration: NOTIFY_SINKS\[0\]\.url must be an http\(s\) URL$/,
    ],
    [
      { WEBHOOK_SECRET: secret, NOTIFY_SINKS: '[{"type":"console"},{"type":"console"}]' },
      /NOTIFY_SINKS sink names must be unique/,
    ],
    [
      { WEBHOOK_SECRET: secret, NOTIFY_SINKS: '[{"type":"slack","url":"https://h","on":["done"]}]' },
      /^Invalid configuration: NOTIFY_SINKS\[0\]\.on\[0\] must list statuses/,
    ],
    [
      { WEBHOOK_SECRET: secret, AWS_ACCESS_KEY_ID: "AKIA" },
      /AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together/,
    ],
  ])("refuses %j with one line naming the variable", (env, message) => {
    const text = error(env);
    expect(text).toMatch(message);
    expect(text).not.toContain("\n");
  });

  it("reports every problem at once, one line each, in the order of the variables", () => {
    const text = error({ SIGNATURE_TOLERANCE_S: "ten", LOG_LEVEL: "loud", AWS_ACCESS_KEY_ID: "AKIA" });
    expect(text.split("\n")).toEqual([
      "Invalid configuration: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together",
      "Invalid configuration: WEBHOOK_SECRET is required: one or more whsec_ secrets or whpk_ public keys",
      "Invalid configuration: SIGNATURE_TOLERANCE_S must be a whole number from 1 to 86400",
      "Invalid configuration: LOG_LEVEL must be debug, info, warn or error",
    ]);
    try {
      parseConfig({ LOG_LEVEL: "loud" });
    } catch (e) {
      expect((e as ConfigError).problems).toHaveLength(2);
    }
  });

  it.each([
    [
      { type: "webhook", url: "https://x", secrt: secret },
      ['NOTIFY_SINKS[0] has an unknown field "secrt" (did you mean "secret"?)'],
    ],
    [{ type: "console", Name: "c" }, ['NOTIFY_SINKS[0] has an unknown field "Name" (did you mean "name"?)']],
    [{ type: "console", colour: "red" }, ['NOTIFY_SINKS[0] has an unknown field "colour"']],
    [
      { type: "slack", url: "https://x", filter: { assistant: ["asst_1"] } },
      ['NOTIFY_SINKS[0].filter has an unknown field "assistant" (did you mean "assistant_id"?)'],
    ],
    [{ type: "pagerduty", routing_key: "rk", filter: 3 }, ["NOTIFY_SINKS[0].filter must be an object"]],
    [
      { type: "slack", url: "https://x", filter: { assistant_id: "asst_1" } },
      ["NOTIFY_SINKS[0].filter.assistant_id must be a list of assistant ids"],
    ],
  ])("names sink field %j problems in plain words", (sink, lines) => {
    const text = error({ WEBHOOK_SECRET: secret, NOTIFY_SINKS: JSON.stringify([sink]) });
    expect(text.split("\n")).toEqual(lines.map((line) => `Invalid configuration: ${line}`));
    expect(text).not.toMatch(/Invalid (key|type)|Expected|never/);
  });

  it("accepts API tokens of the bearer token alphabet and refuses others", () => {
    const good = "AZaz09-._~+/tokenpad==";
    expect(parseConfig({ WEBHOOK_SECRET: secret, API_TOKEN: good, METRICS_TOKEN: good }).API_TOKEN).toEqual([
      good,
    ]);
    for (const bad of [
      "token-with-a-$-sign",
      "padding=in-the-middle",
      "tökenwithumlaut1234",
      "=leadingpadding12345",
    ]) {
      expect(error({ WEBHOOK_SECRET: secret, API_TOKEN: `${good} ${bad}` })).toBe(
        "Invalid configuration: API_TOKEN each token may only use letters, digits and - . _ ~ + / (then = padding): the bearer token alphabet",
      );
    }
    expect(error({ WEBHOOK_SECRET: secret, METRICS_TOKEN: "metrics:token:1234567" })).toMatch(
      /^Invalid configuration: METRICS_TOKEN each token may only use/,
    );
  });

  it("never echoes a secret value in its message", () => {
    const leaky = "whsec_c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw==";
    const text = error({ WEBHOOK_SECRET: leaky.slice(0, 20) });
    expect(text).not.toContain(leaky.slice(6, 20));
    const sinkSecret = "whsec_dG9vLXNob3J0";
    const sinkText = error({
      WEBHOOK_SECRET: secret,
      NOTIFY_SINKS: JSON.stringify([{ type: "webhook", url: "https://x", secret: sinkSecret }]),
    });
    expect(sinkText).toMatch(/NOTIFY_SINKS\[0\]\.secret must be a Standard Webhooks secret/);
    expect(sinkText).not.toContain(sinkSecret);
  });

  it("ignores non-string bindings, as Workers pass KV namespaces and services alongside vars", () => {
    expect(parseConfig({ WEBHOOK_SECRET: secret, DYNAMODB_TABLE: { binding: true } }).DYNAMODB_TABLE).toBe(
      "stepwatch",
    );
  });
});

describe("configuration: each setting's accepted forms and its refusal, word for word", () => {
  const parsed = (env: Record<string, string>) => parseConfig({ WEBHOOK_SECRET: secret, ...env });
  const refusal = (env: Record<string, string>) => error({ WEBHOOK_SECRET: secret, ...env });

  it.each([
    ["SIGNATURE_TOLERANCE_S", " 42 ", 42],
    ["SIGNATURE_TOLERANCE_S", "1", 1],
    ["SIGNATURE_TOLERANCE_S", "86400", 86_400],
    ["SWEEP_INTERVAL_S", "0.05", 0.05],
    ["SWEEP_INTERVAL_S", " 1.25 ", 1.25],
    ["SWEEP_BUDGET_MS", " 100 ", 100],
    ["SWEEP_BUDGET_MS", "840000", 840_000],
    ["DYNAMODB_TABLE", "a.b-c_1", "a.b-c_1"],
    ["AWS_REGION", "eu-west-3", "eu-west-3"],
  ] as const)("%s=%j reads as %j", (name, value, expected) => {
    expect(parsed({ [name]: value })[name]).toBe(expected);
  });

  it("reads NOTIFY_RETRY_SCHEDULE's seconds, fractions included", () => {
    expect(parsed({ NOTIFY_RETRY_SCHEDULE: "30, 1.25,600" }).NOTIFY_RETRY_SCHEDULE).toEqual([30, 1.25, 600]);
  });

  it("takes a blank value as unset: the default applies", () => {
    expect(parsed({ DYNAMODB_TABLE: "   ", SIGNATURE_TOLERANCE_S: " " })).toMatchObject({
      DYNAMODB_TABLE: "stepwatch",
      SIGNATURE_TOLERANCE_S: 300,
    });
  });

  it.each([
    [
      "SIGNATURE_TOLERANCE_S",
      ["x5", "5x", "4 2", "1.5", "0", "86401"],
      "must be a whole number from 1 to 86400",
    ],
    ["SWEEP_INTERVAL_S", ["x1", "1x", "1.", "1.5x", ". 5"], "must be a number of seconds"],
    ["SWEEP_INTERVAL_S", ["0.04"], "must be at least 0.05"],
    [
      "SWEEP_BUDGET_MS",
      ["x100", "100x", "1 00", "1.5", "99", "840001"],
      "must be a whole number of ms from 100 to 840000",
    ],
    ["DYNAMODB_TABLE", ["ab", "x/abc", "abc!", "my table"], "must be 3–255 letters, digits, _, - or ."],
    ["DYNAMODB_ENDPOINT", ["127.0.0.1:8000"], "must be an absolute URL"],
    ["AWS_REGION", ["US-EAST-1", "!us-east-1", "us-east-1!"], "must be a region name such as us-east-1"],
    ["NOTIFY_SINKS", ["[{", "sinks"], "must be a JSON array of sinks"],
    [
      "NOTIFY_RETRY_SCHEDULE",
      ["30,x", "x30", "30x", "1.", "1.5s"],
      "must be comma-separated seconds, e.g. 30,120,600",
    ],
  ] as const)("%s refuses %j: one line naming it", (name, values, message) => {
    for (const value of values) {
      expect(refusal({ [name]: value }), value).toBe(`Invalid configuration: ${name} ${message}`);
    }
  });
});
