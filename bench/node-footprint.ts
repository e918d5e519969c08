// The Node server's footprint, as a newcomer runs it (`npm start`) and as production runs it
// (`node dist/node-main.js` after `npm run build`), side by side: resident memory of the whole
// process tree once idle, and the time from spawn to the first /readyz 200. Also the size of a
// production install (`npm ci --omit=dev`, in a scratch directory).
//
//   tsx bench/node-footprint.ts            one JSON object on stdout
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDist } from "../scripts/build.js";
import { ROOT } from "./child-process.js";

/** Footprint of one way of running the server. */
export interface Footprint {
  readonly ready_ms: number;
  /** Resident memory of the process and all its descendants (npm, sh, tsx, node…), MiB. */
  readonly idle_rss_mib: number;
  readonly processes: number;
}

/** What {@link measureNodeFootprint} reports. */
export interface NodeFootprint {
  readonly npm_start: Footprint;
  readonly node_dist: Footprint;
  /** Size on disk of node_modules after `npm ci --omit=dev`; null when it could not be installed. */
  readonly prod_install_mib: number | null;
}

const IDLE_MS = 3_000;

// The tree under `pid`, from /proc (Linux).
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // Gone meanwhile.
    }
  }
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...(children.get(all[i] ?? -1) ?? []));
  return all;
}

function rssKib(pid: number): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("VmRSS:"));
    return Number(line?.split(/\s+/)[1] ?? 0);
  } catch {
    return 0;
  }
}

async function measure(command: string, args: readonly string[]): Promise<Footprint> {
  const dataDir = mkdtempSync(join(tmpdir(), "stepwatch-footprint-"));
  const started = performance.now();
  const child: ChildProcess = spawn(command, args, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      PORT: "0",
      STEPWATCH_DATA_DIR: dataDir,
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  try {
    // The banner is human output, on stderr; the JSON log is on stdout. Both are read.
    let out = "";
    const read = (chunk: Buffer) => {
      out += chunk.toString();
    };
    child.stdout?.on("data", read);
    child.stderr?.on("data", read);
    let url: string | undefined;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
      url ??= /stepwatch is listening on (\S+)/.exec(out)?.[1];
      if (
        url &&
        (await fetch(`${url}/readyz`).then(
          (r) => r.ok,
          () => false,
        ))
      )
        break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const readyMs = performance.now() - started;
    if (!url) throw new Error(`${command} ${args.join(" ")} did not start:\n${out}`);
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    const tree = descendants(child.pid ?? 0);
    const kib = tree.reduce((sum, pid) => sum + rssKib(pid), 0);
    return {
      ready_ms: Math.round(readyMs),
      idle_rss_mib: Math.round(kib / 102.4) / 10,
      processes: tree.length,
    };
  } finally {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    process.kill(-(child.pid ?? 0), "SIGTERM");
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function duMib(dir: string): number {
  let bytes = 0;
  const walk = (path: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) bytes += statSync(full).size;
    }
  };
  walk(dir);
  return Math.round(bytes / 104_857.6) / 10;
}

// `npm ci --omit=dev` from this package.json and lockfile, in a scratch directory (it downloads,
// or takes from npm's cache).
function prodInstallMib(): number | null {
  const dir = mkdtempSync(join(tmpdir(), "stepwatch-prod-install-"));
  try {
    for (const file of ["package.json", "package-lock.json"]) copyFileSync(join(ROOT, file), join(dir, file));
    execFileSync("npm", ["ci", "--omit=dev", "--no-audit", "--no-fund", "--ignore-scripts"], {
      cwd: dir,
      stdio: "ignore",
      timeout: 300_000,
    });
    return duMib(join(dir, "node_modules"));
  } catch {
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Measures both ways of running the server, one after the other, and the production install. */
export async function measureNodeFootprint(): Promise<NodeFootprint> {
  await buildDist();
  const npmStart = await measure("npm", ["start", "--silent"]);
  const nodeDist = await measure(process.execPath, ["dist/node-main.js"]);
  return { npm_start: npmStart, node_dist: nodeDist, prod_install_mib: prodInstallMib() };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${JSON.stringify(await measureNodeFootprint())}\n`);
}
