import { existsSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { inject } from "vitest";
import { runToolCheck, type ToolCheckName, type ToolRun, toolCheckResultFile } from "./tool-checks.js";

/**
 * `name`'s run: the one `npm test` started before the test files (read from its result file once
 * written), or, when the tests run without it (`npx vitest run test/infra.test.ts`), a run now.
 */
export async function toolCheck(name: ToolCheckName, waitMs = 150_000): Promise<ToolRun> {
  const dir = inject("toolChecksDir");
  if (!dir) return runToolCheck(name);
  const file = toolCheckResultFile(dir, name);
  const deadline = Date.now() + waitMs;
  while (!existsSync(file)) {
    if (Date.now() > deadline)
      throw new Error(`no result of the early ${name} run in ${waitMs} ms (${file})`);
    await sleep(100);
  }
  return JSON.parse(readFileSync(file, "utf8")) as ToolRun;
}

declare module "vitest" {
  export interface ProvidedContext {
    /** Where the early tool checks write their results; "" when they were not started early. */
    toolChecksDir: string;
    /** Whether dist/ was built (`npm run build`) before the test files ran. */
    distBuilt: boolean;
  }
}
