import { weakPointProblem } from "./ed25519-point.js";
import {
  decodeWebhookPublicKey,
  decodeWebhookSigningKey,
  PUBLIC_KEY_PREFIX,
  SIGNING_KEY_PREFIX,
} from "./webhook-keys.js";
import { base64ToBytes, bytesToBase64, WebhookSecretError } from "./webhook-secret.js";

// Ed25519 through Web Crypto: Node ≥ 20.19 and workerd both have it, so every runtime signs and
// verifies with the same code and the Worker bundle carries no curve arithmetic.
const ED25519 = { name: "Ed25519" } as const;
const SIGNATURE_BYTES = 64;
const encoder = new TextEncoder();

// DER of a PKCS#8 Ed25519 private key (RFC 8410) up to the 32-byte seed, which follows it: the
// one form of a raw seed every Web Crypto implementation imports.
const PKCS8_SEED_PREFIX = [
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/** An Ed25519 public key ready to check `v1a` signatures. */
export interface Ed25519VerifyKey {
  /**
   * Whether `signature` (64 bytes, as {@link decodeEd25519Signature} gives them) signs `prefix`
   * (as UTF-8) followed by `body`.
   */
  verify(prefix: string, body: Uint8Array, signature: Uint8Array<ArrayBuffer>): Promise<boolean>;
}

/**
 * The 64 bytes of a `v1a` signature (base64), or null when they could match no key: not base64 of
 * 64 bytes, S ≥ L, or an R that is not canonical or of small order. Cheap, and made before any
 * key is tried, so a header of malformed entries costs no verification at all.
 */
export function decodeEd25519Signature(signature: string): Uint8Array<ArrayBuffer> | null {
  const bytes = base64ToBytes(signature);
  return bytes && bytes.length === SIGNATURE_BYTES && isCanonicalSignature(bytes) ? bytes : null;
}

/** An Ed25519 secret key ready to make `v1a` signatures. */
export interface Ed25519SigningKey {
  /** The `whpk_` public key receivers verify with: safe to publish. */
  readonly publicKey: string;
  /** Base64 signature of `prefix` (as UTF-8) followed by `body`. */
  sign(prefix: string, body: string | Uint8Array): Promise<string>;
}

/**
 * Imports a `whpk_` public key once, for verifying.
 * @throws {WebhookSecretError} when the key is malformed.
 */
export async function importEd25519VerifyKey(whpk: string): Promise<Ed25519VerifyKey> {
  const key = await crypto.subtle.importKey("raw", decodeWebhookPublicKey(whpk), ED25519, false, ["verify"]);
  return {
    async verify(prefix, body, signature) {
      try {
        return await crypto.subtle.verify(ED25519, key, signature, signedContent(prefix, body));
      } catch {
        // Some runtimes throw instead of answering false for a malformed point: still no match.
        return false;
      }
    },
  };
}

/**
 * Imports a `whsk_` secret key once, for signing, and derives its `whpk_` public key.
 * @throws {WebhookSecretError} when the key is malformed, or its 64-byte form carries a public key
 *   that is not the seed's.
 */
export async function importEd25519SigningKey(whsk: string): Promise<Ed25519SigningKey> {
  const { seed, publicKey: carried } = decodeWebhookSigningKey(whsk);
  const pkcs8 = new Uint8Array(PKCS8_SEED_PREFIX.length + seed.length);
  pkcs8.set(PKCS8_SEED_PREFIX, 0);
  pkcs8.set(seed, PKCS8_SEED_PREFIX.length);
  // Extractable only so the public half can be read from the JWK (`x`); the key object never leaves.
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, ED25519, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  // JWK's `x` is unpadded base64url; base64ToBytes takes unpadded base64.
  const derived = base64ToBytes(jwk.x?.replace(/-/g, "+").replace(/_/g, "/") ?? "") ?? new Uint8Array();
  if (derived.length !== 32) throw new WebhookSecretError("could not be imported");
  if (carried && bytesToBase64(carried) !== bytesToBase64(derived)) {
    throw new WebhookSecretError("holds a public key that does not belong to its seed");
  }
  return {
    publicKey: PUBLIC_KEY_PREFIX + bytesToBase64(derived),
    async sign(prefix, body) {
      const tail = typeof body === "string" ? encoder.encode(body) : body;
      return bytesToBase64(
        new Uint8Array(await crypto.subtle.sign(ED25519, key, signedContent(prefix, tail))),
      );
    },
  };
}

/**
 * Makes a new key pair: `whsk_` as base64 of the seed followed by the public key (the 64-byte form
 * Svix writes, which every tool that reads either form accepts) and its `whpk_`.
 */
export async function generateWebhookKeyPair(): Promise<{ signingKey: string; publicKey: string }> {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const { publicKey } = await importEd25519SigningKey(SIGNING_KEY_PREFIX + bytesToBase64(seed));
  const full = new Uint8Array(64);
  full.set(seed, 0);
  full.set(decodeWebhookPublicKey(publicKey), 32);
  return { signingKey: SIGNING_KEY_PREFIX + bytesToBase64(full), publicKey };
}

// The group order L = 2^252 + 27742317777372353535851937790883648493, little-endian as S is.
const ORDER_L = 2n ** 252n + 27742317777372353535851937790883648493n;

// RFC 8032 §5.1.7 requires S < L; R is refused when it is not canonical or of small order, as
// libsodium does. Runtimes differ on both (OpenSSL checks S, none checks R), so they are checked
// here, the same on each, before Web Crypto is asked.
function isCanonicalSignature(bytes: Uint8Array): boolean {
  let s = 0n;
  for (let i = SIGNATURE_BYTES - 1; i >= 32; i--) s = (s << 8n) | BigInt(bytes[i] as number);
  return s < ORDER_L && weakPointProblem(bytes.subarray(0, 32)) === null;
}

function signedContent(prefix: string, body: Uint8Array): Uint8Array<ArrayBuffer> {
  const head = encoder.encode(prefix);
  const signed = new Uint8Array(head.length + body.length);
  signed.set(head, 0);
  signed.set(body, head.length);
  return signed;
}
