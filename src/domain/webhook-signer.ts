import { type HmacSha256, webCryptoHmacSha256 } from "./hmac-sha256.js";
import { decodeWebhookSecret } from "./webhook-secret.js";

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

/** Creates a signer for one `whsec_` secret; the key is imported here, once. */
export async function createWebhookSigner(
  secret: string,
  hmac: HmacSha256 = webCryptoHmacSha256,
): Promise<WebhookSigner> {
  const key = await hmac(decodeWebhookSecret(secret));
  return {
    async sign(id, timestamp, body) {
      const ts = String(Math.floor(timestamp));
      return {
        "webhook-id": id,
        "webhook-timestamp": ts,
        "webhook-signature": `v1,${await key.mac(`${id}.${ts}.`, body)}`,
      };
    },
  };
}
