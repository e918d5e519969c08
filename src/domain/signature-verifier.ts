import { importEd25519VerifyKey } from "./ed25519.js";
import { type HmacSha256, webCryptoHmacSha256 } from "./hmac-sha256.js";
import { checkVerificationKey, PUBLIC_KEY_PREFIX } from "./webhook-keys.js";
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

/** Headers that passed every check they decide alone, ready to be checked against the body. */
export interface CheckedHeaders {
  readonly ok: true;
  readonly timestamp: number;
  readonly prefix: string;
  readonly v1: readonly string[];
  readonly v1a: readonly string[];
}

/** Outcome of the checks the headers alone decide. */
export type HeaderCheck = CheckedHeaders | { readonly ok: false; readonly reason: string };

/** Verifies Standard Webhooks signatures against every configured secret and public key. */
export interface SignatureVerifier {
  /**
   * What the headers alone decide, before any body is read: all three present and well formed, the
   * timestamp within the tolerance, and at least one signature of a configured scheme.
   */
  checkHeaders(headers: SignatureHeaders, nowSeconds: number): HeaderCheck;
  /** The signatures of headers that passed {@link checkHeaders}, over the raw body. */
  verifyBody(checked: CheckedHeaders, body: Uint8Array): Promise<SignatureCheck>;
  /** {@link checkHeaders}, then {@link verifyBody}. */
  verify(headers: SignatureHeaders, body: Uint8Array, nowSeconds: number): Promise<SignatureCheck>;
}

// Unix seconds, digits only: no sign, no fraction, no exponent, no leading zeros.
const TIMESTAMP_FORMAT = /^(?:0|[1-9][0-9]{0,10})$/;
const MAX_ID_LENGTH = 256;

/**
 * The most signatures (of any version) one `webhook-signature` header may carry. Senders list one
 * signature per key they sign with during a rotation: Svix keeps at most 10 old keys beside the
 * current one (11 signatures), and a sender moving from HMAC to Ed25519 doubles up while it lasts.
 * 16 leaves room for both; beyond it the header is refused, not truncated, so a valid signature
 * behind a padding of bogus ones is never silently skipped and the work per request stays bounded.
 */
export const MAX_SIGNATURES = 16;

/**
 * Creates a verifier for Standard Webhooks deliveries. Each configured key's prefix picks its
 * scheme (as the spec intends): `whsec_` secrets check `v1,` HMAC-SHA256 signatures, `whpk_` public
 * keys check `v1a,` Ed25519 signatures; other versions are ignored. Keys are imported once here,
 * not per request. Several keys are accepted during rotation; several signatures may be sent in one
 * header (up to {@link MAX_SIGNATURES}); the timestamp must lie within `toleranceS` of now in either
 * direction. Signatures cover the raw body bytes, before anything parses them.
 * @throws {WebhookSecretError} for a malformed key or a `whsk_` secret key (a receiver never holds one).
 */
export async function createSignatureVerifier(
  secrets: readonly string[],
  toleranceS: number,
  hmac: HmacSha256 = webCryptoHmacSha256,
): Promise<SignatureVerifier> {
  for (const entry of secrets) checkVerificationKey(entry);
  const hmacKeys = await Promise.all(
    secrets
      .filter((s) => !s.startsWith(PUBLIC_KEY_PREFIX))
      .map((secret) => hmac(decodeWebhookSecret(secret))),
  );
  const publicKeys = await Promise.all(
    secrets.filter((s) => s.startsWith(PUBLIC_KEY_PREFIX)).map((key) => importEd25519VerifyKey(key)),
  );
  const accepted = [hmacKeys.length > 0 ? "v1" : null, publicKeys.length > 0 ? "v1a" : null]
    .filter((version) => version !== null)
    .join(" or ");
  const verifier: SignatureVerifier = {
    checkHeaders(headers, nowSeconds) {
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

      const entries = signature.split(" ").filter((entry) => entry.length > 0);
      if (entries.length > MAX_SIGNATURES) {
        return {
          ok: false,
          reason: `webhook-signature carries ${entries.length} signatures; at most ${MAX_SIGNATURES} are accepted`,
        };
      }
      const v1 = hmacKeys.length > 0 ? versioned(entries, "v1") : [];
      const v1a = publicKeys.length > 0 ? versioned(entries, "v1a") : [];
      if (v1.length === 0 && v1a.length === 0) {
        return { ok: false, reason: `webhook-signature has no ${accepted} signature` };
      }

      return { ok: true, timestamp: sentAt, prefix: `${id}.${timestamp}.`, v1, v1a };
    },
    async verifyBody(checked, body) {
      const { prefix, v1, v1a } = checked;
      const expected = await Promise.all(hmacKeys.map((key) => key.mac(prefix, body)));
      // Every pair is compared, match or not, so timing does not reveal which one matched.
      let matched = false;
      for (const mac of expected) {
        for (const candidate of v1) matched = constantTimeEqual(mac, candidate) || matched;
      }
      // Ed25519 checks involve only public values, so they need no such care, only a bound on their
      // number (keys × at most MAX_SIGNATURES).
      if (!matched && v1a.length > 0) {
        const checks = await Promise.all(
          publicKeys.flatMap((key) => v1a.map((candidate) => key.verify(prefix, body, candidate))),
        );
        matched = checks.includes(true);
      }
      return matched
        ? { ok: true, timestamp: checked.timestamp }
        : { ok: false, reason: "no signature matches" };
    },
    async verify(headers, body, nowSeconds) {
      const checked = verifier.checkHeaders(headers, nowSeconds);
      return checked.ok ? verifier.verifyBody(checked, body) : checked;
    },
  };
  return verifier;
}

function versioned(entries: readonly string[], version: string): string[] {
  const head = `${version},`;
  return entries.filter((entry) => entry.startsWith(head)).map((entry) => entry.slice(head.length));
}

// Hand-written because neither Node's timingSafeEqual nor Workers' subtle.timingSafeEqual exists in
// both runtimes; the lengths of base64 HMAC-SHA256 values are public (44 characters).
function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
