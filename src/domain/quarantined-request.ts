import type { JsonValueIssue } from "./json-value-check.js";

/** Why a signed request was refused: the answer its sender got. */
export interface Refusal {
  readonly status: 400 | 413 | 422;
  readonly code: "invalid_json" | "invalid_payload" | "payload_too_large";
  readonly message: string;
  readonly issues: readonly JsonValueIssue[];
}

/** What became of a quarantined request that was replayed and accepted. */
export interface Replay {
  readonly atMs: number;
  /** The step it applied to; null when it turned out to be a delta (acknowledged, not stored). */
  readonly stepId: string | null;
  readonly outcome: string;
}

/**
 * A request whose signature was valid but whose body was refused, kept so that nothing a trusted
 * sender signed is lost: replayed once today's rules accept it (after a fix or an upgrade), or
 * deleted, or expired after QUARANTINE_DAYS.
 */
export interface QuarantinedRequest {
  /** `q_` and a hash of the `webhook-id`: a sender's retries of one message are one record. */
  readonly id: string;
  readonly receivedAtMs: number;
  /** Unix seconds after which it is gone. */
  readonly expiresAt: number;
  readonly webhookId: string;
  /** The verified `webhook-timestamp`: a replay is applied as if it had arrived then. */
  readonly webhookTimestamp: number;
  /** The signature headers as received, and the content type. Never a secret. */
  readonly headers: Readonly<Record<string, string>>;
  readonly bodyBytes: number;
  readonly refusal: Refusal;
  readonly replay: Replay | null;
  readonly version: number;
}

/** The id of the record of a message: stable across its sender's retries. */
export async function quarantineId(webhookId: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(webhookId));
  const hex = [...new Uint8Array(digest).subarray(0, 13)].map((b) => b.toString(16).padStart(2, "0"));
  return `q_${hex.join("")}`;
}

/** Whether a string can be a quarantine id: anything else is not found, without a store read. */
export function isQuarantineId(id: string): boolean {
  return /^q_[0-9a-f]{26}$/.test(id);
}
