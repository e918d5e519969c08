import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/** Where the bench puts its processes: the server on one core, load generator and store on another. */
export interface Placement {
  readonly pinned: boolean;
  readonly serverCore: number | null;
  readonly loadCore: number | null;
  /** Why processes are or are not pinned, for the report. */
  readonly note: string;
}

function hasTaskset(): boolean {
  try {
    execFileSync("taskset", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Chooses core 0 for the server and core 1 for everything else when `taskset` exists and there
 * are at least two cores; otherwise nothing is pinned and the report says so.
 */
export function choosePlacement(): Placement {
  const cores = availableParallelism();
  if (cores < 2) return { pinned: false, serverCore: null, loadCore: null, note: `only ${cores} core` };
  if (!hasTaskset()) {
    return { pinned: false, serverCore: null, loadCore: null, note: "taskset not found (util-linux)" };
  }
  return {
    pinned: true,
    serverCore: 0,
    loadCore: 1,
    note: "server on core 0; load generator, store and sinks on core 1",
  };
}

/** The command line that runs `argv` on `core` (unchanged when `core` is null). */
export function onCore(core: number | null, argv: readonly string[]): [string, string[]] {
  const [command, ...args] = argv;
  if (!command) throw new Error("empty command");
  return core === null ? [command, args] : ["taskset", ["-c", String(core), command, ...args]];
}

/** Moves this process, all of its threads included, onto `core`. */
export function pinSelf(core: number | null): void {
  if (core === null) return;
  execFileSync("taskset", ["-a", "-p", "-c", String(core), String(process.pid)], { stdio: "ignore" });
}

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/**
 * CPU time (user + system, all threads) a process has used so far, in ms, from /proc/<pid>/stat;
 * null where /proc is unavailable. Resolution is one clock tick (10 ms on Linux), fine over seconds.
 */
export function processCpuMs(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // The command name may contain spaces and parentheses; the fields after the last ")" do not.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return ((utime + stime) * 1000) / clockTicks();
}

/** CPU time every core of the machine has been busy so far (all processes), in ms, from /proc/stat. */
export function machineCpuMs(): number | null {
  let stat: string;
  try {
    stat = readFileSync("/proc/stat", "utf8");
  } catch {
    return null;
  }
  // cpu  user nice system idle iowait irq softirq steal ...
  const fields = (stat.split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
  const busy = [0, 1, 2, 5, 6, 7].reduce((total, i) => total + (fields[i] ?? 0), 0);
  return Number.isFinite(busy) ? (busy * 1000) / clockTicks() : null;
}

/**
 * Measures the CPU several processes use between creation and `stop()`, and how much CPU the rest
 * of the machine used meanwhile ("foreign": anything not measured, such as someone else's build),
 * which tells whether a figure was taken on a quiet machine.
 */
export function cpuMeter(pids: Readonly<Record<string, number>>) {
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processCpuMs(pid)]));
  const machineBefore = machineCpuMs();
  const startedAt = performance.now();
  return {
    /** CPU ms used by each process (null where unreadable), plus `foreign` and the wall time. */
    stop(): Record<string, number | null> {
      const used: Record<string, number | null> = Object.fromEntries(
        Object.entries(pids).map(([name, pid]) => {
          const start = before[name];
          const end = processCpuMs(pid);
          return [name, start === null || start === undefined || end === null ? null : end - start];
        }),
      );
      const machineAfter = machineCpuMs();
      const ours = Object.values(used).reduce<number>((total, ms) => total + (ms ?? 0), 0);
      used.foreign =
        machineBefore === null || machineAfter === null
          ? null
          : Math.max(0, machineAfter - machineBefore - ours);
      used.wall = Math.round(performance.now() - startedAt);
      return used;
    },
  };
}
