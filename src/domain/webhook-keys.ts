import { ed25519KeyProblem } from "./ed25519-point.js";
import { base64ToBytes, decodeWebhookSecret, WebhookSecretError } from "./webhook-secret.js";

/** Prefix of a Standard Webhooks Ed25519 public key (verifies `v1a` signatures). */
export const PUBLIC_KEY_PREFIX = "whpk_";
/** Prefix of a Standard Webhooks Ed25519 secret key (makes `v1a` signatures). */
export const SIGNING_KEY_PREFIX = "whsk_";

const KEY_BYTES = 32;

/** The parts of a decoded `whsk_` key. */
export interface DecodedSigningKey {
  /** The 32-byte RFC 8032 private key (the seed). */
  readonly seed: Uint8Array<ArrayBuffer>;
  /** The public key the 64-byte form carries after the seed; checked against the seed on import. */
  readonly publicKey: Uint8Array<ArrayBuffer> | null;
}

/**
 * Decodes a `whpk_` key: base64 of the 32-byte Ed25519 public key, which must be the one encoding
 * of a point of the curve that is not of small order. Web Crypto checks none of this, and a
 * small-order key (the identity point above all) is one anyone can make signatures for.
 * @throws {WebhookSecretError} when the prefix, the base64, the length or the point is wrong.
 */
export function decodeWebhookPublicKey(key: string): Uint8Array<ArrayBuffer> {
  const bytes = key.startsWith(PUBLIC_KEY_PREFIX) ? base64ToBytes(key.slice(PUBLIC_KEY_PREFIX.length)) : null;
  if (bytes?.length !== KEY_BYTES) {
    throw new WebhookSecretError(`must be whpk_ followed by base64 of 32 bytes${got(bytes)}`);
  }
  const problem = ed25519KeyProblem(bytes);
  if (problem === "of small order") {
    throw new WebhookSecretError(
      "is a small-order Ed25519 point, for which anyone can sign: not a public key",
    );
  }
  if (problem) throw new WebhookSecretError(`is no Ed25519 public key (${problem})`);
  return bytes;
}

/**
 * Decodes a `whsk_` key. The Standard Webhooks spec says only "base64 of the secret key", and
 * implementations differ: Svix's server (the spec's reference producer) and libsodium write 64 bytes,
 * seed then public key; @noble/ed25519, Go's `NewKeyFromSeed` and Web Crypto's JWK `d` use the
 * 32-byte seed. Both are accepted, so a key from either kind of tool works unchanged.
 * @throws {WebhookSecretError} when the prefix, the base64 or the length is wrong.
 */
export function decodeWebhookSigningKey(key: string): DecodedSigningKey {
  const bytes = key.startsWith(SIGNING_KEY_PREFIX)
    ? base64ToBytes(key.slice(SIGNING_KEY_PREFIX.length))
    : null;
  if (bytes?.length === KEY_BYTES) return { seed: bytes, publicKey: null };
  if (bytes?.length === 2 * KEY_BYTES) {
    return { seed: bytes.slice(0, KEY_BYTES), publicKey: bytes.slice(KEY_BYTES) };
  }
  throw new WebhookSecretError(`must be whsk_ followed by base64 of 32 or 64 bytes${got(bytes)}`);
}

// The decoded length helps find a bad paste; it says nothing about the key.
const got = (bytes: Uint8Array | null) => (bytes ? ` (got ${bytes.length})` : "");

/**
 * Checks one entry of a receiver's key list (`WEBHOOK_SECRET`): a `whsec_` secret or a `whpk_`
 * public key. A `whsk_` secret key is refused by name: it belongs with the sender, and a receiver
 * holding it could forge the sender's signatures.
 * @throws {WebhookSecretError} saying what is wrong, never echoing the entry.
 */
export function checkVerificationKey(entry: string): void {
  if (entry.startsWith(SIGNING_KEY_PREFIX)) {
    throw new WebhookSecretError(
      "is a whsk_ signing key, which stays with the sender: configure its whpk_ instead",
    );
  }
  if (entry.startsWith(PUBLIC_KEY_PREFIX)) decodeWebhookPublicKey(entry);
  else if (entry.startsWith("whsec_")) decodeWebhookSecret(entry);
  else throw new WebhookSecretError('must start with "whsec_" (HMAC secret) or "whpk_" (Ed25519 public key)');
}
