import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateWebhookSecret } from "../domain/webhook-secret.js";
import { StartupError } from "./startup-error.js";

/** File under the data directory holding generated local secrets. */
export const LOCAL_SECRETS_FILE = "local-secrets.json";

/** What the local defaults filled in, for the start-up banner. */
export interface LocalDefaults {
  /** Secrets that came from the data directory rather than the environment (safe to print locally). */
  readonly generated: { readonly WEBHOOK_SECRET?: string; readonly API_TOKEN?: string };
  readonly secretsFile: string;
  readonly consoleSink: boolean;
}

/**
 * Fills in what a newcomer has not configured, for `npm start` on a fresh clone: with the embedded
 * store (`embedded`), a webhook secret and an API token generated once and kept under `dataDir` (so
 * a restart keeps them); and a console sink when no sinks are configured. Variables that are set
 * are never touched. Against any other store nothing secret is generated: a server that is meant
 * to be reached must not invent credentials and print them into its logs.
 */
export function applyLocalDefaults(
  env: Record<string, string | undefined>,
  dataDir: string,
  embedded = true,
): LocalDefaults {
  const secretsFile = join(dataDir, LOCAL_SECRETS_FILE);
  const needSecret = !env.WEBHOOK_SECRET?.trim();
  const needToken = !env.API_TOKEN?.trim();
  const generated: { WEBHOOK_SECRET?: string; API_TOKEN?: string } = {};
  if (embedded && (needSecret || needToken)) {
    const saved = readSecrets(secretsFile);
    const secrets = {
      WEBHOOK_SECRET: saved.WEBHOOK_SECRET ?? generateWebhookSecret(),
      API_TOKEN: saved.API_TOKEN ?? generateToken(),
    };
    if (saved.WEBHOOK_SECRET !== secrets.WEBHOOK_SECRET || saved.API_TOKEN !== secrets.API_TOKEN) {
      mkdirSync(dataDir, { recursive: true });
      writeFileSync(secretsFile, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
      chmodSync(secretsFile, 0o600);
    }
    if (needSecret) env.WEBHOOK_SECRET = generated.WEBHOOK_SECRET = secrets.WEBHOOK_SECRET;
    if (needToken) env.API_TOKEN = generated.API_TOKEN = secrets.API_TOKEN;
  }
  const consoleSink = !env.NOTIFY_SINKS?.trim();
  if (consoleSink) env.NOTIFY_SINKS = JSON.stringify([{ type: "console" }]);
  return { generated, secretsFile, consoleSink };
}

/** Reads the secrets kept by {@link applyLocalDefaults}, if any. */
export function readSecrets(file: string): { WEBHOOK_SECRET?: string; API_TOKEN?: string } {
  if (!existsSync(file)) return {};
  let parsed: Record<string, unknown>;
  try {
    const value: unknown = JSON.parse(readFileSync(file, "utf8"));
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new TypeError("not an object");
    parsed = value as Record<string, unknown>;
  } catch (error) {
    throw new StartupError(
      `${file} is not a JSON object of WEBHOOK_SECRET and API_TOKEN: fix it, or delete it to generate new ` +
        "ones (senders and API clients then need the new ones), or set both variables",
      { cause: error },
    );
  }
  return {
    ...(typeof parsed.WEBHOOK_SECRET === "string" ? { WEBHOOK_SECRET: parsed.WEBHOOK_SECRET } : {}),
    ...(typeof parsed.API_TOKEN === "string" ? { API_TOKEN: parsed.API_TOKEN } : {}),
  };
}

function generateToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return `swt_${Buffer.from(bytes).toString("base64url")}`;
}
