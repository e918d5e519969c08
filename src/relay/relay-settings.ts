import { decodeWebhookSecret } from "../domain/webhook-secret.js";

/** Raised for a missing or malformed setting; the message names it and never holds a secret. */
export class RelaySettingsError extends Error {
  override readonly name = "RelaySettingsError";
}

/** Where the relay sends run steps. */
export interface StepwatchTarget {
  readonly url: string;
  readonly secret: string;
}

/**
 * stepwatch's URL and secret from a flag, else the environment (`STEPWATCH_URL`,
 * `STEPWATCH_WEBHOOK_SECRET`), checked before anything is sent.
 */
export function stepwatchTarget(
  flags: { readonly url?: string | undefined; readonly secret?: string | undefined },
  env: Readonly<Record<string, string | undefined>>,
): StepwatchTarget {
  const url = httpUrl("--url / STEPWATCH_URL", flags.url ?? env.STEPWATCH_URL);
  const secret = flags.secret ?? env.STEPWATCH_WEBHOOK_SECRET;
  if (!secret)
    throw new RelaySettingsError(
      "--secret / STEPWATCH_WEBHOOK_SECRET is required (stepwatch's whsec_… WEBHOOK_SECRET)",
    );
  try {
    decodeWebhookSecret(secret);
  } catch (error) {
    throw new RelaySettingsError(`--secret / STEPWATCH_WEBHOOK_SECRET ${(error as Error).message}`);
  }
  return { url, secret };
}

/** An http(s) URL setting, or a RelaySettingsError naming it. */
export function httpUrl(name: string, value: string | undefined): string {
  if (!value) throw new RelaySettingsError(`${name} is required`);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new RelaySettingsError(`${name} is not a URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new RelaySettingsError(`${name} must be an http(s) URL`);
  }
  return value.replace(/\/+$/, "");
}

/** A whole number setting within bounds, or a RelaySettingsError naming it. */
export function integerSetting(
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new RelaySettingsError(`${name} must be an integer from ${min} to ${max}`);
  return n;
}
