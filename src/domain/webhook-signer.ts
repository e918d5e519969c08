import { bytesToBase64, decodeWebhookSecret } from "./webhook-secret.js";

const encoder = new TextEncoder();

/** The three headers of a Standard Webhooks delivery. */
export interface WebhookSignatureHeaders {
  readonly "webhook-id": string;
  readonly "webhook-timestamp": string;
  readonly "webhook-signature": string;
}

/** Signs outgoing payloads with one secret; the key is imported once. */
export interface WebhookSigner {
  /** Headers for a body sent with message id `id` at Unix second `timestamp`. */
  sign(id: string, timestamp: number, body: string | Uint8Array): Promise<WebhookSignatureHeaders>;
}

/** Imports a Standard Webhooks secret as an HMAC-SHA256 key (Web Crypto, so Workers can run it too). */
export function importHmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    decodeWebhookSecret(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
}

/** Base64 HMAC-SHA256 of `id.timestamp.body`, the content Standard Webhooks signs. */
export async function computeSignature(
  key: CryptoKey,
  id: string,
  timestamp: string,
  body: string | Uint8Array,
): Promise<string> {
  const prefix = encoder.encode(`${id}.${timestamp}.`);
  const payload = typeof body === "string" ? encoder.encode(body) : body;
  const signed = new Uint8Array(prefix.length + payload.length);
  signed.set(prefix, 0);
  signed.set(payload, prefix.length);
  return bytesToBase64(new Uint8Array(await crypto.subtle.sign("HMAC", key, signed)));
}

/** Creates a signer for one `whsec_` secret. */
export async function createWebhookSigner(secret: string): Promise<WebhookSigner> {
  const key = await importHmacKey(secret);
  return {
    async sign(id, timestamp, body) {
      const ts = String(Math.floor(timestamp));
      return {
        "webhook-id": id,
        "webhook-timestamp": ts,
        "webhook-signature": `v1,${await computeSignature(key, id, ts, body)}`,
      };
    },
  };
}
