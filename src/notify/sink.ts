import type { Notification } from "../domain/notification-payloads.js";

/** What one delivery attempt came to. `error` is safe to store and show: no URL, token or key. */
export type AttemptResult =
  | { readonly ok: true; readonly status?: number }
  | {
      readonly ok: false;
      /** Network error, time-out, 5xx, 408 or 429: worth another attempt. */
      readonly retryable: boolean;
      readonly error: string;
      readonly status?: number;
      /** The sink's `Retry-After`, in ms, when it sent one. */
      readonly retryAfterMs?: number;
    };

/** A place notifications go to: a webhook endpoint, Slack, PagerDuty, the console. */
export interface Sink {
  readonly name: string;
  readonly type: string;
  send(notification: Notification): Promise<AttemptResult>;
}
