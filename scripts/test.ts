// `npm test`: the typecheck, Biome and every test file, at the same time, failing if any fails.
//
// Run one after the other they took the sum of their times (tsc alone ~20 s); the tests leave CPU
// idle while they wait on real time, which tsc fills. Each tool's output is
// printed whole once it ends (never interleaved line by line with another's); vitest's own
// output streams as it comes, and its closing summary stays the last lines printed (CI reads it).
// Extra arguments go to vitest (`npm test -- test/a.test.ts`); with none, the whole suite runs and
// the slow tool checks start early, outside the test workers (test/support/early-tool-checks.ts).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { EARLY_TOOL_CHECKS_ENV } from "../test/support/early-tool-checks.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const bin = (path: string) => fileURLToPath(new URL(`../node_modules/${path}`, import.meta.url));

interface Finished {
  readonly name: string;
  readonly code: number;
  readonly seconds: number;
}

/** Runs a Node tool to its end with its output captured, and prints it whole when it ends. */
function captured(name: string, args: string[]): Promise<Finished> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.on("error", (error) => {
      output += `${String(error)}\n`;
    });
    child.on("close", (code) => {
      const seconds = (performance.now() - started) / 1000;
      const status = code === 0 ? "ok" : `FAILED (exit ${code})`;
      process.stdout.write(`\n── ${name}: ${status} in ${seconds.toFixed(1)} s\n${output.trimEnd()}\n\n`);
      resolve({ name, code: code ?? 1, seconds });
    });
  });
}

const vitestArgs = process.argv.slice(2);
// Options alone (`npm test -- --reporter=verbose`) still run the whole suite; a file filter does not.
const wholeSuite = !vitestArgs.some((arg) => !arg.startsWith("-"));
const started = performance.now();

// At the tests' own priority: a lowered one (tried: nice 10) starved tsc and the tool checks on a
// machine shared with other work (tsc 260 s, `cdk synth` killed at its 90 s time-out).
const others = [
  captured("biome check .", [bin("@biomejs/biome/bin/biome"), "check", "."]),
  captured("tsc --noEmit", [bin("typescript/bin/tsc"), "-p", "tsconfig.json", "--noEmit"]),
];

// vitest's output streams through, except its closing summary (from " Test Files "), which is
// held until the other tools have printed theirs.
const vitest = spawn(process.execPath, [bin("vitest/vitest.mjs"), "run", ...vitestArgs], {
  cwd: ROOT,
  stdio: ["inherit", "pipe", "inherit"],
  env: { ...process.env, ...(wholeSuite ? { [EARLY_TOOL_CHECKS_ENV]: "1" } : {}) },
});
let pending = "";
let summary = "";
vitest.stdout.setEncoding("utf8").on("data", (chunk: string) => {
  if (summary !== "") {
    summary += chunk;
    return;
  }
  pending += chunk;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: vitest colours the summary's labels.
  const at = pending.search(/^(?:\x1b\[[0-9;]*m)*\s*Test Files\b/m);
  if (at >= 0) {
    process.stdout.write(pending.slice(0, at));
    summary = pending.slice(at);
    pending = "";
    return;
  }
  // Everything up to the last line break is complete and can go out now.
  const end = pending.lastIndexOf("\n") + 1;
  process.stdout.write(pending.slice(0, end));
  pending = pending.slice(end);
});
const vitestCode = new Promise<number>((resolve) => {
  vitest.on("error", (error) => {
    process.stderr.write(`vitest: ${String(error)}\n`);
    resolve(1);
  });
  vitest.on("close", (code) => resolve(code ?? 1));
});

const finished = await Promise.all(others);
const code = await vitestCode;
const failed = [
  ...finished.filter((f) => f.code !== 0).map((f) => f.name),
  ...(code === 0 ? [] : ["vitest"]),
];
process.stdout.write(
  `── npm test: ${failed.length === 0 ? "ok" : `FAILED: ${failed.join(", ")}`} in ${((performance.now() - started) / 1000).toFixed(1)} s ` +
    `(${finished.map((f) => `${f.name} ${f.seconds.toFixed(1)} s`).join(", ")}, vitest alongside)\n\n`,
);
process.stdout.write(pending + summary);
process.exitCode = failed.length === 0 ? 0 : 1;
