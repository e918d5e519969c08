import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import dynalite from "dynalite";
import { StartupError } from "./startup-error.js";

/** A dynalite server on loopback. */
export interface EmbeddedDynamo {
  readonly endpoint: string;
  close(): Promise<void>;
}

/**
 * Starts dynalite (a DynamoDB-compatible server from npm) on a free loopback port, persisted under
 * `path` so a restart loses nothing, or in memory when `path` is omitted.
 * @throws {StartupError} when the store under `path` is corrupt, unreadable or open elsewhere.
 */
export async function startEmbeddedDynamo(path?: string, port = 0, shownAs = path): Promise<EmbeddedDynamo> {
  if (path) {
    mkdirSync(path, { recursive: true });
    await checkStore(path, shownAs ?? path);
  }
  const server = dynalite({
    ...(path ? { path } : {}),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${bound}`,
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
