import { type HmacSha256, webCryptoHmacSha256 } from "./hmac-sha256.js";
import { decodeWebhookSecret } from "./webhook-secret.js";

/** The signature headers as received (any may be missing). */
export interface SignatureHeaders {
  readonly id: string | undefined;
  readonly timestamp: string | undefined;
  readonly signature: string | undefined;
}

/** Outcome of a verification; `reason` is safe to show the sender. */
export type SignatureCheck =
  | { readonly ok: true; readonly timestamp: number }
  | { readonly ok: false; readonly reason: string };

/** Verifies Standard Webhooks signatures against every configured secret. */
export interface SignatureVerifier {
  verify(headers: SignatureHeaders, body: Uint8Array, nowSeconds: number): Promise<SignatureCheck>;
}

// Unix seconds, digits only: no sign, no fraction, no exponent, no leading zeros.
const TIMESTAMP_FORMAT = /^(?:0|[1-9][0-9]{0,10})$/;
const MAX_ID_LENGTH = 256;
const MAX_SIGNATURES = 16;

/**
 * Creates a verifier for Standard Webhooks deliveries. Keys are imported once here, not per request.
 * Several secrets are accepted during rotation; several `v1,` signatures may be sent in one header;
 * the timestamp must lie within `toleranceS` of now in either direction. The MAC is computed over
 * the raw body bytes, before anything parses them.
 */
export async function createSignatureVerifier(
  secrets: readonly string[],
  toleranceS: number,
  hmac: HmacSha256 = webCryptoHmacSha256,
): Promise<SignatureVerifier> {
  const keys = await Promise.all(secrets.map((secret) => hmac(decodeWebhookSecret(secret))));
  return {
    async verify(headers, body, nowSeconds) {
      const { id, timestamp, signature } = headers;
      if (!id || !timestamp || !signature) {
        return { ok: false, reason: "missing webhook-id, webhook-timestamp or webhook-signature header" };
      }
      if (id.length > MAX_ID_LENGTH) return { ok: false, reason: "webhook-id is too long" };
      if (!TIMESTAMP_FORMAT.test(timestamp)) {
        return { ok: false, reason: "webhook-timestamp must be an integer number of Unix seconds" };
      }
      const sentAt = Number(timestamp);
      if (sentAt < nowSeconds - toleranceS) return { ok: false, reason: "webhook-timestamp is too old" };
      if (sentAt > nowSeconds + toleranceS)
        return { ok: false, reason: "webhook-timestamp is too far in the future" };

      const candidates = signature
        .split(" ")
        .filter((s) => s.startsWith("v1,"))
        .slice(0, MAX_SIGNATURES)
        .map((s) => s.slice(3));
      if (candidates.length === 0) return { ok: false, reason: "webhook-signature has no v1 signature" };

      const prefix = `${id}.${timestamp}.`;
      const expected = await Promise.all(keys.map((key) => key.mac(prefix, body)));
      // Every pair is compared, match or not, so timing does not reveal which one matched.
      let matched = false;
      for (const mac of expected) {
        for (const candidate of candidates) matched = constantTimeEqual(mac, candidate) || matched;
      }
      return matched ? { ok: true, timestamp: sentAt } : { ok: false, reason: "no signature matches" };
    },
  };
}

// Hand-written because neither Node's timingSafeEqual nor Workers' subtle.timingSafeEqual exists in
// both runtimes; the lengths of base64 HMAC-SHA256 values are public (44 characters).
function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
