import OpenAI from "openai";
import { Webhook } from "standardwebhooks";
import { beforeAll, describe, expect, it } from "vitest";
import { parseOpenAiWebhookEvent } from "../src/domain/openai/openai-webhook-event.js";
import { createSignatureVerifier, type SignatureVerifier } from "../src/domain/signature-verifier.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";

const encoder = new TextEncoder();

/** Signs a thin event as OpenAI does: Standard Webhooks, `whsec_` secret, `v1,` HMAC-SHA256. */
function signed(secret: string, event: Record<string, unknown>) {
  const body = JSON.stringify(event);
  const id = `msg_${crypto.randomUUID()}`;
  const now = Math.floor(Date.now() / 1000);
  const signature = new Webhook(secret).sign(id, new Date(now * 1000), body);
  return {
    body,
    now,
    headers: { "webhook-id": id, "webhook-timestamp": String(now), "webhook-signature": signature },
  };
}

const ours = (verifier: SignatureVerifier, body: string, headers: Record<string, string>, now: number) =>
  verifier.verify(
    {
      id: headers["webhook-id"],
      timestamp: headers["webhook-timestamp"],
      signature: headers["webhook-signature"],
    },
    encoder.encode(body),
    now,
  );

describe("OpenAI-signed thin events: our verifier and the official SDK agree", () => {
  let secret: string;
  let verifier: SignatureVerifier;
  let sdk: OpenAI;
  const event = {
    id: "evt_685343a1381c819085d44c354e1b330e",
    object: "event",
    created_at: 1_750_287_018,
    type: "response.failed",
    data: { id: "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b" },
  };

  beforeAll(async () => {
    secret = generateWebhookSecret();
    verifier = await createSignatureVerifier([secret], 300);
    sdk = new OpenAI({ apiKey: "x", webhookSecret: secret });
  });

  it("a genuine event is accepted by both, and both read the same event", async () => {
    const { body, headers, now } = signed(secret, event);
    expect(await ours(verifier, body, headers, now)).toEqual({ ok: true, timestamp: now });
    const unwrapped = await sdk.webhooks.unwrap(body, headers);
    expect(unwrapped).toEqual(event);
    const parsed = parseOpenAiWebhookEvent(JSON.parse(body));
    if (unwrapped.type !== "response.failed") throw new Error(`unwrapped as ${unwrapped.type}`);
    expect(parsed.ok && [parsed.event.kind, parsed.event.subjectId, parsed.event.type]).toEqual([
      "response",
      unwrapped.data.id,
      unwrapped.type,
    ]);
  });

  it("during a rotation, an event signed with either secret is accepted by our verifier", async () => {
    const next = generateWebhookSecret();
    const rotating = await createSignatureVerifier([secret, next], 300);
    for (const key of [secret, next]) {
      const { body, headers, now } = signed(key, event);
      expect((await ours(rotating, body, headers, now)).ok).toBe(true);
    }
  });

  it("a tampered body is refused by both", async () => {
    const { body, headers, now } = signed(secret, event);
    const tampered = body.replace("response.failed", "response.completed");
    expect(tampered).not.toBe(body);
    expect(await ours(verifier, tampered, headers, now)).toEqual({
      ok: false,
      reason: "no signature matches",
    });
    await expect(sdk.webhooks.unwrap(tampered, headers)).rejects.toThrow();
  });

  it("a signature made with another secret is refused by both", async () => {
    const { body, headers, now } = signed(generateWebhookSecret(), event);
    expect(await ours(verifier, body, headers, now)).toEqual({ ok: false, reason: "no signature matches" });
    await expect(sdk.webhooks.unwrap(body, headers)).rejects.toThrow();
  });

  it("a tampered webhook-id is refused by both (the id is signed)", async () => {
    const { body, headers, now } = signed(secret, event);
    const forged = { ...headers, "webhook-id": "msg_forged" };
    expect((await ours(verifier, body, forged, now)).ok).toBe(false);
    await expect(sdk.webhooks.unwrap(body, forged)).rejects.toThrow();
  });
});
