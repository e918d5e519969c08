import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import {
  chmod,
  type FileHandle,
  mkdir,
  mkdtemp,
  open,
  readFile,
  rm,
  stat,
  truncate,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { openFileSpool, SpoolLockedError } from "../src/relay/file-spool.js";
import type { RelayEvent } from "../src/relay/run-step-events.js";
import type { Spool } from "../src/relay/spool.js";

const dirs: string[] = [];
const spools: Spool[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  // A test that failed half-way must not leave a handle (and its lock) behind.
  await Promise.allSettled(spools.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "file-spool-"));
  dirs.push(dir);
  return dir;
}

async function openTracked(dir: string): Promise<Spool> {
  const spool = await openFileSpool(dir);
  spools.push(spool);
  return spool;
}

const fileOf = (dir: string) => join(dir, "spool.jsonl");
const lockOf = (dir: string) => join(dir, "relay.lock");

function event(n: number, body = `{"event":"thread.run.step.in_progress","data":{"n":${n}}}`): RelayEvent {
  return { id: `msg_${n}`, stepId: `step_${n % 3}`, event: "thread.run.step.in_progress", body };
}

/** The file format, stated here independently of spool.ts: one JSON line { id, step, event, body }. */
function recordLine(e: RelayEvent): string {
  return `${JSON.stringify({ id: e.id, step: e.stepId, event: e.event, body: e.body })}\n`;
}
const bytes = (text: string) => Buffer.byteLength(text, "utf8");

/** Rejects when `promise` has not settled within `ms`: every wait in this file is bounded. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** What node:fs/promises handles are made of: spied on to see flushes and reads (calls go through). */
async function fileHandleProto(dir: string): Promise<FileHandle> {
  const handle = await open(join(dir, "probe"), "w");
  await handle.close();
  return Object.getPrototypeOf(handle) as FileHandle;
}

/** A gate that holds a method's calls until opened; `entered` resolves at the first call. */
function gate() {
  let open = () => {};
  let entered = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  const reached = new Promise<void>((resolve) => {
    entered = resolve;
  });
  return { open, entered, opened, reached };
}

function openFds(): number {
  return readdirSync(existsSync("/proc/self/fd") ? "/proc/self/fd" : "/dev/fd").length;
}

