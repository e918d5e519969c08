import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateWebhookSecret } from "../domain/webhook-secret.js";
import { StartupError } from "./startup-error.js";

/** File under the data directory holding generated local secrets. */
export const LOCAL_SECRETS_FILE = "local-secrets.json";

/** The secrets `npm start` generates once and keeps in {@link LOCAL_SECRETS_FILE}. */
export interface LocalSecrets {
  readonly WEBHOOK_SECRET?: string;
  readonly API_TOKEN?: string;
  /** Verifies `POST /v1/webhooks/openai` locally; in production it is the one OpenAI's dashboard shows. */
  readonly OPENAI_WEBHOOK_SECRET?: string;
}

const SECRET_NAMES = ["WEBHOOK_SECRET", "API_TOKEN", "OPENAI_WEBHOOK_SECRET"] as const;
type SecretName = (typeof SECRET_NAMES)[number];

/** What the local defaults filled in, for the start-up banner. */
export interface LocalDefaults {
  /** Secrets that came from the data directory rather than the environment (safe to print locally). */
  readonly generated: LocalSecrets;
  readonly secretsFile: string;
  readonly consoleSink: boolean;
}

/**
 * Fills in what a newcomer has not configured, for `npm start` on a fresh clone: with the embedded
 * store (`embedded`), a webhook secret, an API token and an OpenAI webhook secret generated once and
 * kept under `dataDir` (so a restart keeps them); and a console sink when no sinks are configured.
 * OPENAI_API_KEY and OPENAI_BASE_URL are never filled in: the server talks to an OpenAI API only
 * when told which (`npm run openai-standin` prints the pair for its loopback stand-in).
 * Variables that are set are never touched. Against any other store nothing secret is generated: a server that is meant
 * to be reached must not invent credentials and print them into its logs.
 */
export function applyLocalDefaults(
  env: Record<string, string | undefined>,
  dataDir: string,
  embedded = true,
): LocalDefaults {
  const secretsFile = join(dataDir, LOCAL_SECRETS_FILE);
  const missing = SECRET_NAMES.filter((name) => !env[name]?.trim());
  const generated: Partial<Record<SecretName, string>> = {};
  if (embedded && missing.length > 0) {
    const saved = readSecrets(secretsFile);
    const secrets = {
      WEBHOOK_SECRET: saved.WEBHOOK_SECRET ?? generateWebhookSecret(),
      API_TOKEN: saved.API_TOKEN ?? generateToken(),
      OPENAI_WEBHOOK_SECRET: saved.OPENAI_WEBHOOK_SECRET ?? generateWebhookSecret(),
    };
    // Written again only when something was new (a file from before OPENAI_WEBHOOK_SECRET gains it).
    if (SECRET_NAMES.some((name) => saved[name] !== secrets[name])) {
      mkdirSync(dataDir, { recursive: true });
      writeFileSync(secretsFile, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
      chmodSync(secretsFile, 0o600);
    }
    for (const name of missing) env[name] = generated[name] = secrets[name];
  }
  const consoleSink = !env.NOTIFY_SINKS?.trim();
  if (consoleSink) env.NOTIFY_SINKS = JSON.stringify([{ type: "console" }]);
  return { generated, secretsFile, consoleSink };
}

/** Reads the secrets kept by {@link applyLocalDefaults}, if any. */
export function readSecrets(file: string): LocalSecrets {
  if (!existsSync(file)) return {};
  let parsed: Record<string, unknown>;
  try {
    const value: unknown = JSON.parse(readFileSync(file, "utf8"));
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new TypeError("not an object");
    parsed = value as Record<string, unknown>;
  } catch (error) {
    throw new StartupError(
      `${file} is not a JSON object of WEBHOOK_SECRET, API_TOKEN and OPENAI_WEBHOOK_SECRET: fix it, or delete ` +
        "it to generate new ones (senders and API clients then need the new ones), or set the three variables",
      { cause: error },
    );
  }
  const secrets: Partial<Record<SecretName, string>> = {};
  for (const name of SECRET_NAMES) {
    const value = parsed[name];
    if (typeof value === "string") secrets[name] = value;
  }
  return secrets;
}

function generateToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return `swt_${Buffer.from(bytes).toString("base64url")}`;
}
