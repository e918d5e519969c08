import * as ed from "@noble/ed25519";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/config-schema.js";
import { importEd25519VerifyKey } from "../src/domain/ed25519.js";
import type { HmacSha256 } from "../src/domain/hmac-sha256.js";
import { webCryptoHmacSha256 } from "../src/domain/hmac-sha256.js";
import {
  createSignatureVerifier,
  type Ed25519KeyImporter,
  MAX_ED25519_CHECKS,
  MAX_SIGNATURES,
} from "../src/domain/signature-verifier.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";

// Issue 21 item 4: Ed25519 as a CPU amplifier. Each v1a entry is tried against each whpk_ key and
// each try hashes the whole body: the work a request may ask for is bounded, and decided before
// any of it is done. Verifications are counted through the verifier's key-import seam.

const encoder = new TextEncoder();
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const now = 1_790_000_000;
const body = encoder.encode(`{"pad":"${"x".repeat(256 * 1024 - 12)}"}`);
const headers = (signature: string) => ({ id: "msg_w", timestamp: String(now), signature });

async function keyPair() {
  const secretKey = ed.utils.randomSecretKey();
  return { secretKey, whpk: `whpk_${b64(await ed.getPublicKeyAsync(secretKey))}` };
}
const sign = async (secretKey: Uint8Array) =>
  `v1a,${b64(await ed.signAsync(new Uint8Array([...encoder.encode(`msg_w.${now}.`), ...body]), secretKey))}`;

/** Real keys whose verifications are counted. */
function countingImporter(): { importer: Ed25519KeyImporter; calls: () => number } {
  let calls = 0;
  const importer: Ed25519KeyImporter = async (whpk) => {
    const key = await importEd25519VerifyKey(whpk);
    return {
      verify(prefix, signed, signature) {
        calls++;
        return key.verify(prefix, signed, signature);
      },
    };
  };
  return { importer, calls: () => calls };
}

/** A real HMAC whose MACs are counted. */
function countingHmac(): { hmac: HmacSha256; calls: () => number } {
  let calls = 0;
  const hmac: HmacSha256 = async (secret) => {
    const key = await webCryptoHmacSha256(secret);
    return {
      mac(prefix, signed) {
        calls++;
        return key.mac(prefix, signed);
      },
    };
  };
  return { hmac, calls: () => calls };
}

