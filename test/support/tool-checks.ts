import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The command-line tools some tests run as a whole (each a Node process of its own). */
export type ToolCheckName = "cdk-synth" | "redocly-lint" | "wrangler-types";

/** Every tool check, in the order they are started early. */
export const TOOL_CHECK_NAMES: readonly ToolCheckName[] = ["cdk-synth", "wrangler-types", "redocly-lint"];

/** What one run of a tool left: its exit, its output, and the files it was asked to write. */
export interface ToolRun {
  readonly status: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Set when the process could not be started or was killed (time-out, shutdown). */
  readonly error: string | null;
  /** Each output file's text (by the check's own key), or null when the tool did not write it. */
  readonly files: Readonly<Record<string, string | null>>;
}

interface ToolCommand {
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Record<string, string>;
  readonly timeoutMs: number;
  /** Output files to read once it exits, by key. */
  readonly outputs: Readonly<Record<string, string>>;
  /** Removes what it wrote, once read. */
  cleanup(): void;
}

/** `npm run types:worker`'s arguments without its leading `wrangler`. */
export const TYPES_ARGS = (
  JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts["types:worker"] as string
)
  .split(" ")
  .slice(1);

/** The committed output of `npm run types:worker`. */
export const COMMITTED_WORKER_TYPES = "src/types/worker-configuration.d.ts";
// Beside the committed file, so the generated import path of the Worker module is the same. A
// dotfile: neither tsc nor Biome reads it, should they run while it exists (`npm test` runs them
// at the same time as the tests).
const FRESH_WORKER_TYPES = "src/types/.fresh-worker-configuration.d.ts";

// The commands exactly as the tests ran them inline before they were run early (see TESTING.md).
const COMMANDS: Record<ToolCheckName, () => ToolCommand> = {
  "cdk-synth": () => {
    const out = mkdtempSync(join(tmpdir(), "stepwatch-cdk-out-"));
    return {
      args: [join(ROOT, "node_modules/aws-cdk/bin/cdk"), "synth", "--quiet", "--output", out],
      cwd: join(ROOT, "infra"),
      timeoutMs: 90_000,
      // No credentials or region from this machine: synthesis must not need them.
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "/tmp",
        CDK_DISABLE_CLI_TELEMETRY: "true",
      },
      outputs: { template: join(out, "Stepwatch.template.json") },
      cleanup: () => rmSync(out, { recursive: true, force: true }),
    };
  },
  "redocly-lint": () => ({
    args: [
      join(ROOT, "node_modules/@redocly/cli/bin/cli.js"),
      "lint",
      join(ROOT, "public/openapi.json"),
      "--config",
      join(ROOT, "redocly.yaml"),
      "--format=json",
    ],
    cwd: ROOT,
    timeoutMs: 60_000,
    env: { ...inherited(), REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" },
    outputs: {},
    cleanup: () => undefined,
  }),
  "wrangler-types": () => ({
    args: [
      join(ROOT, "node_modules/wrangler/bin/wrangler.js"),
      ...TYPES_ARGS.map((arg) => (arg === COMMITTED_WORKER_TYPES ? FRESH_WORKER_TYPES : arg)),
    ],
    cwd: ROOT,
    timeoutMs: 60_000,
    env: { ...inherited(), WRANGLER_SEND_METRICS: "false", CLOUDFLARE_API_TOKEN: "" },
    outputs: { types: join(ROOT, FRESH_WORKER_TYPES) },
    cleanup: () => rmSync(join(ROOT, FRESH_WORKER_TYPES), { force: true }),
  }),
};

function inherited(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}

/** Runs one tool check to its end (or its time-out, or `signal`); returns what it printed and wrote. */
export function runToolCheck(name: ToolCheckName, signal?: AbortSignal): Promise<ToolRun> {
  const command = COMMANDS[name]();
  return new Promise<ToolRun>((resolve) => {
    let stdout = "";
    let stderr = "";
    let error: string | null = null;
    const child = spawn(process.execPath, command.args, {
      cwd: command.cwd,
      env: command.env,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: command.timeoutMs,
      ...(signal ? { signal } : {}),
    });
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", (err) => {
      error = String(err);
    });
    child.on("close", (status, killedBy) => {
      if (killedBy !== null) error ??= `killed by ${killedBy} (time-out ${command.timeoutMs} ms or shutdown)`;
      const files: Record<string, string | null> = {};
      for (const [key, path] of Object.entries(command.outputs))
        files[key] = existsSync(path) ? readFileSync(path, "utf8") : null;
      command.cleanup();
      resolve({ status, signal: killedBy, stdout, stderr, error, files });
    });
  });
}

/** The file where an early run (test/support/tool-checks-setup.ts) leaves `name`'s result. */
export const toolCheckResultFile = (dir: string, name: ToolCheckName) => join(dir, `${name}.json`);
