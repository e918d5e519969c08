import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { arch, cpus, platform, release, totalmem } from "node:os";
import { join } from "node:path";
import { ROOT } from "./child-process.js";
import type { Placement } from "./cpu.js";

const PACKAGES = [
  "@aws-sdk/client-dynamodb",
  "@smithy/core",
  "@smithy/node-http-handler",
  "hono",
  "@hono/node-server",
  "valibot",
  "dynalite",
  "autocannon",
  "tsx",
  "esbuild",
];

function installedVersion(name: string): string | null {
  try {
    const pkg = JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? null;
  } catch {
    return null;
  }
}

function commit(): string | null {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
  } catch {
    return null;
  }
}

// Whether tracked files differ from the commit (a result then describes uncommitted code).
function uncommittedChanges(): boolean | null {
  try {
    execFileSync("git", ["diff", "--quiet", "HEAD", "--"], { cwd: ROOT, stdio: "ignore" });
    return false;
  } catch (error) {
    return (error as { status?: number }).status === 1 ? true : null;
  }
}

/** Machine, runtime and package versions, recorded with every result. */
export function describeEnvironment(placement: Placement) {
  const cpu = cpus();
  return {
    date: new Date().toISOString(),
    commit: commit(),
    uncommitted_changes: uncommittedChanges(),
    node: process.version,
    v8: process.versions.v8,
    os: `${platform()} ${release()} ${arch()}`,
    cpu_model: cpu[0]?.model ?? "unknown",
    cpu_count: cpu.length,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    placement,
    packages: Object.fromEntries(PACKAGES.map((name) => [name, installedVersion(name)])),
  };
}
