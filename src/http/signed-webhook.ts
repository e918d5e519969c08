import type { Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { CheckedHeaders, SignatureVerifier } from "../domain/signature-verifier.js";
import { describeError } from "../observability/logger.js";
import type { SignedRequest } from "../usecases/keep-refused.js";
import { logFields } from "./request-log.js";
import { fail } from "./responses.js";
import { describe, type RouteDoc } from "./route-docs.js";

declare module "hono" {
  interface ContextVariableMap {
    /** A signed webhook's signature headers, checked before its body was read. */
    checkedHeaders: CheckedHeaders;
  }
}

/** What a signed webhook endpoint needs. */
export interface SignedWebhookDeps {
  readonly verifier: SignatureVerifier;
  readonly maxBodyBytes: number;
  /** Clock in Unix ms. */
  readonly nowMs: () => number;
}

const signatureHeader = (name: string, svix: string, description: string, example: string) => ({
  name,
  in: "header",
  description: `${description} (${svix} is accepted in its place)`,
  schema: { type: "string" },
  example,
});

/** The Standard Webhooks headers every signed endpoint reads, for its documentation. */
export const SIGNATURE_PARAMETERS = [
  signatureHeader("webhook-id", "svix-id", "The message id; a sender's retries repeat it", "msg_2Lk..."),
  signatureHeader(
    "webhook-timestamp",
    "svix-timestamp",
    "Unix seconds of signing, within SIGNATURE_TOLERANCE_S (default 300) of now",
    "1714000000",
  ),
  signatureHeader(
    "webhook-signature",
    "svix-signature",
    "Space-separated v1,<base64 HMAC-SHA256> and/or v1a,<base64 Ed25519> signatures",
    "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
  ),
];

/** The answers every signed endpoint gives before its own use case does (SPEC §3), for its documentation. */
export const SIGNED_WEBHOOK_ERRORS = {
  400: "Body is not JSON or not UTF-8 (invalid_json)",
  401: "Missing, stale or wrong signature (invalid_signature)",
  415: "Content type is not JSON",
  503: true,
} as const;

const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;
// Headers kept with a quarantined request: what proves who signed it, and what it said it was.
const KEPT_HEADERS = ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type"] as const;
const SVIX_NAMES: Record<string, string> = {
  "webhook-id": "svix-id",
  "webhook-timestamp": "svix-timestamp",
  "webhook-signature": "svix-signature",
};

/**
 * Mounts a Standard Webhooks endpoint at `/` of `routes` (SPEC §3, §9): media type, declared size
 * and what the signature headers decide alone are decided before the body is read, then the
 * signature over the raw bytes, then `onSigned` with the verified request. Every signed endpoint
 * is the same edge, so a hardening of one is a hardening of all.
 */
export function signedWebhookRoute(
  routes: Hono,
  doc: RouteDoc,
  deps: SignedWebhookDeps,
  onSigned: (c: Context, request: SignedRequest) => Promise<Response>,
): void {
  const { verifier, maxBodyBytes } = deps;
  // Refused before the body is read: the rest of the upload is not wanted, so the connection is
  // closed after the answer (keeping it alive would leave the unread body in the way of the next
  // request, and Node would drop the connection under the client).
  const early = (c: Context) => {
    c.header("Connection", "close");
  };
  const tooLarge = (c: Context) => {
    early(c);
    return fail(c, 413, "payload_too_large", `body must be at most ${maxBodyBytes} bytes`);
  };
  // Hono's bodyLimit guards bodies of unknown length as they stream in. A declared length is
  // checked from the header alone: bodyLimit reads `c.req.raw.body`, which makes @hono/node-server
  // build a full Request for every event, a measurable cost on the hot path (BENCHMARKS.md).
  const streamingLimit = bodyLimit({ maxSize: maxBodyBytes, onError: tooLarge });

  routes.post(
    // Stryker disable next-line StringLiteral: app.route mounts "" and "/" at the same path.
    "/",
    describe(doc),
    async (c, next) => {
      const type = c.req.header("content-type");
      if (!type || !JSON_MEDIA_TYPE.test(type)) {
        early(c);
        return fail(c, 415, "unsupported_media_type", "content-type must be application/json (UTF-8)");
      }
      await next();
    },
    async (c, next) => {
      const length = c.req.header("content-length");
      const streaming = length === undefined || c.req.header("transfer-encoding") !== undefined;
      if (!streaming && (!/^\d{1,15}$/.test(length) || Number(length) > maxBodyBytes)) return tooLarge(c);
      // What the signature headers decide alone is decided before a byte of the body is read, so an
      // unsigned sender cannot make the server hold its body (SPEC §3: still a 401).
      const checked = verifier.checkHeaders(
        {
          id: header(c, "webhook-id"),
          timestamp: header(c, "webhook-timestamp"),
          signature: header(c, "webhook-signature"),
        },
        Math.floor(deps.nowMs() / 1000),
      );
      if (!checked.ok) {
        early(c);
        return invalidSignature(c, checked.reason);
      }
      c.set("checkedHeaders", checked);
      if (!streaming) return next();
      try {
        return await streamingLimit(c, next);
      } catch (error) {
        // Only the body's read can land here: Hono answers what the handler after it throws (the
        // store's 503 included) within next(), through the app's onError.
        return aborted(c, error);
      }
    },
    async (c) => {
      let body: Uint8Array;
      try {
        body = new Uint8Array(await c.req.arrayBuffer());
      } catch (error) {
        return aborted(c, error);
      }
      const check = await verifier.verifyBody(c.get("checkedHeaders"), body);
      if (!check.ok) {
        return invalidSignature(c, check.reason);
      }
      const headers: Record<string, string> = {};
      for (const name of KEPT_HEADERS) {
        const value = header(c, name);
        if (value !== undefined) headers[name] = value;
      }
      return onSigned(c, {
        body,
        // A verified signature implies the id header was present.
        // Stryker disable next-line StringLiteral: never used (see above); `?? ""` is for the type.
        webhookId: headers["webhook-id"] ?? "",
        timestamp: check.timestamp,
        headers,
        requestId: c.get("requestId"),
      });
    },
  );
}

const header = (c: Context, name: string) => c.req.header(name) ?? c.req.header(SVIX_NAMES[name] ?? name);

function invalidSignature(c: Context, reason: string) {
  // Which check failed, never a secret: a relay whose secret was rotated shows up here.
  logFields(c, { reason });
  return fail(c, 401, "invalid_signature", reason);
}

/**
 * The request status logged and counted when the body never arrived whole: the client closed the
 * connection mid-upload, or the runtime cut it off (REQUEST_TIMEOUT_MS on Node). nginx's 499 "client
 * closed request": not a 5xx, since nothing failed on this side, and no one is there to read it.
 */
const ABORTED_STATUS = 499;

function aborted(c: Context, error: unknown) {
  logFields(c, { error_code: "request_aborted", reason: describeError(error) });
  c.header("Connection", "close");
  return c.body(null, ABORTED_STATUS as ContentfulStatusCode);
}
