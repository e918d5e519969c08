import { createReadStream } from "node:fs";
import { chmod, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { makePrivateDir } from "../runtime/private-dir.js";
import { isProcessAlive } from "../runtime/process-alive.js";
import type { RelayEvent } from "./run-step-events.js";
import { parseSpoolLine, type Spool, spoolLine } from "./spool.js";

/** Raised when another live relay process holds the spool directory. */
export class SpoolLockedError extends Error {
  override readonly name = "SpoolLockedError";
}

const FILE = "spool.jsonl";
const LOCK = "relay.lock";
const READ_CHUNK = 64 * 1024;

interface PendingWrite {
  readonly line: Buffer;
  readonly durable: boolean;
  readonly resolve: (start: number) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * A spool in one append-only JSON-lines file under `dir` (Node only). Appends are group-committed:
 * records written while a write is under way go out together with one `fdatasync`, so a burst of
 * events costs one disk flush, and no event is called accepted before it is on disk. On opening,
 * acknowledged records are dropped (the file is rewritten and renamed into place), so the unsent
 * ones are what the forwarder reads first. A lock file keeps two live relays off one spool.
 */
export async function openFileSpool(dir: string): Promise<Spool> {
  // The spool holds whole signed events: readable by this user alone (0700 directory, 0600 files).
  makePrivateDir(dir);
  const lockPath = join(dir, LOCK);
  await takeLock(lockPath);
  // Forced: a lock file someone removed meanwhile is released already.
  const releaseLock = () => rm(lockPath, { force: true });
  const path = join(dir, FILE);
  try {
    await compact(path);
  } catch (error) {
    await releaseLock();
    throw error;
  }
  const handle = await open(path, "a+", 0o600);
  // A spool file an older relay made with the default mode is tightened too.
  await handle.chmod(0o600);
  let size = (await handle.stat()).size;
  let durableEnd = size;
  let pending: PendingWrite[] = [];
  let writing: Promise<void> | null = null;
  let truncating: Promise<void> | null = null;
  let closed = false;
  // Lines taken so far: what tells clear() that something came in while it waited.
  let enqueued = 0;

  const flush = async () => {
    const batch = pending;
    pending = [];
    const buffer = Buffer.concat(batch.map((w) => w.line));
    const starts: number[] = [];
    let at = size;
    for (const w of batch) {
      starts.push(at);
      at += w.line.length;
    }
    try {
      await handle.write(buffer, 0, buffer.length, null);
      size = at;
      if (batch.some((w) => w.durable)) await handle.datasync();
      durableEnd = size;
      for (const [i, w] of batch.entries()) w.resolve(starts[i] ?? 0);
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
  };
  const schedule = () => {
    if (writing || truncating || pending.length === 0) return;
    writing = flush().finally(() => {
      writing = null;
      schedule();
    });
  };
  const enqueue = (line: string, durable: boolean) =>
    new Promise<number>((resolve, reject) => {
      if (closed) {
        reject(new Error("the spool is closed"));
        return;
      }
      // Stryker disable next-line UpdateOperator: the count is only compared for a change
      enqueued++;
      pending.push({ line: Buffer.from(line), durable, resolve, reject });
      schedule();
    });
  const settled = async () => {
    while (writing || truncating) await (writing ?? truncating);
  };

  return {
    append: (event) => enqueue(spoolLine(event), true),
    ack(id) {
      enqueue(`${JSON.stringify({ ack: id })}\n`, false).catch(() => undefined);
    },
    get durableEnd() {
      return durableEnd;
    },
    async read(from, max) {
      const events: RelayEvent[] = [];
      let offset = from;
      let carry = Buffer.alloc(0);
      let position = from;
      while (events.length < max && position < durableEnd) {
        const length = Math.min(READ_CHUNK, durableEnd - position);
        const chunk = Buffer.alloc(length);
        const { bytesRead } = await handle.read(chunk, 0, length, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        carry = Buffer.concat([carry, chunk.subarray(0, bytesRead)]);
        let newline = carry.indexOf(10);
        while (newline !== -1 && events.length < max) {
          const line = carry.subarray(0, newline).toString("utf8");
          offset += newline + 1;
          carry = carry.subarray(newline + 1);
          const parsed = parseSpoolLine(line);
          if (parsed && !("ack" in parsed)) events.push(parsed);
          newline = carry.indexOf(10);
        }
      }
      return { events, next: offset };
    },
    async clear() {
      const before = enqueued;
      await settled();
      // An append that came in meanwhile keeps the file as it is (the next idle moment clears it):
      // waiting for the writes under way also waits for the ones queued behind them, which were
      // accepted and must stay on disk.
      if (enqueued !== before || truncating || closed) return;
      truncating = handle
        .truncate(0)
        .then(() => {
          size = 0;
          durableEnd = 0;
        })
        .finally(() => {
          truncating = null;
          schedule();
        });
      await truncating;
    },
    async close() {
      await settled();
      closed = true;
      await handle.close();
      await releaseLock();
    },
  };
}

async function takeLock(lockPath: string): Promise<void> {
  try {
    await writeFile(lockPath, String(process.pid), { flag: "wx", mode: 0o600 });
    return;
    // Stryker disable next-line BlockStatement: any error but EEXIST recurs on the plain write below
  } catch (error) {
    // Stryker disable next-line ConditionalExpression: any error but EEXIST recurs on the plain write below
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  // Unreadable, empty or not a pid (Number() skips surrounding white space): a crash while it was written.
  // Stryker disable next-line StringLiteral,ArrowFunction: whatever stands in for an unreadable lock is no pid, taken over alike
  const holder = Number(await readFile(lockPath, "utf8").catch(() => ""));
  if (Number.isInteger(holder) && holder > 0 && isProcessAlive(holder)) {
    throw new SpoolLockedError(`the spool ${lockPath} is in use by process ${holder}`);
  }
  // The process that held it is gone: its spool is ours now.
  await writeFile(lockPath, String(process.pid));
  // Written over the old one, which keeps its mode: made this user's alone like the rest.
  await chmod(lockPath, 0o600);
}

/**
 * Rewrites the spool without acknowledged records (two streaming passes: memory holds only ids).
 * Always rewritten, even with nothing acknowledged: that also drops a torn last line (a crash
 * mid-write), which the next append would otherwise run into, making its record unreadable.
 */
async function compact(path: string): Promise<void> {
  const acked = new Set<string>();
  try {
    for await (const line of lines(path)) {
      const parsed = parseSpoolLine(line);
      if (parsed && "ack" in parsed) acked.add(parsed.ack);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  const tmp = `${path}.tmp`;
  const out = await open(tmp, "w", 0o600);
  try {
    for await (const line of lines(path)) {
      const parsed = parseSpoolLine(line);
      if (parsed && !("ack" in parsed) && !acked.has(parsed.id)) await out.write(spoolLine(parsed));
    }
    await out.sync();
  } finally {
    await out.close();
  }
  await rename(tmp, path);
}

function lines(path: string): AsyncIterable<string> {
  return createInterface({
    // readline decodes the bytes as UTF-8 itself, characters split across chunks included.
    input: createReadStream(path),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
}
