import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { isProcessAlive } from "./process-alive.js";
import { StartupError } from "./startup-error.js";

/** File under the data directory holding the pid of the process that uses it. */
export const LOCK_FILE = "stepwatch.pid";

/**
 * Claims `dataDir` for this process, so that a second `npm start` on the same directory stops with
 * a line saying so instead of crashing inside the store. A lock left by a process that no longer
 * exists (killed, machine restarted) is taken over. Returns the release function.
 * @throws {StartupError} when a live process holds the directory.
 */
export function lockDataDir(dataDir: string, where = dataDir): () => void {
  const file = join(dataDir, LOCK_FILE);
  // A stale lock is removed and the claim tried again; another process may win that race.
  for (let tries = 0; tries < 3; tries++) {
    try {
      const fd = openSync(file, "wx", 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        // Only our own lock: never one a later process took over.
        if (holder(file) === process.pid) rmSync(file, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const pid = holder(file);
    if (pid !== undefined && pid !== process.pid && isProcessAlive(pid)) {
      throw new StartupError(
        `${where} is in use by another stepwatch (pid ${pid}): stop that one, or set STEPWATCH_DATA_DIR ` +
          `to another directory (if no stepwatch runs, delete ${join(where, LOCK_FILE)})`,
      );
    }
    rmSync(file, { force: true });
  }
  throw new StartupError(`${where} is being claimed by another stepwatch starting now: start only one`);
}

function holder(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, "utf8"), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
