import { importEd25519SigningKey } from "./ed25519.js";
import { type HmacSha256, webCryptoHmacSha256 } from "./hmac-sha256.js";
import { SIGNING_KEY_PREFIX } from "./webhook-keys.js";
import { decodeWebhookSecret } from "./webhook-secret.js";

/** The three headers of a Standard Webhooks delivery. */
export interface WebhookSignatureHeaders {
  readonly "webhook-id": string;
  readonly "webhook-timestamp": string;
  readonly "webhook-signature": string;
}

/** Signs outgoing payloads with a sink's keys; each key is imported once. */
export interface WebhookSigner {
  /** The `whpk_` public keys of the `whsk_` keys it signs with, for receivers to verify `v1a`. */
  readonly publicKeys: readonly string[];
  /** Headers for a body sent with message id `id` at Unix second `timestamp`. */
  sign(id: string, timestamp: number, body: string | Uint8Array): Promise<WebhookSignatureHeaders>;
}

/**
 * Creates a signer for one or more keys, imported here, once. A `whsec_` secret adds a `v1,`
 * HMAC-SHA256 signature and a `whsk_` key a `v1a,` Ed25519 one, in the order given, space-separated
 * in one `webhook-signature` header as the spec lays out: a receiver checks the ones it can.
 * @throws {WebhookSecretError} for a malformed key.
 */
export async function createWebhookSigner(
  keys: string | readonly string[],
  hmac: HmacSha256 = webCryptoHmacSha256,
): Promise<WebhookSigner> {
  const signers = await Promise.all(
    (typeof keys === "string" ? [keys] : keys).map(async (key) => {
      if (key.startsWith(SIGNING_KEY_PREFIX)) {
        const signing = await importEd25519SigningKey(key);
        return {
          publicKey: signing.publicKey,
          sign: async (prefix: string, body: string | Uint8Array) =>
            `v1a,${await signing.sign(prefix, body)}`,
        };
      }
      const mac = await hmac(decodeWebhookSecret(key));
      return {
        publicKey: null,
        sign: async (prefix: string, body: string | Uint8Array) => `v1,${await mac.mac(prefix, body)}`,
      };
    }),
  );
  return {
    publicKeys: signers.flatMap((signer) => (signer.publicKey ? [signer.publicKey] : [])),
    async sign(id, timestamp, body) {
      const ts = String(Math.floor(timestamp));
      const prefix = `${id}.${ts}.`;
      const signatures = await Promise.all(signers.map((signer) => signer.sign(prefix, body)));
      return {
        "webhook-id": id,
        "webhook-timestamp": ts,
        "webhook-signature": signatures.join(" "),
      };
    },
  };
}
