import { createHash } from "node:crypto";
import * as ed from "@noble/ed25519";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/config-schema.js";
import { importEd25519VerifyKey } from "../src/domain/ed25519.js";
import { ed25519KeyProblem, weakPointProblem } from "../src/domain/ed25519-point.js";
import { createSignatureVerifier } from "../src/domain/signature-verifier.js";
import { decodeWebhookPublicKey } from "../src/domain/webhook-keys.js";

// Issue 21 item 3: a whpk_ key anyone can sign for. Web Crypto (OpenSSL under Node) imports any 32
// bytes and, for the identity point, verifies R = identity, S = 0 over every message.
//
// Every encoding of a point of small order (the 8-torsion of edwards25519). Canonical ones are the
// 8 torsion points; non-canonical ones are y ≥ p (y = p, p + 1) and x = 0 with its sign bit set.
// The list is the one of "Taming the many EdDSAs" (Chalkias, Garillot, Nikolaenko, 2020, table of
// small-order points) and of libsodium's blocklist (seven y values, each with either sign bit);
// the encoding rules are RFC 8032 §5.1.3. Little-endian hex, as on the wire.
const CANONICAL_SMALL_ORDER = {
  "identity (order 1)": "0100000000000000000000000000000000000000000000000000000000000000",
  "(0, -1) (order 2)": "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "(+sqrt(-1), 0) (order 4)": "0000000000000000000000000000000000000000000000000000000000000000",
  "(-sqrt(-1), 0) (order 4)": "0000000000000000000000000000000000000000000000000000000000000080",
  "order 8, y8, x positive": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "order 8, y8, x negative": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
  "order 8, -y8, x positive": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "order 8, -y8, x negative": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
} as const;
const NON_CANONICAL_SMALL_ORDER = {
  "identity with x = -0": "0100000000000000000000000000000000000000000000000000000000000080",
  "(0, -1) with x = -0": "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
  "y = p (order 4)": "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "y = p, sign set (order 4)": "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
  "y = p + 1 (identity)": "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "y = p + 1, sign set (identity)": "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
} as const;
// Non-canonical encodings of points that are not of small order: y = p + 2 … 2^255 − 1 stand for
// y = 2 … 18 (those with an x): still a second encoding of a point, refused as one.
const nonCanonical = (k: number) => {
  const bytes = new Uint8Array(32).fill(0xff);
  bytes[0] = 0xed + k;
  bytes[31] = 0x7f;
  return bytes;
};

const hex = (value: string) => Uint8Array.from(Buffer.from(value, "hex"));
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const whpk = (bytes: Uint8Array) => `whpk_${b64(bytes)}`;
const all = { ...CANONICAL_SMALL_ORDER, ...NON_CANONICAL_SMALL_ORDER };
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const encoder = new TextEncoder();
const now = 1_790_000_000;
const headers = (signature: string) => ({ id: "msg_1", timestamp: String(now), signature });

describe("the constants are what they say (noble as the oracle)", () => {
  it("each decodes, leniently (ZIP-215), to a point of small order; only the canonical ones strictly", () => {
    for (const [name, encoding] of Object.entries(all)) {
      expect(ed.Point.fromBytes(hex(encoding), true).isSmallOrder(), name).toBe(true);
    }
    for (const [name, encoding] of Object.entries(CANONICAL_SMALL_ORDER)) {
      expect(() => ed.Point.fromBytes(hex(encoding), false), name).not.toThrow();
    }
    for (const [name, encoding] of Object.entries(NON_CANONICAL_SMALL_ORDER)) {
      expect(() => ed.Point.fromBytes(hex(encoding), false), name).toThrow();
    }
  });
});

