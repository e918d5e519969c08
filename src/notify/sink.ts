import type { Notification } from "../domain/notification-payloads.js";
import type { AttemptResult } from "../domain/retry-policy.js";

export type { AttemptResult } from "../domain/retry-policy.js";

/** A place notifications go to: a webhook endpoint, Slack, PagerDuty, the console. */
export interface Sink {
  readonly name: string;
  readonly type: string;
  send(notification: Notification): Promise<AttemptResult>;
}
