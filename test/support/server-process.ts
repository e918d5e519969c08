import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A stepwatch Node server running as a real child process, as `npm start` runs it. */
export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code once the process has ended. */
  exited(): Promise<number | null>;
  /** Resolves when stdout or stderr contains `text`, or rejects after `timeoutMs`. */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
}

/** The environment a child gets: only what it needs, never this process's own configuration. */
export function childEnv(extra: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", LOG_LEVEL: "info", ...extra };
}

/** Runs a TypeScript entry of this repository with tsx, as the npm scripts do. */
export function runTs(script: string, args: string[], env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/**
 * How the server is run: `tsx` (node --import tsx, the default), `npm` (`npm start`, as a newcomer
 * runs it), or `dist` (`node dist/node-main.js`, as production runs it; `npm run build` first).
 */
export type ServerCommand = "tsx" | "npm" | "dist";

/** Options of {@link startServerProcess}. */
export interface ServerProcessOptions {
  readonly command?: ServerCommand;
  /** Its own process group (as a service manager or a terminal starts it), to signal it as a whole. */
  readonly detached?: boolean;
  readonly timeoutMs?: number;
}

/** The dist build of the Node server, as `npm run build` writes it. */
export const DIST_MAIN = "dist/node-main.js";

/** Starts the Node server and waits for its banner (or its failure). */
export async function startServerProcess(
  env: Record<string, string>,
  options: ServerProcessOptions = {},
): Promise<ServerProcess> {
  const { command = "tsx", detached = false, timeoutMs = 30_000 } = options;
  const childEnvironment = childEnv({ PORT: "0", ...env });
  const [file, args] =
    command === "npm"
      ? ["npm", ["start", "--silent"]]
      : [
          process.execPath,
          command === "dist" ? [DIST_MAIN] : ["--import", "tsx", "src/runtime/node-main.ts"],
        ];
  const child = spawn(file, args, {
    cwd: ROOT,
    env: childEnvironment,
    stdio: ["ignore", "pipe", "pipe"],
    detached,
  });
  let out = "";
  let err = "";
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    err += chunk.toString();
  });
  const waitForOutput = async (text: string, limit = 15_000) => {
    const deadline = Date.now() + limit;
    while (!out.includes(text) && !err.includes(text)) {
      if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}): ${err}`);
      if (Date.now() > deadline) throw new Error(`no "${text}" in output:\n${out}\n${err}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const started = await Promise.race([
    waitForOutput("stepwatch is listening on", timeoutMs).then(() => true),
    exit.then(() => false),
  ]);
  // The banner is human output: on stderr, beside the JSON log records on stdout.
  const url = started ? (/stepwatch is listening on (\S+)/.exec(err)?.[1] ?? "") : "";
  return { child, url, stdout: () => out, stderr: () => err, exited: () => exit, waitForOutput };
}

/** Stops a child for good: SIGKILL if it has not ended within `graceMs` of SIGTERM. */
export async function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => {
    // A child started in its own group (npm start) takes its own children with it.
    try {
      process.kill(-(child.pid ?? 0), "SIGKILL");
    } catch {
      child.kill("SIGKILL");
    }
  }, graceMs);
  await done;
  clearTimeout(timer);
}
