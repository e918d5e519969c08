import { readFile } from "node:fs/promises";
import type { ConsoleFileName, ConsoleFiles } from "../http/routes/console-routes.js";

/**
 * The console's files read from the directory `dir` (a file URL ending in `/`), at each request:
 * an edited file shows on the next reload, and a missing one is a 404 rather than a failed start.
 */
export function consoleFilesIn(dir: URL): ConsoleFiles {
  return async (name: ConsoleFileName) => {
    try {
      return { body: new Uint8Array(await readFile(new URL(name, dir))) };
      // Stryker disable next-line BlockStatement: without this return the function ends there, answering undefined all the same.
    } catch {
      return undefined;
    }
  };
}
