import type { HmacSha256 } from "../domain/hmac-sha256.js";
import {
  buildPagerDutyEvent,
  buildSlackMessage,
  buildWebhookPayload,
  formatConsoleLine,
  notificationMessageId,
} from "../domain/notification-payloads.js";
import type { SinkConfig } from "../domain/sink-config-schema.js";
import { WebhookSecretError } from "../domain/webhook-secret.js";
import { createWebhookSigner } from "../domain/webhook-signer.js";
import { postJson } from "./post-json.js";
import type { Sink } from "./sink.js";

/** Options shared by every sink. */
export interface SinkOptions {
  readonly timeoutMs: number;
  /** HMAC-SHA256 used to sign webhook sink deliveries. */
  readonly hmac: HmacSha256;
  /** Where the console sink writes; stdout by default. */
  readonly writeLine?: (line: string) => void;
  /** Clock in Unix ms: signature timestamps and `Retry-After` dates. */
  readonly nowMs?: () => number;
}

/**
 * Builds the configured sinks once at start-up (webhook signing keys are imported here, not per
 * delivery).
 */
export async function createSinks(
  configs: readonly SinkConfig[],
  options: SinkOptions,
): Promise<Map<string, Sink>> {
  const sinks = await Promise.all(
    configs.map((config, index) =>
      createSink(config, options).catch((error: unknown) => {
        // Only the whsk_ check that needs Web Crypto can fail here; say where, never the key.
        if (error instanceof WebhookSecretError) {
          throw new WebhookSecretError(`(at ${index}.signing_key) ${error.message}`, { cause: error });
        }
        throw error;
      }),
    ),
  );
  return new Map(sinks.map((sink) => [sink.name, sink]));
}

async function createSink(config: SinkConfig, options: SinkOptions): Promise<Sink> {
  const { name, type } = config;
  const timeoutMs = options.timeoutMs;
  const nowMs = options.nowMs ?? Date.now;
  switch (config.type) {
    case "webhook": {
      const keys = [config.secret, config.signing_key].filter((key) => key !== undefined);
      const signer = await createWebhookSigner(keys, options.hmac);
      return {
        name,
        type,
        ...(signer.publicKeys[0] ? { publicKey: signer.publicKeys[0] } : {}),
        async send(n) {
          const body = JSON.stringify(buildWebhookPayload(n));
          const id = await notificationMessageId(n.subjectId, n.event, name);
          const headers = await signer.sign(id, nowMs() / 1000, body);
          return postJson(config.url, body, { ...headers }, timeoutMs, nowMs);
        },
      };
    }
    case "slack":
      return {
        name,
        type,
        send: (n) => postJson(config.url, JSON.stringify(buildSlackMessage(n)), {}, timeoutMs, nowMs),
      };
    case "pagerduty":
      return {
        name,
        type,
        send: (n) =>
          postJson(
            config.url,
            JSON.stringify(buildPagerDutyEvent(n, config.routing_key)),
            {},
            timeoutMs,
            nowMs,
          ),
      };
    case "console": {
      const write = options.writeLine ?? ((line: string) => console.log(line));
      return {
        name,
        type,
        async send(n) {
          write(formatConsoleLine(n));
          return { ok: true };
        },
      };
    }
  }
}
