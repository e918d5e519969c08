import * as v from "valibot";
import { MAX_ED25519_CHECKS } from "../domain/signature-verifier.js";
import { SinkListSchema } from "../domain/sink-config-schema.js";
import { checkVerificationKey, PUBLIC_KEY_PREFIX } from "../domain/webhook-keys.js";

// Stryker disable next-line Regex: one separator or a run of them splits the same once empty items are dropped
const list = (value: string) => value.split(/[\s,]+/).filter((item) => item.length > 0);

const integer = (fallback: number, min: number, max: number) =>
  v.pipe(
    v.optional(v.string(), String(fallback)),
    v.regex(/^\s*\d+\s*$/, `must be a whole number from ${min} to ${max}`),
    v.transform(Number),
    v.minValue(min, `must be a whole number from ${min} to ${max}`),
    v.maxValue(max, `must be a whole number from ${min} to ${max}`),
  );

const seconds = (fallback: string, min: number) =>
  v.pipe(
    v.optional(v.string(), fallback),
    v.regex(/^\s*\d+(\.\d+)?\s*$/, "must be a number of seconds"),
    v.transform(Number),
    v.minValue(min, `must be at least ${min}`),
  );

const WebhookSecretsSchema = v.pipe(
  v.optional(v.string(), ""),
  v.transform(list),
  v.minLength(1, "is required: one or more whsec_ secrets or whpk_ public keys"),
  v.rawCheck(({ dataset, addIssue }) => {
    // Stryker disable next-line ConditionalExpression: an untyped list here is the empty one minLength refused, with no entry to check
    if (!dataset.typed) return;
    dataset.value.forEach((entry, index) => {
      try {
        checkVerificationKey(entry);
      } catch (error) {
        addIssue({ message: `entry #${index + 1} ${(error as Error).message}` });
      }
    });
  }),
  // Each v1a signature is tried against every public key, and a request may cost at most
  // MAX_ED25519_CHECKS verifications: with more keys no v1a request could be verified.
  v.check(
    (entries) => entries.filter((entry) => entry.startsWith(PUBLIC_KEY_PREFIX)).length <= MAX_ED25519_CHECKS,
    `holds more than ${MAX_ED25519_CHECKS} whpk_ public keys (each request may cost at most ${MAX_ED25519_CHECKS} Ed25519 checks)`,
  ),
);

// OpenAI signs with Standard Webhooks `whsec_` secrets only (SPEC §9); several during a rotation.
const OpenAiWebhookSecretsSchema = v.pipe(
  v.optional(v.string(), ""),
  v.transform(list),
  v.rawCheck(({ dataset, addIssue }) => {
    // Stryker disable next-line ConditionalExpression: the transform above always types the list
    if (!dataset.typed) return;
    dataset.value.forEach((entry, index) => {
      if (!entry.startsWith("whsec_")) {
        addIssue({
          message: `entry #${index + 1} must be a whsec_ secret (the one OpenAI's dashboard shows)`,
        });
        return;
      }
      try {
        checkVerificationKey(entry);
      } catch (error) {
        addIssue({ message: `entry #${index + 1} ${(error as Error).message}` });
      }
    });
  }),
);

// Printable ASCII without spaces: it is sent in a header.
const HeaderValueSchema = (what: string) =>
  v.optional(
    v.pipe(v.string(), v.regex(/^[\x21-\x7e]{1,512}$/, `must be ${what}: printable ASCII, no spaces`)),
  );

// RFC 6750 §2.1's b64token: a token with any other character could never be sent in an
// Authorization header as the API expects it, so it is refused here rather than at every request.
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

const BearerTokensSchema = v.pipe(
  v.optional(v.string(), ""),
  v.transform(list),
  v.check((tokens) => tokens.every((t) => t.length >= 16), "each token must be at least 16 characters"),
  v.check(
    (tokens) => tokens.every((t) => BEARER_TOKEN.test(t)),
    "each token may only use letters, digits and - . _ ~ + / (then = padding): the bearer token alphabet",
  ),
);

// The largest DynamoDB item is 400 KB; the stored snapshot must fit with room for its attributes.
const MAX_BODY_LIMIT = 358_400;

/**
 * Every setting of stepwatch, read once at start-up from environment variables or Worker bindings
 * (SPEC §2). Keys are the variable names, so an issue's path names the variable to fix.
 */
