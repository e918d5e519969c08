import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file starts its own loopback servers; two workers match this machine's two cores.
    maxWorkers: 2,
    isolate: false,
    // Under `npm test`: builds dist/ once and starts `cdk synth`, `wrangler types` and `redocly lint`
    // beside the test files (otherwise it does nothing).
    globalSetup: ["test/support/early-tool-checks.ts"],
  },
});