describe("the verification work of one request is bounded", () => {
  it(`at most ${MAX_ED25519_CHECKS} Ed25519 checks (v1a entries × whpk_ keys), refused before any is made`, async () => {
    expect(MAX_ED25519_CHECKS).toBe(8);
    const [a, b] = await Promise.all([keyPair(), keyPair()]);
    const other = await keyPair();
    const bogus = await sign(other.secretKey);
    const counted = countingImporter();
    const verifier = await createSignatureVerifier(
      [a.whpk, b.whpk],
      300,
      webCryptoHmacSha256,
      counted.importer,
    );
    const good = await sign(b.secretKey);

    // Two keys: 4 entries are 8 checks, the good one last is found.
    expect(await verifier.verify(headers([bogus, bogus, bogus, good].join(" ")), body, now)).toEqual({
      ok: true,
      timestamp: now,
    });
    expect(counted.calls()).toBe(8);

    // 5 entries would be 10: refused, with no verification made at all.
    for (const n of [5, MAX_SIGNATURES]) {
      const entries = [...Array.from({ length: n - 1 }, () => bogus), good].join(" ");
      expect(await verifier.verify(headers(entries), body, now)).toEqual({
        ok: false,
        reason: `webhook-signature carries ${n} v1a signatures for 2 public keys; at most 8 Ed25519 checks (signatures × keys) are made`,
      });
    }
    expect(counted.calls()).toBe(8);
  });

  it("one key takes 8 v1a entries; malformed or weak ones are not counted and cost nothing", async () => {
    const a = await keyPair();
    const other = await keyPair();
    const bogus = await sign(other.secretKey);
    const counted = countingImporter();
    const verifier = await createSignatureVerifier([a.whpk], 300, webCryptoHmacSha256, counted.importer);
    const good = await sign(a.secretKey);
    const eight = [...Array.from({ length: 7 }, () => bogus), good].join(" ");
    expect(await verifier.verify(headers(eight), body, now)).toEqual({ ok: true, timestamp: now });
    expect(counted.calls()).toBe(8);
    const nine = [...Array.from({ length: 8 }, () => bogus), good].join(" ");
    expect((await verifier.verify(headers(nine), body, now)).ok).toBe(false);
    expect(counted.calls()).toBe(8);

    // Not 64 bytes, S ≥ L (all 0xff), a small-order R (the identity): none could match.
    const identityR = new Uint8Array(64);
    identityR[0] = 1;
    const junk = [
      "v1a,AAAA",
      `v1a,${b64(new Uint8Array(64).fill(0xff))}`,
      `v1a,${b64(identityR)}`,
      "v1a,%%%",
    ];
    const padded = [...junk, ...junk, ...junk, good].join(" ");
    expect(await verifier.verify(headers(padded), body, now)).toEqual({ ok: true, timestamp: now });
    expect(counted.calls()).toBe(9);
    expect(await verifier.verify(headers(junk.join(" ")), body, now)).toEqual({
      ok: false,
      reason: "no signature matches",
    });
    expect(counted.calls()).toBe(9);
  });

  it("v1 entries are tried only against whsec_ secrets, v1a only against whpk_ keys", async () => {
    const a = await keyPair();
    const secret = generateWebhookSecret();
    const ed25519 = countingImporter();
    const hmac = countingHmac();
    const verifier = await createSignatureVerifier([secret, a.whpk], 300, hmac.hmac, ed25519.importer);
    const v1 = new Webhook(secret).sign("msg_w", new Date(now * 1000), Buffer.from(body).toString());
    // v1 only: one MAC, no Ed25519 check.
    expect(await verifier.verify(headers(v1), body, now)).toEqual({ ok: true, timestamp: now });
    expect({ macs: hmac.calls(), checks: ed25519.calls() }).toEqual({ macs: 1, checks: 0 });
    // v1a only: no MAC, one check.
    expect(await verifier.verify(headers(await sign(a.secretKey)), body, now)).toEqual({
      ok: true,
      timestamp: now,
    });
    expect({ macs: hmac.calls(), checks: ed25519.calls() }).toEqual({ macs: 1, checks: 1 });
    // A matching v1 spares the v1a checks.
    expect(await verifier.verify(headers(`${await sign(a.secretKey)} ${v1}`), body, now)).toEqual({
      ok: true,
      timestamp: now,
    });
    expect({ macs: hmac.calls(), checks: ed25519.calls() }).toEqual({ macs: 2, checks: 1 });
  });

  it(`more than ${MAX_ED25519_CHECKS} whpk_ keys are refused at start-up: no v1a request could pass`, async () => {
    const keys = await Promise.all(Array.from({ length: MAX_ED25519_CHECKS + 1 }, () => keyPair()));
    const whpks = keys.map((k) => k.whpk);
    expect(
      parseConfig({ WEBHOOK_SECRET: whpks.slice(0, MAX_ED25519_CHECKS).join(" ") }).WEBHOOK_SECRET,
    ).toHaveLength(MAX_ED25519_CHECKS);
    expect(() => parseConfig({ WEBHOOK_SECRET: whpks.join(" ") })).toThrow(
      /^Invalid configuration: WEBHOOK_SECRET holds more than 8 whpk_ public keys \(each request may cost at most 8 Ed25519 checks\)$/,
    );
    await expect(createSignatureVerifier(whpks, 300)).rejects.toThrow("holds more than 8 whpk_ public keys");
    await expect(createSignatureVerifier(whpks.slice(1), 300)).resolves.toBeDefined();
  });
});
