import type { Notification } from "../domain/notification-payloads.js";
import type { AttemptResult } from "../domain/retry-policy.js";

export type { AttemptResult } from "../domain/retry-policy.js";

/** A place notifications go to: a webhook endpoint, Slack, PagerDuty, the console. */
export interface Sink {
  readonly name: string;
  readonly type: string;
  /** The `whpk_` key receivers verify this sink's `v1a` signatures with (webhook sinks with a signing_key). */
  readonly publicKey?: string;
  send(notification: Notification): Promise<AttemptResult>;
}
