import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { onCore } from "./cpu.js";

/** The repository root, where every child runs. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Prefix of the line a bench child prints once it is ready, followed by JSON. */
export const READY = "BENCH_READY ";
/** Prefix of the line a bench child prints with its result, followed by JSON. */
export const RESULT = "BENCH_RESULT ";

/** A child process of the bench, with its output kept for diagnostics. */
export interface BenchChild {
  readonly child: ChildProcess;
  readonly pid: number;
  output(): string;
  /** Resolves with the first line of stdout that starts with `prefix`, minus the prefix. */
  line(prefix: string, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has ended. */
  stop(graceMs?: number): Promise<void>;
}

/** Spawns `node --import tsx <script>` (as the npm scripts run TypeScript), on `core` if given. */
export function spawnTs(
  script: string,
  args: readonly string[],
  options: { core: number | null; env?: Record<string, string>; nodeFlags?: readonly string[] },
): BenchChild {
  const [command, argv] = onCore(options.core, [
    process.execPath,
    ...(options.nodeFlags ?? []),
    "--import",
    "tsx",
    script,
    ...args,
  ]);
  const child = spawn(command, argv, {
    cwd: ROOT,
    // Only what the child needs: never this process's own configuration.
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...options.env },
    // stdin stays open while this process lives: children watch it to end with it (exitWithParent).
    stdio: ["pipe", "pipe", "pipe"],
  });
  if (child.pid === undefined) throw new Error(`could not start ${script}`);
  let out = "";
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    // Keep memory bounded for chatty children; the lines we wait for come early.
    if (out.length > 1_000_000) out = out.slice(-500_000);
    for (const wake of waiters) wake();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("exit", () => {
    for (const wake of waiters) wake();
  });
  return {
    child,
    pid: child.pid,
    output: () => out,
    line(prefix, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const at = out.indexOf(prefix);
          const end = at < 0 ? -1 : out.indexOf("\n", at);
          if (end >= 0) {
            done();
            resolve(out.slice(at + prefix.length, end).trim());
          } else if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(
              new Error(`${script} exited (${child.exitCode ?? child.signalCode}):\n${out.slice(-4000)}`),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${script}: no "${prefix.trim()}" within ${timeoutMs} ms:\n${out.slice(-4000)}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Parses the JSON a child printed after `prefix`. */
export async function readJsonLine<T>(child: BenchChild, prefix: string, timeoutMs?: number): Promise<T> {
  return JSON.parse(await child.line(prefix, timeoutMs)) as T;
}

/** Prints the line a parent waits for. */
export function announce(prefix: string, value: unknown): void {
  process.stdout.write(`${prefix}${JSON.stringify(value)}\n`);
}

/** Runs `stop` when the parent process is gone, even killed: it held this process's stdin open. */
export function exitWithParent(stop: () => void): void {
  process.stdin.once("end", stop);
  process.stdin.once("close", stop);
  process.stdin.resume();
}
