import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { buildDist } from "../../scripts/build.js";
import { runToolCheck, TOOL_CHECK_NAMES, toolCheckResultFile } from "./tool-checks.js";

/** Set (to "1") by `npm test` (scripts/test.ts) for a run of the whole suite. */
export const EARLY_TOOL_CHECKS_ENV = "STEPWATCH_EARLY_TOOL_CHECKS";

/**
 * vitest globalSetup. In a whole-suite run it builds dist/ once (the process tests run it; building
 * it inside a test file raced `cdk synth`, which bundles into dist/lambda too), then starts
 * `cdk synth`, `wrangler types` and `redocly lint` in child processes at once, so they run beside
 * the test files instead of each holding a test worker for its whole run (up to 90 s on a loaded
 * machine). Each result is written to a file the test that asserts on it waits for
 * (test/support/tool-check.ts). Otherwise (one file, Stryker) it does nothing and those tests run
 * the tool themselves.
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (process.env[EARLY_TOOL_CHECKS_ENV] !== "1") return undefined;
  await buildDist();
  project.provide("distBuilt", true);
  const dir = mkdtempSync(join(tmpdir(), "stepwatch-tool-checks-"));
  project.provide("toolChecksDir", dir);
  const abort = new AbortController();
  const runs = TOOL_CHECK_NAMES.map(async (name) => {
    const result = await runToolCheck(name, abort.signal);
    // Written whole, then renamed: a reader never sees half a file.
    const file = toolCheckResultFile(dir, name);
    writeFileSync(`${file}.tmp`, JSON.stringify(result));
    renameSync(`${file}.tmp`, file);
  });
  return async () => {
    // A run cut short (a failure, Ctrl-C) leaves no tool running behind it.
    abort.abort();
    await Promise.allSettled(runs);
    rmSync(dir, { recursive: true, force: true });
  };
}