/** A pid no process has: a child that has exited and been reaped. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", ""]);
  if (!child.pid) throw new Error("could not start a child process");
  return child.pid;
}

describe("file spool: appending and reading back", () => {
  it("append resolves with the byte offset its record starts at; durableEnd is the end of what is on disk", async () => {
    const dir = await freshDir();
    const spool = await openTracked(dir);
    expect(spool.durableEnd).toBe(0);
    // Multi-byte UTF-8: offsets count bytes, not characters.
    const first = event(1, '{"note":"é 😀 ü"}');
    const second = event(2);
    expect(await spool.append(first)).toBe(0);
    expect(spool.durableEnd).toBe(bytes(recordLine(first)));
    expect(await spool.append(second)).toBe(bytes(recordLine(first)));
    expect(spool.durableEnd).toBe(bytes(recordLine(first) + recordLine(second)));
    expect(await readFile(fileOf(dir), "utf8")).toBe(recordLine(first) + recordLine(second));
  });

  it("read returns up to `max` events from an offset, and `next` is where the record after the last one starts", async () => {
    const dir = await freshDir();
    const spool = await openTracked(dir);
    const events = [0, 1, 2, 3, 4].map((n) => event(n));
    const starts: number[] = [];
    for (const e of events) starts.push(await spool.append(e));
    const end = spool.durableEnd;

    expect(await spool.read(0, 2)).toEqual({ events: events.slice(0, 2), next: starts[2] });
    expect(await spool.read(starts[2] ?? -1, 2)).toEqual({ events: events.slice(2, 4), next: starts[4] });
    expect(await spool.read(starts[1] ?? -1, 1)).toEqual({ events: [events[1]], next: starts[2] });
    expect(await spool.read(starts[3] ?? -1, 100)).toEqual({ events: events.slice(3), next: end });
    expect(await spool.read(0, 100)).toEqual({ events, next: end });
    // Nothing asked for, nothing left, or an offset past the end: no events, and `next` stays put.
    expect(await spool.read(0, 0)).toEqual({ events: [], next: 0 });
    expect(await spool.read(end, 10)).toEqual({ events: [], next: end });
    expect(await spool.read(end + 100, 10)).toEqual({ events: [], next: end + 100 });
  });

  it("a burst of appends is written together with one flush; each record keeps its own offset, in order", async () => {
    const dir = await freshDir();
    const spool = await openTracked(dir);
    const proto = await fileHandleProto(dir);
    const datasync = vi.spyOn(proto, "datasync");
    const write = vi.spyOn(proto, "write");
    const events = Array.from({ length: 10 }, (_, n) => event(n));
    const starts = await within(Promise.all(events.map((e) => spool.append(e))), 1000, "the burst");
    let at = 0;
    const expected = events.map((e) => {
      const start = at;
      at += bytes(recordLine(e));
      return start;
    });
    expect(starts).toEqual(expected);
    expect(spool.durableEnd).toBe(at);
    // The first append goes out at once; the nine that came in while it was written share one write.
    expect(write).toHaveBeenCalledTimes(2);
    expect(datasync).toHaveBeenCalledTimes(2);
    expect(await readFile(fileOf(dir), "utf8")).toBe(events.map(recordLine).join(""));
    expect((await spool.read(0, 100)).events).toEqual(events);
  });

  it("an append resolves only once its record is flushed; until then read and durableEnd do not show it", async () => {
    const dir = await freshDir();
    const spool = await openTracked(dir);
    const [zero, one, two] = [event(0), event(1), event(2)];
    await spool.append(zero);
    await spool.append(one);
    const proto = await fileHandleProto(dir);
    const original = proto.datasync;
    const held = gate();
    const datasync = vi.spyOn(proto, "datasync").mockImplementation(async function (this: FileHandle) {
      held.entered();
      await held.opened;
      return original.call(this);
    });
    let resolved = false;
    const appending = spool.append(two).then((start) => {
      resolved = true;
      return start;
    });
    await within(held.reached, 1000, "the flush");
    // Written, not yet on disk for sure: the bytes are in the file, the record is not accepted.
    const durable = bytes(recordLine(zero) + recordLine(one));
    expect(await readFile(fileOf(dir), "utf8")).toBe(recordLine(zero) + recordLine(one) + recordLine(two));
    expect(resolved).toBe(false);
    expect(spool.durableEnd).toBe(durable);
    expect(await spool.read(0, 10)).toEqual({ events: [zero, one], next: durable });
    expect(await spool.read(bytes(recordLine(zero)), 10)).toEqual({ events: [one], next: durable });
    held.open();
    expect(await within(appending, 1000, "the append")).toBe(durable);
    expect(datasync).toHaveBeenCalledTimes(1);
    expect(spool.durableEnd).toBe(durable + bytes(recordLine(two)));
    expect((await spool.read(0, 10)).events).toEqual([zero, one, two]);
  });

  it("an acknowledgement is a line { ack } that costs no flush of its own, and read passes over it", async () => {
    const dir = await freshDir();
    const spool = await openTracked(dir);
    const [zero, one, two] = [event(0), event(1), event(2)];
    await spool.append(zero);
    const proto = await fileHandleProto(dir);
    const datasync = vi.spyOn(proto, "datasync");
    const appendingOne = spool.append(one);
    // Written together, after `one`: the acknowledgement rides along with the record's flush.
    spool.ack(zero.id);
    const appendingTwo = spool.append(two);
    await within(Promise.all([appendingOne, appendingTwo]), 1000, "the appends");
    expect(datasync).toHaveBeenCalledTimes(2);
    spool.ack(one.id);
    spool.ack(two.id);
    await within(spool.close(), 1000, "close");
    // Acknowledgements on their own: no flush for them.
    expect(datasync).toHaveBeenCalledTimes(2);
    expect(await readFile(fileOf(dir), "utf8")).toBe(
      [
        recordLine(zero),
        recordLine(one),
        '{"ack":"msg_0"}\n',
        recordLine(two),
        '{"ack":"msg_1"}\n{"ack":"msg_2"}\n',
      ].join(""),
    );
  });

  it("reads acknowledged records too (the forwarder decides), skipping acknowledgement and damaged lines", async () => {
    const dir = await freshDir();
    const spool = await openTracked(dir);
    const events = [0, 1, 2].map((n) => event(n));
    await spool.append(events[0] as RelayEvent);
    spool.ack("msg_0");
    await spool.append(events[1] as RelayEvent);
    await spool.append(events[2] as RelayEvent);
    const end = spool.durableEnd;
    expect(await spool.read(0, 10)).toEqual({ events, next: end });
    // One line damaged on disk (same length): it is passed over, the rest is read.
    const damaged = recordLine(events[0] as RelayEvent);
    const file = await open(fileOf(dir), "r+");
    await file.write("x".repeat(bytes(damaged) - 1), 0);
    await file.close();
    expect(await spool.read(0, 10)).toEqual({ events: events.slice(1), next: end });
    expect(await spool.read(0, 1)).toEqual({
      events: events.slice(1, 2),
      next: end - bytes(recordLine(events[2] as RelayEvent)),
    });
  });

  it("reads records longer than a 64 KiB chunk and multi-byte bodies whole, one chunk at a time, only as far as needed", async () => {
    const dir = await freshDir();
    const spool = await openTracked(dir);
    // ~45 KiB bodies of 1-, 2- and 4-byte characters: records straddle chunk boundaries, and so do characters.
    const events = [0, 1, 2, 3, 4, 5].map((n) =>
      event(n, JSON.stringify({ n, text: `${"a".repeat(n)}${"é😀x".repeat(6_500)}` })),
    );
    const starts: number[] = [];
    for (const e of events) starts.push(await spool.append(e));
    const end = spool.durableEnd;
    expect(end).toBeGreaterThan(4 * 64 * 1024);
    const proto = await fileHandleProto(dir);
    const read = vi.spyOn(proto, "read");

    expect(await spool.read(0, 100)).toEqual({ events, next: end });
    expect(read).toHaveBeenCalledTimes(Math.ceil(end / (64 * 1024)));
    read.mockClear();
    // The first record fits in the first chunk: one read.
    expect(await spool.read(0, 1)).toEqual({ events: events.slice(0, 1), next: starts[1] });
    expect(read).toHaveBeenCalledTimes(1);
    read.mockClear();
    expect(await spool.read(starts[2] ?? -1, 2)).toEqual({ events: events.slice(2, 4), next: starts[4] });
    expect(read).toHaveBeenCalledTimes(2);
    expect(await spool.read(starts[5] ?? -1, 2)).toEqual({ events: events.slice(5), next: end });

    // Reopened (rewritten by compaction), the same records come back.
    await spool.close();
    const again = await openTracked(dir);
    expect(again.durableEnd).toBe(end);
    expect(await again.read(0, 100)).toEqual({ events, next: end });
  });

  it("stops at the end of the file when it was cut short underneath, instead of waiting for bytes that will not come", async () => {
    const dir = await freshDir();
    const spool = await openTracked(dir);
    await spool.append(event(0));
    await spool.append(event(1));
    await truncate(fileOf(dir), 0);
    expect(await within(spool.read(0, 10), 1000, "read")).toEqual({ events: [], next: 0 });
  });

  it("an append whose flush fails is rejected with the error; later appends go on", async () => {
    const dir = await freshDir();
    const spool = await openTracked(dir);
    const proto = await fileHandleProto(dir);
    vi.spyOn(proto, "datasync").mockRejectedValueOnce(new Error("EIO: the disk went away"));
    await expect(within(spool.append(event(0)), 1000, "the append")).rejects.toThrow(
      "EIO: the disk went away",
    );
    const start = await within(spool.append(event(1)), 1000, "the next append");
    expect(start).toBe(bytes(recordLine(event(0))));
    expect(spool.durableEnd).toBe(start + bytes(recordLine(event(1))));
  });
});

describe("file spool: clear and close", () => {
  it("clear empties the file; what comes next starts again at offset 0", async () => {
    const dir = await freshDir();
    const spool = await openTracked(dir);
    await spool.append(event(0));
    spool.ack("msg_0");
    await spool.append(event(1));
    spool.ack("msg_1");
    await within(spool.clear(), 1000, "clear");
    expect(spool.durableEnd).toBe(0);
    expect(await readFile(fileOf(dir), "utf8")).toBe("");
    expect(await spool.read(0, 10)).toEqual({ events: [], next: 0 });
    expect(await spool.append(event(2))).toBe(0);
    expect(spool.durableEnd).toBe(bytes(recordLine(event(2))));
    expect(await spool.read(0, 10)).toEqual({ events: [event(2)], next: spool.durableEnd });
  });

  it("clear keeps the file when an append comes in before it is done", async () => {
    const dir = await freshDir();
    const spool = await openTracked(dir);
    await spool.append(event(0));
    const clearing = spool.clear();
    const start = spool.append(event(1));
    await within(Promise.all([clearing, start]), 1000, "clear and append");
    const expected = recordLine(event(0)) + recordLine(event(1));
    expect(await start).toBe(bytes(recordLine(event(0))));
    expect(spool.durableEnd).toBe(bytes(expected));
    expect(await readFile(fileOf(dir), "utf8")).toBe(expected);
  });

  it("clear keeps the file when an append comes in while an acknowledgement is being written", async () => {
    const dir = await freshDir();
    const spool = await openTracked(dir);
    await spool.append(event(0));
    const proto = await fileHandleProto(dir);
    const original = proto.write;
    const held = gate();
    vi.spyOn(proto, "write").mockImplementationOnce(async function (this: FileHandle, ...args: unknown[]) {
      held.entered();
      await held.opened;
      return (original as (...a: unknown[]) => Promise<unknown>).apply(this, args);
    } as FileHandle["write"]);
    // The last acknowledgement is on its way, so the forwarder is idle and clears the spool...
    spool.ack("msg_0");
    await within(held.reached, 1000, "the acknowledgement's write");
    const clearing = spool.clear();
    // ...and a new event is accepted meanwhile: it must still be on disk afterwards.
    const start = spool.append(event(1));
    held.open();
    await within(Promise.all([clearing, start]), 1000, "clear and append");
    const line = recordLine(event(1));
    expect(spool.durableEnd).toBeGreaterThanOrEqual(bytes(line));
    expect(await spool.read(await start, 10)).toEqual({ events: [event(1)], next: spool.durableEnd });
    await spool.close();
    const again = await openTracked(dir);
    expect((await again.read(0, 10)).events).toEqual([event(1)]);
  });

  it("clears that overlap truncate once, and an append that comes in meanwhile is written after it and kept", async () => {
    const dir = await freshDir();
    const spool = await openTracked(dir);
    await spool.append(event(0));
    spool.ack("msg_0");
    await within(spool.clear(), 1000, "clear");
    await spool.append(event(1));
    spool.ack("msg_1");
    const proto = await fileHandleProto(dir);
    const original = proto.truncate;
    const held = gate();
    const truncate = vi.spyOn(proto, "truncate").mockImplementationOnce(async function (
      this: FileHandle,
      length,
    ) {
      held.entered();
      await held.opened;
      return original.call(this, length);
    });
    const clears = Promise.all([spool.clear(), spool.clear()]);
    await within(held.reached, 1000, "the truncation");
    const start = spool.append(event(2));
    held.open();
    await within(Promise.all([clears, start]), 1000, "clears and append");
    expect(truncate).toHaveBeenCalledTimes(1);
    expect(await start).toBe(0);
    expect(await readFile(fileOf(dir), "utf8")).toBe(recordLine(event(2)));
    expect(spool.durableEnd).toBe(bytes(recordLine(event(2))));
  });

  it("after close, append rejects, ack and clear do nothing, and the file is left as it was", async () => {
    const dir = await freshDir();
    const spool = await openFileSpool(dir);
    await spool.append(event(0));
    await within(spool.close(), 1000, "close");
    await expect(within(spool.append(event(1)), 1000, "append")).rejects.toThrow("the spool is closed");
    spool.ack("msg_0");
    await within(spool.clear(), 1000, "clear");
    expect(await readFile(fileOf(dir), "utf8")).toBe(recordLine(event(0)));
  });

  it("close waits for the appends under way, and releases the lock", async () => {
    const dir = await freshDir();
    const spool = await openFileSpool(dir);
    const starts = Promise.all([0, 1, 2].map((n) => spool.append(event(n))));
    await within(spool.close(), 1000, "close");
    expect(await within(starts, 1000, "the appends")).toHaveLength(3);
    expect(existsSync(lockOf(dir))).toBe(false);
    expect(await readFile(fileOf(dir), "utf8")).toBe([0, 1, 2].map((n) => recordLine(event(n))).join(""));
  });

  it("opening and closing leaves no file descriptor open", async () => {
    const dir = await freshDir();
    await writeFile(fileOf(dir), [recordLine(event(0)), '{"ack":"msg_0"}\n', recordLine(event(1))].join(""));
    const before = openFds();
    const spool = await openFileSpool(dir);
    await spool.append(event(2));
    await spool.close();
    expect(openFds()).toBe(before);
  });
});

describe("file spool: reopening", () => {
  it("drops acknowledged records and keeps the others in order, from offset 0", async () => {
    const dir = await freshDir();
    const spool = await openFileSpool(dir);
    const events = [0, 1, 2, 3, 4].map((n) => event(n));
    for (const e of events) await spool.append(e);
    spool.ack("msg_1");
    spool.ack("msg_3");
    spool.ack("msg_unknown");
    await spool.close();

    // The rewritten file is on disk before it takes the old one's place.
    const sync = vi.spyOn(await fileHandleProto(dir), "sync");
    const again = await openTracked(dir);
    expect(sync).toHaveBeenCalledTimes(1);
    const kept = [events[0], events[2], events[4]] as RelayEvent[];
    const content = kept.map(recordLine).join("");
    expect(await readFile(fileOf(dir), "utf8")).toBe(content);
    expect(again.durableEnd).toBe(bytes(content));
    expect(await again.read(0, 10)).toEqual({ events: kept, next: bytes(content) });
    expect(await again.append(event(5))).toBe(bytes(content));
    expect(existsSync(`${fileOf(dir)}.tmp`)).toBe(false);
  });

  it("drops torn and foreign lines, so an append after a torn last line is not lost", async () => {
    const dir = await freshDir();
    const torn = recordLine(event(9)).slice(0, 30);
    await writeFile(
      fileOf(dir),
      [recordLine(event(0)), "not json\n", "[]\n", '{"ack":7}\n', "\n", recordLine(event(1)), torn].join(""),
    );
    const spool = await openTracked(dir);
    const content = recordLine(event(0)) + recordLine(event(1));
    expect(await readFile(fileOf(dir), "utf8")).toBe(content);
    expect(await spool.append(event(2))).toBe(bytes(content));
    expect((await spool.read(0, 10)).events).toEqual([event(0), event(1), event(2)]);
  });

  it("a spool holding nothing but a torn line starts empty, and what is appended is read back", async () => {
    const dir = await freshDir();
    await writeFile(fileOf(dir), recordLine(event(9)).slice(0, 25));
    const spool = await openTracked(dir);
    expect(spool.durableEnd).toBe(0);
    expect(await spool.append(event(1))).toBe(0);
    expect((await spool.read(0, 10)).events).toEqual([event(1)]);
    await spool.close();
    const again = await openTracked(dir);
    expect((await again.read(0, 10)).events).toEqual([event(1)]);
  });

  it("opens a directory that does not exist yet, creating it", async () => {
    const dir = join(await freshDir(), "nested", "spool");
    const spool = await openTracked(dir);
    expect(spool.durableEnd).toBe(0);
    expect(await spool.append(event(0))).toBe(0);
  });
});

describe("file spool: private to this user", () => {
  const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

  it("creates its directory 0700 and its files 0600, whatever the umask allows", async () => {
    const dir = join(await freshDir(), "relay-spool");
    const spool = await openTracked(dir);
    await spool.append(event(0));
    expect(await modeOf(dir)).toBe(0o700);
    expect(await modeOf(fileOf(dir))).toBe(0o600);
    expect(await modeOf(lockOf(dir))).toBe(0o600);
    await spool.close();
    // Reopened: the compacted file (written anew, then renamed into place) is 0600 too.
    await (await openTracked(dir)).close();
    expect(await modeOf(fileOf(dir))).toBe(0o600);
  });

  it("tightens a directory and files an older relay left readable by others", async () => {
    const dir = await freshDir();
    await writeFile(fileOf(dir), recordLine(event(0)), { mode: 0o644 });
    await writeFile(lockOf(dir), String(deadPid()), { mode: 0o644 });
    await writeFile(`${fileOf(dir)}.tmp`, "", { mode: 0o666 });
    await chmod(fileOf(dir), 0o644);
    await chmod(`${fileOf(dir)}.tmp`, 0o666);
    await chmod(dir, 0o755);
    const spool = await openTracked(dir);
    expect((await spool.read(0, 10)).events).toEqual([event(0)]);
    expect(await modeOf(dir)).toBe(0o700);
    expect(await modeOf(fileOf(dir))).toBe(0o600);
    expect(await modeOf(lockOf(dir))).toBe(0o600);
  });
});

describe("file spool: the lock", () => {
  it("holds the opener's pid while open and is released on close", async () => {
    const dir = await freshDir();
    const spool = await openFileSpool(dir);
    expect((await readFile(lockOf(dir), "utf8")).trim()).toBe(String(process.pid));
    await spool.close();
    expect(existsSync(lockOf(dir))).toBe(false);
    await (await openFileSpool(dir)).close();
  });

  it("refuses a spool held by a live process, naming it, and leaves its lock alone", async () => {
    const dir = await freshDir();
    await writeFile(lockOf(dir), ` ${process.ppid}\n`);
    const refused = await openFileSpool(dir).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(SpoolLockedError);
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error).name).toBe("SpoolLockedError");
    expect((refused as Error).message).toContain(`process ${process.ppid}`);
    expect((refused as Error).message).toContain(lockOf(dir));
    expect(await readFile(lockOf(dir), "utf8")).toBe(` ${process.ppid}\n`);

    // Held by this very process (a second relay in it): refused too.
    const other = await freshDir();
    const holder = await openTracked(other);
    await expect(openFileSpool(other)).rejects.toThrow(`process ${process.pid}`);
    expect(holder.durableEnd).toBe(0);
  });

  it("takes over a lock left by a process that is gone, or one that holds no pid", async () => {
    for (const content of [String(deadPid()), "", "   \n", "garbage", "0", "-1", "12.5"]) {
      const dir = await freshDir();
      await writeFile(lockOf(dir), content);
      await writeFile(fileOf(dir), recordLine(event(0)));
      const spool = await openFileSpool(dir).catch((error: unknown) => {
        throw new Error(`a lock holding ${JSON.stringify(content)} was not taken over: ${error}`);
      });
      expect(await readFile(lockOf(dir), "utf8"), content).toBe(String(process.pid));
      expect((await spool.read(0, 10)).events).toEqual([event(0)]);
      await spool.close();
      expect(existsSync(lockOf(dir))).toBe(false);
    }
  });

  it("close succeeds when the lock file was removed meanwhile", async () => {
    const dir = await freshDir();
    const spool = await openFileSpool(dir);
    await rm(lockOf(dir));
    await within(spool.close(), 1000, "close");
    expect(existsSync(lockOf(dir))).toBe(false);
  });

  it("a spool that cannot be compacted is not opened, and its lock is released", async () => {
    const dir = await freshDir();
    // The spool file is a directory: reading it fails.
    await mkdir(fileOf(dir));
    await expect(openFileSpool(dir)).rejects.toMatchObject({ code: "EISDIR" });
    expect(existsSync(lockOf(dir))).toBe(false);
    await rm(fileOf(dir), { recursive: true });
    await (await openFileSpool(dir)).close();
  });

  it("a lock path that cannot be read or written reports the file system's error", async () => {
    const dir = await freshDir();
    await mkdir(lockOf(dir));
    await expect(openFileSpool(dir)).rejects.toMatchObject({ code: "EISDIR" });
  });
});
