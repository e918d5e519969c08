import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StartupError } from "./startup-error.js";

/** File under the data directory holding the embedded store's credential. */
export const STORE_CREDENTIALS_FILE = "dynamodb-credentials.json";

/** The SigV4 key pair the embedded store accepts, and the only one. */
export interface StoreCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** A fresh random key pair, for a store that keeps nothing (tests, benches). */
export function generateStoreCredentials(): StoreCredentials {
  // The key id is not a secret in SigV4 (it travels in every request); random so that one store's
  // requests are recognisably not another's. The secret key is 256 random bits.
  return {
    accessKeyId: `SWLOCAL${randomBytes(10).toString("hex").toUpperCase()}`,
    secretAccessKey: randomBytes(32).toString("base64url"),
  };
}

/**
 * The embedded store's key pair for `dataDir`: generated once and kept (mode 0600) in
 * {@link STORE_CREDENTIALS_FILE}, under the names the AWS CLI reads from the environment, so a
 * developer can inspect the store with them. Kept rather than made per start so that such a tool
 * keeps working across restarts; the file is as private as the store's own files.
 * @throws {StartupError} when the file exists but is not such a pair.
 */
export function loadStoreCredentials(dataDir: string): StoreCredentials {
  const file = join(dataDir, STORE_CREDENTIALS_FILE);
  if (existsSync(file)) {
    // An existing file is made private too (one written by an older stepwatch, or copied).
    chmodSync(file, 0o600);
    return readCredentials(file);
  }
  const credentials = generateStoreCredentials();
  const saved = {
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
  };
  // "wx": never over a file another process wrote meanwhile (the data directory lock makes that
  // unlikely); the mode is given at creation so the secret is never readable by others, even briefly.
  writeFileSync(file, `${JSON.stringify(saved, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(file, 0o600);
  return credentials;
}

function readCredentials(file: string): StoreCredentials {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw invalid(file, error);
  }
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = (parsed ?? {}) as Record<
    string,
    unknown
  >;
  if (
    typeof accessKeyId !== "string" ||
    typeof secretAccessKey !== "string" ||
    !accessKeyId ||
    !secretAccessKey
  ) {
    throw invalid(file);
  }
  return { accessKeyId, secretAccessKey };
}

function invalid(file: string, cause?: unknown): StartupError {
  return new StartupError(
    `${file} is not a JSON object of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: fix it, or delete it ` +
      "(a new credential for the embedded store is generated)",
    cause === undefined ? undefined : { cause },
  );
}
