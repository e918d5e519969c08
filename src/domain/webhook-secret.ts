const PREFIX = "whsec_";
const MIN_BYTES = 24;
const MAX_BYTES = 64;

/** Raised when a Standard Webhooks secret is malformed; the message never contains the secret. */
export class WebhookSecretError extends Error {
  override readonly name = "WebhookSecretError";
}

/**
 * Decodes a Standard Webhooks secret (`whsec_` + base64 of 24–64 random bytes) into key bytes.
 * @throws {WebhookSecretError} when the prefix, the base64 or the length is wrong.
 */
export function decodeWebhookSecret(secret: string): Uint8Array<ArrayBuffer> {
  if (!secret.startsWith(PREFIX)) throw new WebhookSecretError(`must start with "${PREFIX}"`);
  const encoded = secret.slice(PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded))
    throw new WebhookSecretError("must be whsec_ followed by base64");
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
  } catch (cause) {
    throw new WebhookSecretError("must be whsec_ followed by base64", { cause });
  }
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
