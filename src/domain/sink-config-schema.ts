import * as v from "valibot";
import { TERMINAL_STATUSES } from "./run-step-schema.js";
import { decodeWebhookSigningKey } from "./webhook-keys.js";
import { decodeWebhookSecret } from "./webhook-secret.js";

/** Where PagerDuty's Events API v2 takes events. */
export const PAGERDUTY_ENQUEUE_URL = "https://events.pagerduty.com/v2/enqueue";

const NameSchema = v.pipe(
  v.string("must be a string"),
  v.regex(
    /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/,
    "must be 1–64 letters, digits, _ or -, starting with a letter or digit",
  ),
);

const HttpUrlSchema = v.pipe(
  v.string("must be a string"),
  v.url("must be an absolute URL"),
  v.check((url) => /^https?:\/\//i.test(url), "must be an http(s) URL"),
);

const SecretSchema = v.pipe(
  v.string("must be a string"),
  v.check((secret) => {
    try {
      decodeWebhookSecret(secret);
      return true;
    } catch {
      return false;
    }
  }, "must be a Standard Webhooks secret: whsec_ followed by base64 of 24–64 bytes"),
);

const SigningKeySchema = v.pipe(
  v.string("must be a string"),
  v.check((key) => {
    try {
      decodeWebhookSigningKey(key);
      return true;
    } catch {
      return false;
    }
  }, "must be whsk_ followed by base64 of 32 or 64 bytes"),
);

const OnSchema = v.pipe(
  v.array(v.picklist(TERMINAL_STATUSES, `must list statuses among ${TERMINAL_STATUSES.join(", ")}`)),
  v.minLength(1, "must list at least one status"),
);

const FilterSchema = v.strictObject(
  {
    assistant_id: v.optional(
      v.pipe(v.array(v.string()), v.minLength(1, "must list at least one assistant id")),
    ),
    metadata: v.optional(v.record(v.string(), v.string("metadata filter values must be strings"))),
  },
  "may only have assistant_id and metadata",
);

const common = {
  name: v.optional(NameSchema),
  on: v.optional(OnSchema),
  filter: v.optional(FilterSchema),
};

/**
 * One entry of `NOTIFY_SINKS`. A webhook sink signs with an HMAC `secret` (`v1`), an Ed25519
 * `signing_key` (`v1a`), or both at once (one header carrying both signatures, e.g. while its
 * receivers move from one scheme to the other).
 */
export const SinkConfigSchema = v.pipe(
  v.variant(
    "type",
    [
      v.strictObject({
        ...common,
        type: v.literal("webhook"),
        url: HttpUrlSchema,
        secret: v.optional(SecretSchema),
        signing_key: v.optional(SigningKeySchema),
      }),
      v.strictObject({ ...common, type: v.literal("slack"), url: HttpUrlSchema }),
      v.strictObject({
        ...common,
        type: v.literal("pagerduty"),
        routing_key: v.pipe(v.string("must be a string"), v.minLength(1, "must not be empty")),
        url: v.optional(HttpUrlSchema, PAGERDUTY_ENQUEUE_URL),
      }),
      v.strictObject({ ...common, type: v.literal("console") }),
    ],
    'type must be "webhook", "slack", "pagerduty" or "console"',
  ),
  v.check(
    (sink) => sink.type !== "webhook" || sink.secret !== undefined || sink.signing_key !== undefined,
    "a webhook sink needs a secret, a signing_key or both",
  ),
);

/** A sink entry as written. */
export type SinkConfigInput = v.InferOutput<typeof SinkConfigSchema>;

/** A sink entry with its defaults filled in: a name and the statuses it is notified of. */
export type SinkConfig = WithDefaults<SinkConfigInput>;

// Distributes over the union, so each sink type keeps its own fields.
type WithDefaults<T> = T extends unknown
  ? Omit<T, "name" | "on"> & {
      readonly name: string;
      readonly on: readonly (typeof TERMINAL_STATUSES)[number][];
    }
  : never;

// PagerDuty pages people: by default only for what needs one. Other sinks hear every terminal status.
const DEFAULT_ON = {
  webhook: TERMINAL_STATUSES,
  slack: TERMINAL_STATUSES,
  console: TERMINAL_STATUSES,
  pagerduty: ["failed", "expired"],
} as const;

/** `NOTIFY_SINKS`: a JSON array of sinks with unique names (a sink's name defaults to its type). */
export const SinkListSchema = v.pipe(
  v.array(SinkConfigSchema, "must be a JSON array of sinks"),
  v.transform((sinks) =>
    sinks.map(
      (sink): SinkConfig => ({ ...sink, name: sink.name ?? sink.type, on: sink.on ?? DEFAULT_ON[sink.type] }),
    ),
  ),
  v.check(
    (sinks) => new Set(sinks.map((s) => s.name)).size === sinks.length,
    "sink names must be unique (name defaults to type)",
  ),
);
