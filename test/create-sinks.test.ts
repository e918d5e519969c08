import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { webCryptoHmacSha256 } from "../src/domain/hmac-sha256.js";
import {
  buildPagerDutyEvent,
  buildSlackMessage,
  formatConsoleLine,
  type Notification,
} from "../src/domain/notification-payloads.js";
import { parseRunStepEvent } from "../src/domain/run-step-event.js";
import type { SinkConfig } from "../src/domain/sink-config-schema.js";
import { bytesToBase64, generateWebhookSecret, WebhookSecretError } from "../src/domain/webhook-secret.js";
import { createSinks } from "../src/notify/create-sinks.js";
import { makeStep } from "./support/run-steps.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";
import { stepNotification } from "./support/subject-notifications.js";

// Each sink type is built into the sender it names, inside the test (the apps of other test files
// build theirs before any test runs): a Slack config posts Slack's format, and so on.

let server: SinkServer;
beforeAll(async () => {
  server = await startSinkServer();
});
afterAll(() => server.close());

function notification(): Notification {
  const parsed = parseRunStepEvent(makeStep({ id: "step_sinks", status: "completed" }));
  if (!parsed.ok || parsed.event.kind !== "snapshot") throw new Error("the sample step must be valid");
  return stepNotification("run_step.completed", parsed.event.document);
}

describe("createSinks", () => {
  it("builds each configured type into its own sender", async () => {
    const secret = generateWebhookSecret();
    const lines: string[] = [];
    const configs = [
      { name: "hook", type: "webhook", url: `${server.url}/hook`, secret, on: ["completed"] },
      { name: "chat", type: "slack", url: `${server.url}/slack`, on: ["completed"] },
      { name: "pager", type: "pagerduty", url: `${server.url}/pd`, routing_key: "rk_1", on: ["completed"] },
      { name: "log", type: "console", on: ["completed"] },
    ] as unknown as SinkConfig[];
    const sinks = await createSinks(configs, {
      timeoutMs: 2_000,
      hmac: webCryptoHmacSha256,
      writeLine: (line) => lines.push(line),
    });
    expect([...sinks.keys()]).toEqual(["hook", "chat", "pager", "log"]);
    expect([...sinks.values()].map((s) => s.type)).toEqual(["webhook", "slack", "pagerduty", "console"]);

    const n = notification();
    for (const sink of sinks.values()) expect(await sink.send(n)).toMatchObject({ ok: true });

    const byPath = new Map(server.received.map((r) => [r.path, r]));
    expect(server.received).toHaveLength(3);
    const hook = byPath.get("/hook");
    expect(() =>
      new Webhook(secret).verify(hook?.body ?? "", {
        "webhook-id": String(hook?.headers["webhook-id"]),
        "webhook-timestamp": String(hook?.headers["webhook-timestamp"]),
        "webhook-signature": String(hook?.headers["webhook-signature"]),
      }),
    ).not.toThrow();
    expect(JSON.parse(byPath.get("/slack")?.body ?? "")).toEqual(buildSlackMessage(n));
    expect(JSON.parse(byPath.get("/pd")?.body ?? "")).toEqual(buildPagerDutyEvent(n, "rk_1"));
    expect(lines).toEqual([formatConsoleLine(n)]);
  });

  it("a console sink given nowhere to write writes to standard output", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      const sinks = await createSinks(
        [{ name: "out", type: "console", on: ["completed"] }] as unknown as SinkConfig[],
        {
          timeoutMs: 2_000,
          hmac: webCryptoHmacSha256,
        },
      );
      const n = notification();
      await sinks.get("out")?.send(n);
      expect(log.mock.calls).toEqual([[formatConsoleLine(n)]]);
    } finally {
      log.mockRestore();
    }
  });

  it("a signing key that cannot be used names where it is, never the key", async () => {
    const seed = new Uint8Array(32).fill(7);
    const notItsPublicKey = new Uint8Array(32).fill(9);
    const signingKey = `whsk_${bytesToBase64(new Uint8Array([...seed, ...notItsPublicKey]))}`;
    const configs = [
      { name: "log", type: "console", on: ["completed"] },
      {
        name: "hook",
        type: "webhook",
        url: `${server.url}/hook`,
        signing_key: signingKey,
        on: ["completed"],
      },
    ] as unknown as SinkConfig[];
    const failure = await createSinks(configs, { timeoutMs: 2_000, hmac: webCryptoHmacSha256 }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(WebhookSecretError);
    expect((failure as Error).message).toBe(
      "(at 1.signing_key) holds a public key that does not belong to its seed",
    );
    expect((failure as Error).cause).toBeInstanceOf(WebhookSecretError);
    expect((failure as Error).message).not.toContain(signingKey.slice(5, 20));
  });
});
