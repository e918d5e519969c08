import * as v from "valibot";
import { isPlainObject, TERMINAL_STATUSES } from "./run-step-schema.js";
import { ALL_EVENTS, eventName, SUBJECT_KINDS } from "./subject-kinds.js";
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
      // Stryker disable next-line BlockStatement: an emptied catch returns undefined, as falsy as false.
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
      // Stryker disable next-line BlockStatement: an emptied catch returns undefined, as falsy as false.
    } catch {
      return false;
    }
  }, "must be whsk_ followed by base64 of 32 or 64 bytes"),
);

// What a sink can subscribe to: a run step's terminal statuses and `stalled` by their bare names (as
// sinks were configured before there were other kinds), and every kind's notifications by full name.
const SUBSCRIPTIONS = [...TERMINAL_STATUSES, "stalled", ...ALL_EVENTS] as const;
const SUBSCRIPTION_WORDS = `${[...TERMINAL_STATUSES, "stalled"].join(", ")} or full event names such as response.failed, agent.session.action_required`;

const OnSchema = v.pipe(
  v.array(
    v.picklist(SUBSCRIPTIONS, `must list statuses among ${SUBSCRIPTION_WORDS}`),
    `must be a list of statuses among ${SUBSCRIPTION_WORDS}`,
  ),
  v.minLength(1, "must list at least one status"),
);

const IdListSchema = (what: string) =>
  v.optional(
    v.pipe(
      v.array(v.string("must be a string"), `must be a list of ${what}`),
      v.minLength(1, `must list at least one ${what.replace(/s$/, "")}`),
    ),
  );

/**
 * A strict object whose issues read as plain words: an unknown field is named (with the closest
 * known one, as a misspelling usually is), a missing one is "required", never Valibot's
 * "Invalid key: Expected never".
 */
function fields<const E extends v.ObjectEntries>(entries: E) {
  const known = Object.keys(entries);
  return v.strictObject(entries, (issue) => {
    if (issue.expected === "never") {
      const name = String(issue.input);
      const near = closest(name, known);
      return `has an unknown field ${JSON.stringify(name)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ""}`;
    }
    // Stryker disable next-line MethodExpression,OptionalChaining: a missing key's `expected` is always a quoted name ("key"), set.
    if (issue.expected?.startsWith('"')) return "is required";
    return "must be an object";
  });
}

// Edit distance of two short field names; a library would be heavier than these lines.
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        (row[j] ?? 0) + 1,
        (next[j - 1] ?? 0) + 1,
        (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[b.length] ?? 0;
}

// The known field a misspelt `name` most likely meant: case aside, at most two edits (one for
// short names), or the start of a longer field ("assistant" for "assistant_id").
function closest(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: { field: string; d: number } | undefined;
  for (const field of known) {
    const d = distance(lower, field.toLowerCase());
    const near = d <= (field.length <= 4 ? 1 : 2) || (lower.length >= 4 && field.startsWith(lower));
    // Stryker disable next-line ConditionalExpression,EqualityOperator: no name is near two fields of one sink shape today (checked over every one-edit name); kept for the next field.
    if (near && (!best || d < best.d)) best = { field, d };
  }
  return best?.field;
}

const FilterSchema = fields({
  assistant_id: IdListSchema("assistant ids"),
  model: IdListSchema("models"),
  prompt_id: IdListSchema("prompt ids"),
  // An array is an object to Valibot's record: refused first, as the step's own metadata is.
  metadata: v.optional(
    v.pipe(
      v.custom<Record<string, string>>(isPlainObject, "must be an object of strings"),
      v.record(
        v.string(),
        v.string("metadata filter values must be strings"),
        "must be an object of strings",
      ),
    ),
  ),
});

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
      fields({
        ...common,
        type: v.literal("webhook"),
        url: HttpUrlSchema,
        secret: v.optional(SecretSchema),
        signing_key: v.optional(SigningKeySchema),
      }),
      fields({ ...common, type: v.literal("slack"), url: HttpUrlSchema }),
      fields({
        ...common,
        type: v.literal("pagerduty"),
        routing_key: v.pipe(v.string("must be a string"), v.minLength(1, "must not be empty")),
        url: v.optional(HttpUrlSchema, PAGERDUTY_ENQUEUE_URL),
      }),
      fields({ ...common, type: v.literal("console") }),
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
      readonly on: readonly (typeof SUBSCRIPTIONS)[number][];
    }
  : never;

// Every other kind's notifications by full name: a run step's keep their bare names.
const otherKinds = (pick: (kind: (typeof SUBJECT_KINDS)[keyof typeof SUBJECT_KINDS]) => readonly string[]) =>
  Object.values(SUBJECT_KINDS)
    .filter((kind) => kind.name !== "run_step")
    .flatMap((kind) => pick(kind).map((status) => eventName(kind, status)));

// PagerDuty pages people: by default only for what needs one. Other sinks hear every notification
// of every kind, as a Svix endpoint with no filter hears every event type.
const EVERYTHING = [...TERMINAL_STATUSES, ...otherKinds((kind) => kind.notifiable)] as Subscription[];
const DEFAULT_ON: Record<SinkConfigInput["type"], readonly Subscription[]> = {
  webhook: EVERYTHING,
  slack: EVERYTHING,
  console: EVERYTHING,
  pagerduty: [
    ...SUBJECT_KINDS.run_step.pagerDefault,
    ...otherKinds((kind) => kind.pagerDefault),
  ] as Subscription[],
};

type Subscription = (typeof SUBSCRIPTIONS)[number];

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
