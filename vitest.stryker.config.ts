import { relative } from "node:path";
import type { RunnerTask } from "vitest";
import { defineConfig, mergeConfig } from "vitest/config";
import { BaseSequencer, type Reporter, type TestSpecification, type Vitest } from "vitest/node";
import base from "./vitest.config.js";

/**
 * Runs the files that failed last time first, then the quickest: Stryker stops a mutant's run at its
 * first failing test, so a mutant a quick test kills should not wait for a slow file first. (Vitest's
 * own order runs the slowest first, which is right for parallel workers but Stryker runs one.)
 */
class FailedThenQuickestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const { cache, config } = this.ctx;
    const stats = (file: TestSpecification) => {
      const key = `${file.project.name}:${relative(config.root, file.moduleId)}`;
      const results = cache.getFileTestResults(key);
      return {
        failed: results?.failed === true ? 0 : 1,
        // Never run: by size, after the ones known to be quick.
        duration: results?.duration ?? 1e6 + (cache.getFileStats(key)?.size ?? 0),
      };
    };
    return [...files]
      .map((file) => ({ file, ...stats(file) }))
      .sort((a, b) => a.failed - b.failed || a.duration - b.duration)
      .map(({ file }) => file);
  }
}

const testsOf = (tasks: readonly RunnerTask[]): RunnerTask[] =>
  tasks.flatMap((task) => (task.type === "suite" ? testsOf(task.tasks) : [task]));

/**
 * Gives the tests of a file whose top-level `beforeAll` failed that failure. Stryker's vitest runner
 * (9.6.1) reads only tests' own results, and vitest marks those tests skipped: a mutant that breaks
 * every file's set-up (`startTestStore` runs `createTableInput` and `createDynamoClient`) ran "zero
 * tests" and was recorded as survived (#5492's fix looks for a failed suite above a skipped test,
 * which misses a file's own hooks; see also stryker-js#6146).
 * 50 such false survivors in `src/store` on 2026-11-26, each failing every test when applied by hand.
 */
class SetupFailuresFailTheirTests implements Reporter {
  #vitest: Vitest | undefined;
  onInit(vitest: Vitest): void {
    this.#vitest = vitest;
  }
  // The files as Stryker reads them right after the run (vitest's state, not the reported copies).
  onTestRunEnd(): void {
    for (const file of this.#vitest?.state.getFiles() ?? []) {
      if (file.result?.state !== "fail") continue;
      for (const test of testsOf(file.tasks)) {
        // vitest marks them skipped (mode and state), which Stryker counts as not run at all.
        if (test.result === undefined || test.result.state === "skip") {
          test.mode = "run";
          test.result = { state: "fail", errors: file.result.errors ?? [] };
        }
      }
    }
  }
}

/**
 * The suite as Stryker runs it (see stryker.config.json). Stryker switches mutants on inside its own
 * vitest worker, so test files whose code under test runs in another process (a spawned Node server,
 * workerd, Chromium, the CDK synth, an esbuild bundle loaded from disk) can never kill a mutant: they
 * would only cost minutes on every dry run. `npm test` still runs all of them.
 */
// `STRYKER_TESTS=domain` (npm run mutation:domain): src/domain's own fast unit tests only. Chosen
// here rather than with Stryker's --testFiles, which (9.6.1, stryker-js#6144) activates static
// mutants after their module has loaded, so every static mutant (a Valibot schema) falsely survives.
const DOMAIN_TESTS = [
  "test/domain-rules.test.ts",
  "test/notification-payloads.test.ts",
  "test/sink-config.test.ts",
  "test/config.test.ts",
  "test/console-line.test.ts",
  "test/retry-policy.test.ts",
  "test/run-step-schema.test.ts",
  "test/signature.test.ts",
  "test/sink-health.test.ts",
  "test/ed25519-signatures.test.ts",
  "test/ed25519-weak-points.test.ts",
  "test/verification-work.test.ts",
  "test/subject-kinds.test.ts",
  "test/openai-webhook-event.test.ts",
  "test/openai-projection.test.ts",
  "test/fit-response-document.test.ts",
];

const config = mergeConfig(
  base,
  defineConfig({
    test: {
      // The remaining suite has a few loose timing bounds (e.g. a prompt delivery within 1 s); one
      // retry keeps a slow moment from failing the dry run. A mutant a test catches fails every try.
      retry: 1,
      // Each file in a fresh module graph, as the mutation figures in TESTING.md were measured
      // (`npm test` shares one per worker: vitest.config.ts).
      isolate: true,
      reporters: ["default", new SetupFailuresFailTheirTests()],
      sequence: { sequencer: FailedThenQuickestFirst },
      exclude: [
        "**/node_modules/**",
        "test/node-process.test.ts", // spawns `node src/runtime/node-main.ts`
        "test/node-connections.test.ts", // the same
        "test/relay-e2e.test.ts", // spawns the relay and tap scripts
        "test/worker.test.ts", // the Worker bundle under workerd
        "test/console.browser.test.ts", // Chromium through playwright
        "test/infra.test.ts", // cdk synth of infra/
        "test/lambda.test.ts", // imports an esbuild bundle of src/runtime/lambda.ts
        // Wall-clock bounds (sweeps per interval, a shutdown within 1 s): instrumented code on a
        // loaded machine misses them, and a dry run with a failed test stops Stryker.
        "test/sweeper-lanes.test.ts",
        "test/shutdown.test.ts",
        // Load and property tests: they run the same code as the functional tests with many inputs
        // (1,000 events, 800 fuzzed cases, shuffled histories), seconds each. Every mutant on the
        // ingest path is covered by them, so a surviving one would wait for all of them; the mutants
        // they could tell apart are the functional tests' job (a property test's random inputs would
        // not kill the same mutant twice anyway).
        "test/ingest-burst.test.ts",
        "test/fuzz.property.test.ts",
        "test/convergence.property.test.ts",
      ],
    },
  }),
);

// `domain`, or a comma-separated list of test files (to check one area quickly); all when unset.
// Set after the merge: mergeConfig concatenates arrays, so an `include` merged in would only add.
// A file named there is run even if excluded above: relay-e2e.test.ts runs the tap and the library
// in the test's own process (one CLI test spawns, and kills nothing), so the relay area names it.
const only = process.env.STRYKER_TESTS;
if (only) {
  const named = only === "domain" ? DOMAIN_TESTS : only.split(",").map((file) => file.trim());
  config.test.include = named;
  config.test.exclude = (config.test.exclude ?? []).filter((glob: string) => !named.includes(glob));
}

export default config;
