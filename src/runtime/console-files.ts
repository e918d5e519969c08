import { readFile } from "node:fs/promises";
import type { ConsoleFileName, ConsoleFiles } from "../http/routes/console-routes.js";

/**
 * The console's files read from the directory `dir` (a file URL ending in `/`), at each request:
 * an edited file shows on the next reload, and a missing one is a 404 rather than a failed start.
 */
export function consoleFilesIn(dir: URL): ConsoleFiles {
  return (name: ConsoleFileName) =>
    readFile(new URL(name, dir)).then(
      (bytes) => ({ body: new Uint8Array(bytes) }),
      () => undefined,
    );
}
