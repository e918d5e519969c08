import OpenAI from "openai";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import { beforeAll, describe, expect, it } from "vitest";
import { webCryptoHmacSha256 } from "../src/domain/hmac-sha256.js";
import { createSignatureVerifier, type SignatureVerifier } from "../src/domain/signature-verifier.js";
import { decodeWebhookSecret, generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { createWebhookSigner } from "../src/domain/webhook-signer.js";
import { nodeHmacSha256 } from "../src/runtime/node-hmac.js";

const encoder = new TextEncoder();
const now = 1_790_000_000;
const body = JSON.stringify({ object: "thread.run.step", id: "step_1", note: "ünïcödé ✓" });

const headers = (id: string, timestamp: string | number, signature: string) => ({
  id,
  timestamp: String(timestamp),
  signature,
});

// Every runtime's HMAC implementation must agree with the third-party signers and verifiers.
describe.each([
  ["Web Crypto", webCryptoHmacSha256],
  ["node:crypto", nodeHmacSha256],
] as const)("with %s", (_name, hmac) => {
  let secret: string;
  let other: string;
  let verifier: SignatureVerifier;

  beforeAll(async () => {
    secret = generateWebhookSecret();
    other = generateWebhookSecret();
    verifier = await createSignatureVerifier([secret], 300, hmac);
  });

  describe("signatures made by libraries nobody here wrote", () => {
    it("standardwebhooks", async () => {
      const signature = new StandardWebhook(secret).sign("msg_1", new Date(now * 1000), body);
      expect(await verifier.verify(headers("msg_1", now, signature), encoder.encode(body), now)).toEqual({
        ok: true,
        timestamp: now,
      });
    });

    it("svix", async () => {
      const signature = new SvixWebhook(secret).sign("msg_2", new Date(now * 1000), body);
      expect(
        await verifier.verify(headers("msg_2", now, signature), encoder.encode(body), now),
      ).toMatchObject({
        ok: true,
      });
    });

    it("a svix secret of 24 bytes, the length Svix generates", async () => {
      const svixSecret = `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("base64")}`;
      const v = await createSignatureVerifier([svixSecret], 300, hmac);
      const signature = new SvixWebhook(svixSecret).sign("msg_3", new Date(now * 1000), body);
      expect(await v.verify(headers("msg_3", now, signature), encoder.encode(body), now)).toMatchObject({
        ok: true,
      });
    });
  });

  describe("signatures we make are accepted by other verifiers", () => {
    it("the openai SDK's verifySignature and standardwebhooks' verify accept them", async () => {
      const signed = await createWebhookSigner(secret, hmac);
      const timestamp = Math.floor(Date.now() / 1000);
      const h = await signed.sign("msg_out", timestamp, body);
      const openai = new OpenAI({ apiKey: "test-key", webhookSecret: secret });
      await expect(openai.webhooks.verifySignature(body, { ...h })).resolves.toBeUndefined();
      expect(new StandardWebhook(secret).verify(body, { ...h })).toEqual(JSON.parse(body));
      await expect(openai.webhooks.verifySignature(`${body} `, { ...h })).rejects.toThrow();
    });
  });

  describe("refusals", () => {
    const sign = (s = secret, id = "msg_x", ts = now, payload = body) =>
      new StandardWebhook(s).sign(id, new Date(ts * 1000), payload);

    it("a tampered body", async () => {
      const result = await verifier.verify(
        headers("msg_x", now, sign()),
        encoder.encode(body.replace("step_1", "step_2")),
        now,
      );
      expect(result).toEqual({ ok: false, reason: "no signature matches" });
    });

    it("a tampered id or timestamp", async () => {
      expect((await verifier.verify(headers("msg_y", now, sign()), encoder.encode(body), now)).ok).toBe(
        false,
      );
      expect((await verifier.verify(headers("msg_x", now + 1, sign()), encoder.encode(body), now)).ok).toBe(
        false,
      );
    });

    it("a wrong secret", async () => {
      expect((await verifier.verify(headers("msg_x", now, sign(other)), encoder.encode(body), now)).ok).toBe(
        false,
      );
    });

    it("a stale and a future timestamp, just outside the tolerance; just inside is fine", async () => {
      const at = (ts: number) =>
        verifier.verify(headers("msg_x", ts, sign(secret, "msg_x", ts)), encoder.encode(body), now);
      expect(await at(now - 301)).toEqual({ ok: false, reason: "webhook-timestamp is too old" });
      expect(await at(now + 301)).toEqual({
        ok: false,
        reason: "webhook-timestamp is too far in the future",
      });
      expect((await at(now - 300)).ok).toBe(true);
      expect((await at(now + 300)).ok).toBe(true);
    });

    it("a webhook-id longer than 256 characters; 256 is fine", async () => {
      const at = (id: string) =>
        verifier.verify(headers(id, now, sign(secret, id)), encoder.encode(body), now);
      expect((await at("m".repeat(256))).ok).toBe(true);
      expect(await at("m".repeat(257))).toEqual({ ok: false, reason: "webhook-id is too long" });
    });

    it("a valid signature with anything appended, or cut short", async () => {
      const good = sign();
      for (const bad of [`${good}A`, `${good}==`, good.slice(0, -1)]) {
        expect(await verifier.verify(headers("msg_x", now, bad), encoder.encode(body), now)).toEqual({
          ok: false,
          reason: "no signature matches",
        });
      }
    });

    it("runs of spaces between signatures are separators, not signatures, in the count", async () => {
      const bogus = Array.from({ length: 15 }, (_, i) => `v1,${btoa(`bogus-${i}`)}`);
      const result = await verifier.verify(
        headers("msg_x", now, [...bogus, sign()].join("   ")),
        encoder.encode(body),
        now,
      );
      expect(result).toEqual({ ok: true, timestamp: now });
    });

    it.each([
      "abc",
      "1.5",
      "+1790000000",
      "-1",
      "01790000000",
      "1e9",
      " 1790000000",
      "1790000000 ",
      "0x6AB",
      "179000000000",
      "17900000000000",
    ])("a malformed timestamp %j, whatever the clock says", async (timestamp) => {
      const result = await verifier.verify(headers("msg_x", timestamp, sign()), encoder.encode(body), now);
      expect(result).toEqual({
        ok: false,
        reason: "webhook-timestamp must be an integer number of Unix seconds",
      });
    });

    it("0 and 11-digit timestamps are well-formed (then judged by the tolerance)", async () => {
      for (const ts of ["0", "17900000000"]) {
        const result = await verifier.verify(headers("msg_x", ts, sign()), encoder.encode(body), now);
        expect(result.ok ? "" : result.reason, ts).toMatch(
          /^webhook-timestamp is too (old|far in the future)$/,
        );
      }
    });

    it("an empty timestamp is refused", async () => {
      const result = await verifier.verify(headers("msg_x", "", sign()), encoder.encode(body), now);
      expect(result.ok).toBe(false);
    });

    it("missing headers", async () => {
      const result = await verifier.verify(
        { id: undefined, timestamp: String(now), signature: sign() },
        encoder.encode(body),
        now,
      );
      expect(result).toEqual({
        ok: false,
        reason: "missing webhook-id, webhook-timestamp or webhook-signature header",
      });
    });

    it("signatures of other schemes only", async () => {
      const mac = sign().slice(3);
      const result = await verifier.verify(
        headers("msg_x", now, `v1a,${mac} v2,${mac}`),
        encoder.encode(body),
        now,
      );
      expect(result).toEqual({ ok: false, reason: "webhook-signature has no v1 signature" });
    });
  });

  describe("rotation and several signatures", () => {
    it("accepts a signature by any configured secret", async () => {
      const rotating = await createSignatureVerifier([secret, other], 300, hmac);
      for (const s of [secret, other]) {
        const signature = new StandardWebhook(s).sign("msg_r", new Date(now * 1000), body);
        expect((await rotating.verify(headers("msg_r", now, signature), encoder.encode(body), now)).ok).toBe(
          true,
        );
      }
    });

    it("accepts a header carrying several signatures when one matches", async () => {
      const good = new StandardWebhook(secret).sign("msg_m", new Date(now * 1000), body);
      const bad = new StandardWebhook(other).sign("msg_m", new Date(now * 1000), body);
      const result = await verifier.verify(
        headers("msg_m", now, `${bad} v1,AAAA ${good}`),
        encoder.encode(body),
        now,
      );
      expect(result.ok).toBe(true);
    });
  });
});

describe("secrets", () => {
  it("decodes whsec_ secrets and refuses malformed ones without echoing them", () => {
    expect(decodeWebhookSecret(generateWebhookSecret())).toHaveLength(32);
    for (const bad of ["abc", "whsec_", "whsec_!!!!", `whsec_${btoa("short")}`]) {
      expect(() => decodeWebhookSecret(bad)).toThrow(/whsec_|bytes/);
      try {
        decodeWebhookSecret(bad);
      } catch (error) {
        expect((error as Error).name).toBe("WebhookSecretError");
        if (bad.length > 6) expect((error as Error).message).not.toContain(bad.slice(6));
      }
    }
  });
});
