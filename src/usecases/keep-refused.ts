import { type QuarantinedRequest, quarantineId, type Refusal } from "../domain/quarantined-request.js";
import type { QuarantineStore } from "../store/quarantine-store.js";

/** A request whose Standard Webhooks signature was verified, as the HTTP edge hands it over. */
export interface SignedRequest {
  readonly body: Uint8Array;
  readonly webhookId: string;
  /** The verified `webhook-timestamp`, Unix seconds. */
  readonly timestamp: number;
  /** The signature headers and content type as received, kept with a refused request. */
  readonly headers: Readonly<Record<string, string>>;
  readonly requestId: string;
}

// The record keeps the body whole (up to MAX_BODY_BYTES), so what else it keeps is bounded: an
// issue's path can name a key as long as the body, which would take the item past 400 KB.
const MAX_KEPT_ISSUE = 1024;
const MAX_KEPT_HEADER = 4096;
const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/**
 * Keeps a signed request whose body was refused in the quarantine (SPEC §3, §5), before the
 * refusal is answered: what a trusted sender signed is never lost, and its sender's retries of the
 * same message are one record. `source` says which endpoint refused it, so a replay goes back there.
 * Returns the record's id.
 */
export async function keepRefused(
  quarantine: QuarantineStore,
  request: SignedRequest,
  refusal: Refusal,
  quarantineDays: number,
  receivedAtMs: number,
  source?: "openai",
): Promise<string> {
  const id = await quarantineId(request.webhookId);
  const record: QuarantinedRequest = {
    id,
    receivedAtMs,
    expiresAt: Math.floor(receivedAtMs / 1000) + quarantineDays * 86_400,
    webhookId: request.webhookId,
    webhookTimestamp: request.timestamp,
    headers: Object.fromEntries(
      Object.entries({ ...request.headers, ...(source ? { "x-stepwatch-endpoint": source } : {}) }).map(
        ([k, v]) => [k, clip(v, MAX_KEPT_HEADER)],
      ),
    ),
    bodyBytes: request.body.byteLength,
    refusal: {
      ...refusal,
      issues: refusal.issues.map((i) => ({
        path: clip(i.path, MAX_KEPT_ISSUE),
        message: clip(i.message, MAX_KEPT_ISSUE),
      })),
    },
    replay: null,
    version: 1,
  };
  await quarantine.keep(record, request.body);
  return id;
}

/** A refusal of a signed body (SPEC §3, §9): its status, code, message and per-field issues. */
export function refusal(
  status: Refusal["status"],
  code: Refusal["code"],
  message: string,
  issues: Refusal["issues"] = [],
): Refusal {
  return { status, code, message, issues };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A signed body read as UTF-8 JSON, or its 400: every endpoint's first step after the signature,
 * the same words on each.
 */
export function readJsonBody(
  body: Uint8Array,
): { ok: true; json: unknown } | { ok: false; refusal: Refusal } {
  try {
    return { ok: true, json: JSON.parse(utf8.decode(body)) };
  } catch {
    return { ok: false, refusal: refusal(400, "invalid_json", "body is not valid UTF-8 JSON") };
  }
}
