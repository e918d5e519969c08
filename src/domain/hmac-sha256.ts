import { bytesToBase64 } from "./webhook-secret.js";

const encoder = new TextEncoder();

/** An HMAC-SHA256 key ready to sign. */
export interface HmacSha256Key {
  /** Base64 MAC of `prefix` (as UTF-8) followed by `body`. */
  mac(prefix: string, body: string | Uint8Array): Promise<string>;
}

/** Imports raw key bytes once; the runtime chooses the implementation. */
export type HmacSha256 = (key: Uint8Array<ArrayBuffer>) => Promise<HmacSha256Key>;

/**
 * HMAC-SHA256 with Web Crypto: available in every runtime stepwatch runs on, Workers included.
 * Node passes its native `crypto.createHmac` instead (see runtime/node-hmac.ts): the same bytes,
 * without Web Crypto's per-call overhead on the hot path.
 */
export const webCryptoHmacSha256: HmacSha256 = async (keyBytes) => {
  const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return {
    async mac(prefix, body) {
      const head = encoder.encode(prefix);
      const tail = typeof body === "string" ? encoder.encode(body) : body;
      const signed = new Uint8Array(head.length + tail.length);
      signed.set(head, 0);
      signed.set(tail, head.length);
      return bytesToBase64(new Uint8Array(await crypto.subtle.sign("HMAC", key, signed)));
    },
  };
};