export const ConfigSchema = v.object({
  WEBHOOK_SECRET: WebhookSecretsSchema,
  API_TOKEN: BearerTokensSchema,
  METRICS_TOKEN: BearerTokensSchema,
  DYNAMODB_TABLE: v.pipe(
    v.optional(v.string(), "stepwatch"),
    v.regex(/^[A-Za-z0-9_.-]{3,255}$/, "must be 3–255 letters, digits, _, - or ."),
  ),
  DYNAMODB_ENDPOINT: v.optional(v.pipe(v.string(), v.url("must be an absolute URL"))),
  AWS_REGION: v.optional(
    v.pipe(v.string(), v.regex(/^[a-z0-9-]+$/, "must be a region name such as us-east-1")),
  ),
  // Blank values never get here (parseConfig drops them), and the pair is checked together there.
  AWS_ACCESS_KEY_ID: v.optional(v.string()),
  AWS_SECRET_ACCESS_KEY: v.optional(v.string()),
  AWS_SESSION_TOKEN: v.optional(v.string()),
  NOTIFY_SINKS: v.pipe(
    v.optional(v.string(), "[]"),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      try {
        return JSON.parse(dataset.value) as unknown;
      } catch {
        addIssue({ message: "must be a JSON array of sinks" });
        return NEVER;
      }
    }),
    SinkListSchema,
  ),
  SIGNATURE_TOLERANCE_S: integer(300, 1, 86_400),
  MAX_BODY_BYTES: integer(262_144, 1_024, MAX_BODY_LIMIT),
  RETENTION_DAYS: integer(0, 0, 36_500),
  /**
   * Seconds an in-progress step may go without a terminal event before the watchdog notifies
   * `stalled` subscribers (600, the Assistants run expiry); 0 turns the watchdog off.
   */
  STALL_AFTER_S: integer(600, 0, 604_800),
  /** Days a signed request whose body was refused is kept for replay (README, "Quarantine"). */
  QUARANTINE_DAYS: integer(14, 1, 3_650),
  NOTIFY_RETRY_SCHEDULE: v.pipe(
    v.optional(v.string(), "30,120,600,3600,21600,86400"),
    v.transform(list),
    v.check(
      (items) => items.every((s) => /^\d+(\.\d+)?$/.test(s)),
      "must be comma-separated seconds, e.g. 30,120,600",
    ),
    v.transform((items) => items.map(Number)),
  ),
  NOTIFY_TIMEOUT_MS: integer(10_000, 100, 120_000),
  SWEEP_INTERVAL_S: seconds("15", 0.05),
  /** How long one sweep keeps draining; each runtime has its own default (README, "Sweeps"). */
  SWEEP_BUDGET_MS: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\s*\d+\s*$/, "must be a whole number of ms from 100 to 840000"),
      v.transform(Number),
      v.minValue(100, "must be a whole number of ms from 100 to 840000"),
      v.maxValue(840_000, "must be a whole number of ms from 100 to 840000"),
    ),
  ),
  /** Attempts in flight to one sink from one process. */
  NOTIFY_CONCURRENCY: integer(16, 1, 256),
  LOG_LEVEL: v.optional(
    v.picklist(["debug", "info", "warn", "error"], "must be debug, info, warn or error"),
    "info",
  ),
  /**
   * Node server: the most the headers of one request may take to arrive, from its first byte.
   * (Node's own default, 60 s, lets a slow sender hold a connection for a minute per request.)
   */
  HEADERS_TIMEOUT_MS: integer(10_000, 1_000, 600_000),
  /**
   * Node server: the most a whole request (headers and body) may take to arrive: the body-read
   * deadline. Node's default, 300 s, let slow uploads pin their buffers for five minutes.
   */
  REQUEST_TIMEOUT_MS: integer(30_000, 1_000, 600_000),
  /** Node server: how long a keep-alive connection may stay idle between two requests. */
  KEEP_ALIVE_TIMEOUT_MS: integer(5_000, 100, 600_000),
  /** Node server: connections open at once; more are closed as they are accepted. */
  MAX_CONNECTIONS: integer(1_024, 1, 1_000_000),
  /** OpenAI's webhook signing secret(s): `POST /v1/webhooks/openai` answers 404 without one. */
  OPENAI_WEBHOOK_SECRET: OpenAiWebhookSecretsSchema,
  /** The API key hydrations fetch with; without one, events are recorded and wait (GET /v1/sources). */
  OPENAI_API_KEY: HeaderValueSchema("an API key"),
  /** OpenAI's API, or Azure OpenAI's v1 or any compatible server. */
  OPENAI_BASE_URL: v.pipe(
    v.optional(v.string(), "https://api.openai.com/v1"),
    v.url("must be an absolute URL such as https://api.openai.com/v1"),
    v.regex(/^https?:\/\//i, "must be an http(s) URL"),
  ),
  OPENAI_ORGANIZATION: HeaderValueSchema("an organization id"),
  OPENAI_PROJECT: HeaderValueSchema("a project id"),
  /** Fetches from OpenAI's API in flight at once from one process. */
  OPENAI_HYDRATION_CONCURRENCY: integer(8, 1, 256),
  PORT: integer(8787, 0, 65_535),
  HOST: v.optional(v.pipe(v.string(), v.minLength(1)), "127.0.0.1"),
});

