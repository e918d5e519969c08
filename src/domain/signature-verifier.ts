import { decodeEd25519Signature, type Ed25519VerifyKey, importEd25519VerifyKey } from "./ed25519.js";
import { type HmacSha256, webCryptoHmacSha256 } from "./hmac-sha256.js";
import { checkVerificationKey, PUBLIC_KEY_PREFIX } from "./webhook-keys.js";
import { decodeWebhookSecret, WebhookSecretError } from "./webhook-secret.js";

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
  /** The well-formed `v1a` signatures, decoded (malformed or weak ones could match no key). */
  readonly v1a: readonly Uint8Array<ArrayBuffer>[];
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
 * The most Ed25519 verifications one request may ask for: its well-formed `v1a` entries times the
 * configured `whpk_` keys (each entry is tried against each key; Standard Webhooks names no key
 * id). An Ed25519 check hashes the whole body again, so at the largest body 8 of them cost a few
 * milliseconds of CPU, about twice an HMAC check of every secret, where 16 entries against two
 * keys cost 18 ms (issue 21). A header asking for more is a 401 before any is made; one key
 * leaves room for 8 `v1a` signatures, two keys (a receiver's rotation) for 4.
 */
export const MAX_ED25519_CHECKS = 8;

/** Tries one `whpk_` key; injectable so that tests can count the verifications a request costs. */
export type Ed25519KeyImporter = (whpk: string) => Promise<Ed25519VerifyKey>;

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
  importVerifyKey: Ed25519KeyImporter = importEd25519VerifyKey,
): Promise<SignatureVerifier> {
  for (const entry of secrets) checkVerificationKey(entry);
  if (secrets.filter((s) => s.startsWith(PUBLIC_KEY_PREFIX)).length > MAX_ED25519_CHECKS) {
    // More keys than checks a request may cost: no v1a request could ever be verified.
    throw new WebhookSecretError(`holds more than ${MAX_ED25519_CHECKS} whpk_ public keys`);
  }
  const hmacKeys = await Promise.all(
    secrets
      .filter((s) => !s.startsWith(PUBLIC_KEY_PREFIX))
      .map((secret) => hmac(decodeWebhookSecret(secret))),
  );
  const publicKeys = await Promise.all(
    secrets.filter((s) => s.startsWith(PUBLIC_KEY_PREFIX)).map((key) => importVerifyKey(key)),
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
      // Each version is tried only against the keys of its scheme.
      const v1 = hmacKeys.length > 0 ? versioned(entries, "v1") : [];
      const v1aEntries = publicKeys.length > 0 ? versioned(entries, "v1a") : [];
      if (v1.length === 0 && v1aEntries.length === 0) {
        return { ok: false, reason: `webhook-signature has no ${accepted} signature` };
      }
      // Malformed v1a entries (and weak ones) could match no key: they cost no verification.
      const v1a = v1aEntries.flatMap((entry) => decodeEd25519Signature(entry) ?? []);
      const checks = v1a.length * publicKeys.length;
      if (checks > MAX_ED25519_CHECKS) {
        return {
          ok: false,
          reason: `webhook-signature carries ${v1a.length} v1a signatures for ${publicKeys.length} public keys; at most ${MAX_ED25519_CHECKS} Ed25519 checks (signatures × keys) are made`,
        };
      }

      return { ok: true, timestamp: sentAt, prefix: `${id}.${timestamp}.`, v1, v1a };
    },
    async verifyBody(checked, body) {
      const { prefix, v1, v1a } = checked;
      // One MAC per secret, and only when there is a v1 signature to compare it with.
      const expected = v1.length > 0 ? await Promise.all(hmacKeys.map((key) => key.mac(prefix, body))) : [];
      // Every pair is compared, match or not, so timing does not reveal which one matched.
      let matched = false;
      for (const mac of expected) {
        for (const candidate of v1) matched = constantTimeEqual(mac, candidate) || matched;
      }
      // Ed25519 checks involve only public values, so they need no such care, only the bound above.
      if (!matched && v1a.length > 0) {
        const results = await Promise.all(
          publicKeys.flatMap((key) => v1a.map((candidate) => key.verify(prefix, body, candidate))),
        );
        matched = results.includes(true);
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
