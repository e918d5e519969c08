import type { RequestListener } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import dynalite from "dynalite";
import { makePrivateDir } from "./private-dir.js";
import { StartupError } from "./startup-error.js";
import { generateStoreCredentials, type StoreCredentials } from "./store-credentials.js";
import { guardStoreRequests } from "./store-guard.js";

/** A dynalite server on loopback. */
export interface EmbeddedDynamo {
  readonly endpoint: string;
  /** The only key pair it accepts: a client signs its requests with it (SigV4). */
  readonly credentials: StoreCredentials;
  close(): Promise<void>;
}

/**
 * Starts dynalite (a DynamoDB-compatible server from npm) on a free loopback port, persisted under
 * `path` (created private, 0700) so a restart loses nothing, or in memory when `path` is omitted.
 * dynalite checks no signature and answers browsers with `Access-Control-Allow-Origin: *`, so its
 * handler is wrapped ({@link guardStoreRequests}): it answers only requests signed with
 * `credentials` (random ones when not given) and no browser at all.
 * @throws {StartupError} when the store under `path` is corrupt, unreadable or open elsewhere.
 */
export async function startEmbeddedDynamo(
  path?: string,
  port = 0,
  shownAs = path,
  credentials: StoreCredentials = generateStoreCredentials(),
): Promise<EmbeddedDynamo> {
  if (path) {
    makePrivateDir(path);
    await checkStore(path, shownAs ?? path);
  }
  const server = dynalite({
    ...(path ? { path } : {}),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  // dynalite's own listener goes behind the guard, on the same socket: there is no second port
  // where it could be reached unguarded.
  const [handler] = server.listeners("request") as RequestListener[];
  if (!handler || server.listenerCount("request") !== 1) {
    throw new Error("dynalite no longer serves through one request listener: the store cannot be guarded");
  }
  server.removeAllListeners("request");
  server.on("request", guardStoreRequests(credentials, handler));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${bound}`,
    credentials,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface LevelDatabase {
  open(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens and closes the store's LevelDB before dynalite does: dynalite opens it lazily and its open
 * error surfaces later as an uncaught "Iterator is not open" from the first request. The database
 * class is the one dynalite itself loads (its `level` dependency), so both agree on the format.
 */
async function checkStore(path: string, shownAs: string): Promise<void> {
  const fromDynalite = createRequire(createRequire(import.meta.url).resolve("dynalite"));
  const { Level } = fromDynalite("level") as { Level: new (path: string) => LevelDatabase };
  const db = new Level(path);
  try {
    await db.open();
  } catch (error) {
    // Stryker disable next-line OptionalChaining: level's open error always wraps the one underneath as its cause.
    const code = (error as { cause?: { code?: string } }).cause?.code;
    if (code === "LEVEL_LOCKED") {
      throw new StartupError(
        `${shownAs} is open in another process (a stepwatch or dynalite using the same directory): ` +
          "stop it, or set STEPWATCH_DATA_DIR to another directory",
        { cause: error },
      );
    }
    throw new StartupError(
      `${shownAs} is corrupt or unreadable: move it away or delete it (the embedded store starts empty)`,
      { cause: error },
    );
  }
  await db.close();
}