/** Parsed configuration, keyed by variable name. */
export type Config = v.InferOutput<typeof ConfigSchema>;

/** Bad configuration; the message names the variable and never contains a value. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** One line per problem, each naming the variable (and where inside it) and what to do. */
  readonly problems: readonly string[];

  constructor(problems: string | readonly string[], options?: ErrorOptions) {
    const lines = typeof problems === "string" ? [problems] : problems;
    super(lines.join("\n"), options);
    this.problems = lines;
  }
}

// An entry that only sweeps receives no webhook, so it may go without WEBHOOK_SECRET (infra/ gives
// its sweep function the sinks and OpenAI's key, never the secret); given one, it is checked as usual.
const SweepOnlyConfigSchema = v.object({
  ...ConfigSchema.entries,
  WEBHOOK_SECRET: v.pipe(v.optional(v.string(), ""), v.transform(list)),
});

/** What the runtime entry parsing the configuration does with it. */
export interface ParseConfigOptions {
  /** False for an entry that only sweeps (the Lambda schedule): WEBHOOK_SECRET may then be unset. Default true. */
  readonly receivesWebhooks?: boolean;
}

/**
 * Parses configuration from an environment-like record (process.env, Worker bindings).
 * @throws {ConfigError} listing every bad variable at once, one line each.
 */
export function parseConfig(
  env: Readonly<Record<string, unknown>>,
  options: ParseConfigOptions = {},
): Config {
  const input: Record<string, unknown> = {};
  // Only string settings are read: Worker bindings also hold KV namespaces, services and the like.
  for (const key of Object.keys(ConfigSchema.entries)) {
    const value = env[key];
    if (typeof value === "string" && value.trim() !== "") input[key] = value;
  }
  const problems: string[] = [];
  if ((input.AWS_ACCESS_KEY_ID === undefined) !== (input.AWS_SECRET_ACCESS_KEY === undefined)) {
    problems.push("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
  }
  const sweepOnly = options.receivesWebhooks === false && input.WEBHOOK_SECRET === undefined;
  const result = v.safeParse(sweepOnly ? SweepOnlyConfigSchema : ConfigSchema, input);
  if (!result.success) {
    for (const issue of result.issues) {
      const line = describeIssue(issue);
      if (!problems.includes(line)) problems.push(line);
    }
  } else if (result.output.HEADERS_TIMEOUT_MS > result.output.REQUEST_TIMEOUT_MS) {
    // Node refuses the pair at start-up with a RangeError naming its own option names.
    problems.push(
      "HEADERS_TIMEOUT_MS must not exceed REQUEST_TIMEOUT_MS (the headers are part of the request)",
    );
  }
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `Invalid configuration: ${p}`));
  return (result as v.SafeParseResult<typeof ConfigSchema> & { success: true }).output;
}

// "NOTIFY_SINKS[0].url must be an http(s) URL": the variable, where inside it, what is wrong.
function describeIssue(issue: v.BaseIssue<unknown>): string {
  const keys = issue.path?.map((item) => item.key) ?? [];
  // An unknown field's issue points at the field itself; its message names it, so point at its owner.
  if (issue.type === "strict_object" && issue.expected === "never") keys.pop();
  const [variable, ...rest] = keys;
  const where = rest.map((key) => (typeof key === "number" ? `[${key}]` : `.${String(key)}`)).join("");
  // Valibot's generic messages end with what was received, which may be a secret: cut it off.
  const message = issue.message.replace(/ but received .*$/s, "");
  return `${variable === undefined ? "configuration" : String(variable)}${where} ${message}`;
}
