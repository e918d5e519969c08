import { defineConfig, mergeConfig } from "vitest/config";
import base from "./vitest.config.js";

/**
 * The suite as Stryker runs it (see stryker.config.json). Stryker switches mutants on inside its own
 * vitest worker, so test files whose code under test runs in another process (a spawned Node server,
 * workerd, Chromium, the CDK synth, an esbuild bundle loaded from disk) can never kill a mutant: they
 * would only cost minutes on every dry run. `npm test` still runs all of them.
 */
export default mergeConfig(
  base,
  defineConfig({
    test: {
      exclude: [
        "**/node_modules/**",
        "test/node-process.test.ts", // spawns `node src/runtime/node-main.ts`
        "test/relay-e2e.test.ts", // spawns the relay and tap scripts
        "test/worker.test.ts", // the Worker bundle under workerd
        "test/console.browser.test.ts", // Chromium through playwright
        "test/infra.test.ts", // cdk synth of infra/
        "test/lambda.test.ts", // imports an esbuild bundle of src/runtime/lambda.ts
        // Counts sweeps within wall-clock intervals: instrumented code on a loaded machine misses them.
        "test/sweeper-lanes.test.ts",
      ],
    },
  }),
);