describe("small-order and non-canonical public keys are refused", () => {
  it("names what is wrong with each encoding", () => {
    for (const [name, encoding] of Object.entries(CANONICAL_SMALL_ORDER)) {
      expect(weakPointProblem(hex(encoding)), name).toBe("of small order");
      expect(ed25519KeyProblem(hex(encoding)), name).toBe("of small order");
    }
    for (const [name, encoding] of Object.entries(NON_CANONICAL_SMALL_ORDER)) {
      expect(weakPointProblem(hex(encoding)), name).toBe("not canonical");
    }
    for (let k = 0; k <= 18; k++) expect(weakPointProblem(nonCanonical(k)), String(k)).toBe("not canonical");
  });

  it("at start-up: one line naming the entry, never the key", async () => {
    const good = whpk(await ed.getPublicKeyAsync(ed.utils.randomSecretKey()));
    for (const [name, encoding] of Object.entries(all)) {
      const key = whpk(hex(encoding));
      let message = "";
      try {
        parseConfig({ WEBHOOK_SECRET: `${good} ${key}`, API_TOKEN: "t".repeat(16) });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message, name).toMatch(/^Invalid configuration: WEBHOOK_SECRET entry #2 is /);
      expect(message, name).not.toContain(key.slice(5, 25));
      expect(message.split("\n"), name).toHaveLength(1);
    }
    expect(() =>
      parseConfig({ WEBHOOK_SECRET: whpk(hex(CANONICAL_SMALL_ORDER["identity (order 1)"])) }),
    ).toThrow(/entry #1 is a small-order Ed25519 point, for which anyone can sign/);
    expect(() => parseConfig({ WEBHOOK_SECRET: whpk(nonCanonical(5)) })).toThrow(
      /entry #1 is no Ed25519 public key \(not canonical\)/,
    );
  });

  it("a y with no x on the curve is no key either; a real one (and one with a torsion part) is", async () => {
    // y = 2 has no x: (y² − 1) / (d·y² + 1) is not a square mod p (noble agrees).
    const offCurve = new Uint8Array(32);
    offCurve[0] = 2;
    expect(() => ed.Point.fromBytes(offCurve)).toThrow();
    expect(ed25519KeyProblem(offCurve)).toBe("not a point of the curve");
    expect(() => decodeWebhookPublicKey(whpk(offCurve))).toThrow(/not a point of the curve/);
    for (let i = 0; i < 20; i++) {
      const real = await ed.getPublicKeyAsync(ed.utils.randomSecretKey());
      expect(ed25519KeyProblem(real)).toBeNull();
      expect(weakPointProblem(real)).toBeNull();
      // A real point plus a torsion point is of mixed order: no one signs for it without its
      // secret half, so it is not refused (as libsodium does not).
      const mixed = ed.Point.fromBytes(real)
        .add(ed.Point.fromBytes(hex(CANONICAL_SMALL_ORDER["order 8, y8, x positive"])))
        .toBytes();
      expect(ed25519KeyProblem(mixed)).toBeNull();
    }
  });

  it("by the verifier and by the key import, so no path takes one", async () => {
    for (const [name, encoding] of Object.entries(all)) {
      await expect(createSignatureVerifier([whpk(hex(encoding))], 300), name).rejects.toThrow(
        /small-order|not canonical/,
      );
      await expect(importEd25519VerifyKey(whpk(hex(encoding))), name).rejects.toThrow(
        /small-order|not canonical/,
      );
    }
  });
});

describe("the forged signatures of issue 21 are refused", () => {
  it("R = identity, S = 0, which Web Crypto accepts for the identity key over any message", async () => {
    const identity = hex(CANONICAL_SMALL_ORDER["identity (order 1)"]);
    const forged = new Uint8Array(64);
    forged.set(identity, 0);
    // What the fix stops: the runtime itself takes the forgery under that key.
    const raw = await crypto.subtle.importKey("raw", identity, { name: "Ed25519" }, false, ["verify"]);
    expect(await crypto.subtle.verify({ name: "Ed25519" }, raw, forged, encoder.encode("any body"))).toBe(
      true,
    );
    await expect(createSignatureVerifier([whpk(identity)], 300)).rejects.toThrow(/small-order/);
  });

  it("a signature with S ≥ L or a small-order R is refused under a real key", async () => {
    const secretKey = ed.utils.randomSecretKey();
    const publicKey = await ed.getPublicKeyAsync(secretKey);
    const verifier = await createSignatureVerifier([whpk(publicKey)], 300);
    const body = encoder.encode('{"object":"thread.run.step"}');
    const message = new Uint8Array([...encoder.encode(`msg_1.${now}.`), ...body]);
    const good = await ed.signAsync(message, secretKey);
    expect(await verifier.verify(headers(`v1a,${b64(good)}`), body, now)).toEqual({
      ok: true,
      timestamp: now,
    });

    // S + L: the same point equation, a second signature for the same message (malleability).
    const s = toBigInt(good.subarray(32));
    const malleable = new Uint8Array(64);
    malleable.set(good.subarray(0, 32), 0);
    malleable.set(fromBigInt(s + L), 32);
    expect(await verifier.verify(headers(`v1a,${b64(malleable)}`), body, now)).toEqual({
      ok: false,
      reason: "no signature matches",
    });

    // R = identity and S = k·a (k = H(R ‖ A ‖ M), a the secret scalar): [S]B = R + [k]A holds, so a
    // verifier that does not look at R (OpenSSL's) accepts it; it is no signature RFC 8032 makes.
    const { scalar } = await ed.utils.getExtendedPublicKeyAsync(secretKey);
    const identity = hex(CANONICAL_SMALL_ORDER["identity (order 1)"]);
    const k = toBigInt(createHash("sha512").update(identity).update(publicKey).update(message).digest()) % L;
    const weakR = new Uint8Array(64);
    weakR.set(identity, 0);
    weakR.set(fromBigInt((k * scalar) % L), 32);
    const raw = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    expect(await crypto.subtle.verify({ name: "Ed25519" }, raw, weakR, message)).toBe(true);
    expect(await verifier.verify(headers(`v1a,${b64(weakR)}`), body, now)).toEqual({
      ok: false,
      reason: "no signature matches",
    });
    // Beside a good one, a weak one costs nothing: the good one still matches.
    expect(await verifier.verify(headers(`v1a,${b64(weakR)} v1a,${b64(good)}`), body, now)).toEqual({
      ok: true,
      timestamp: now,
    });
  });
});

function toBigInt(littleEndian: Uint8Array): bigint {
  let value = 0n;
  for (let i = littleEndian.length - 1; i >= 0; i--)
    value = (value << 8n) | BigInt(littleEndian[i] as number);
  return value;
}

function fromBigInt(value: bigint): Uint8Array {
  const bytes = new Uint8Array(32);
  for (let i = 0, v = value; i < 32; i++, v >>= 8n) bytes[i] = Number(v & 0xffn);
  return bytes;
}
