import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

// `npm run build:worker [-- --startup]`: the Worker bundle exactly as `wrangler deploy` would upload
// it (wrangler's own build, from wrangler.toml: minified), its size against the budget, what
// dominates it, and with --startup the startup CPU profile from `wrangler check startup`.

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WRANGLER = join(ROOT, "node_modules/wrangler/bin/wrangler.js");

/** The budget for the gzipped Worker, everything in. */
export const GZIP_BUDGET_BYTES = 90 * 1024;

/** A built Worker bundle and its sizes. */
export interface WorkerBuild {
  readonly file: string;
  readonly rawBytes: number;
  /** gzip at the default level, as wrangler computes "Total Upload … gzip". */
  readonly gzipBytes: number;
  /** Bytes of the minified output per package (or per src/ folder), largest first. */
  readonly contributors: ReadonlyArray<{ readonly name: string; readonly bytes: number }>;
}

// Offline and quiet: no telemetry, no account, no Request.cf download.
function wranglerEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, WRANGLER_SEND_METRICS: "false" };
  env.CLOUDFLARE_CF_FETCH_ENABLED = "false";
  for (const name of ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY", "CLOUDFLARE_ACCOUNT_ID"])
    delete env[name];
  return env;
}

function wrangler(args: readonly string[]): string {
  const run = spawnSync(process.execPath, [WRANGLER, ...args], {
    cwd: ROOT,
    env: wranglerEnv(),
    encoding: "utf8",
    timeout: 120_000,
  });
  if (run.status !== 0) {
    throw new Error(
      `wrangler ${args.join(" ")} failed (${run.status ?? run.signal}):\n${run.stdout}${run.stderr}`,
    );
  }
  return run.stdout;
}

/** Builds the Worker with `wrangler deploy --dry-run` into `outDir` and measures it. */
export function buildWorker(outDir = join(ROOT, "dist/worker")): WorkerBuild {
  rmSync(outDir, { recursive: true, force: true });
  const metafile = join(outDir, "meta.json");
  wrangler(["deploy", "--dry-run", "--outdir", outDir, "--metafile", metafile]);
  const file = join(outDir, "worker.js");
  const code = readFileSync(file);
  return {
    file,
    rawBytes: code.byteLength,
    gzipBytes: gzipSync(code).byteLength,
    contributors: contributors(JSON.parse(readFileSync(metafile, "utf8")) as Metafile),
  };
}

interface Metafile {
  readonly outputs: Record<string, { readonly inputs: Record<string, { readonly bytesInOutput: number }> }>;
}

function contributors(meta: Metafile): WorkerBuild["contributors"] {
  const totals = new Map<string, number>();
  for (const [output, { inputs }] of Object.entries(meta.outputs)) {
    if (!output.endsWith(".js")) continue;
    for (const [input, { bytesInOutput }] of Object.entries(inputs)) {
      const name = packageOf(input);
      totals.set(name, (totals.get(name) ?? 0) + bytesInOutput);
    }
  }
  return [...totals].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes);
}

function packageOf(input: string): string {
  const inModules = input.lastIndexOf("node_modules/");
  if (inModules === -1) return input.split("/").slice(0, 2).join("/");
  const parts = input.slice(inModules + "node_modules/".length).split("/");
  return (parts[0]?.startsWith("@") ? parts.slice(0, 2) : parts.slice(0, 1)).join("/");
}

/** Startup as `wrangler check startup` profiles it locally (in workerd, on this machine's CPU). */
export interface StartupProfile {
  readonly profile: string;
  /** CPU time of the startup phase: samples that were not idle. */
  readonly cpuMs: number;
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<{
    readonly id: number;
    readonly callFrame: { readonly functionName: string };
  }>;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Profiles the Worker's startup phase with `wrangler check startup`. */
export function profileStartup(outDir = join(ROOT, "dist/worker")): StartupProfile {
  const profile = join(outDir, "startup.cpuprofile");
  wrangler(["check", "startup", "--outfile", profile]);
  const data = JSON.parse(readFileSync(profile, "utf8")) as CpuProfile;
  const idle = new Set(data.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id));
  // Each delta is the time up to its sample; the sample says what the isolate was doing then.
  let busyUs = 0;
  data.samples.forEach((node, index) => {
    if (!idle.has(node)) busyUs += data.timeDeltas[index] ?? 0;
  });
  return { profile, cpuMs: busyUs / 1000 };
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(2)} KiB`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const build = buildWorker();
  console.log(`${relative(ROOT, build.file)}: ${kib(build.rawBytes)} minified, ${kib(build.gzipBytes)} gzip`);
  console.log(`budget: ${kib(GZIP_BUDGET_BYTES)} gzip`);
  console.log("largest parts (minified bytes):");
  for (const { name, bytes } of build.contributors.slice(0, 10)) {
    console.log(`  ${String(bytes).padStart(8)}  ${name}`);
  }
  if (process.argv.includes("--startup")) {
    const startup = profileStartup();
    console.log(`startup: ${startup.cpuMs.toFixed(1)} ms CPU (profile: ${relative(ROOT, startup.profile)})`);
  }
  if (build.gzipBytes > GZIP_BUDGET_BYTES) {
    console.error(`over budget by ${kib(build.gzipBytes - GZIP_BUDGET_BYTES)} gzip`);
    process.exitCode = 1;
  }
}
