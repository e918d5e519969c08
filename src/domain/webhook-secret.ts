const PREFIX = "whsec_";
const MIN_BYTES = 24;
const MAX_BYTES = 64;

/** Raised when a Standard Webhooks secret or key is malformed; the message never contains it. */
export class WebhookSecretError extends Error {
  override readonly name = "WebhookSecretError";
}

/**
 * Decodes a Standard Webhooks secret (`whsec_` + base64 of 24–64 random bytes) into key bytes.
 * @throws {WebhookSecretError} when the prefix, the base64 or the length is wrong.
 */
export function decodeWebhookSecret(secret: string): Uint8Array<ArrayBuffer> {
  if (!secret.startsWith(PREFIX)) throw new WebhookSecretError(`must start with "${PREFIX}"`);
  const bytes = base64ToBytes(secret.slice(PREFIX.length));
  if (!bytes) throw new WebhookSecretError("must be whsec_ followed by base64");
  if (bytes.length < MIN_BYTES || bytes.length > MAX_BYTES) {
    throw new WebhookSecretError(`must decode to ${MIN_BYTES}–${MAX_BYTES} bytes (got ${bytes.length})`);
  }
  return bytes;
}

/** Makes a new secret from 32 random bytes, in the `whsec_` form every Standard Webhooks library reads. */
export function generateWebhookSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return PREFIX + bytesToBase64(bytes);
}

/** Base64 of a short byte string (keys, MACs), with the Web APIs both Node and Workers have. */
export function bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Bytes of standard (padded or unpadded) base64, or null when `encoded` is not base64. */
export function base64ToBytes(encoded: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) return null;
  try {
    return Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
  } catch {
    // atob refuses what the pattern lets through when the length or padding is wrong.
    return null;
  }
}
