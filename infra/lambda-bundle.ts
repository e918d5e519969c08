import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildSync } from "esbuild";

/** The repository root (infra/ lives directly under it). */
export const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** File name of the bundled Lambda entry; handlers are `index.handler` and `index.scheduled`. */
export const LAMBDA_BUNDLE_FILE = "index.mjs";

/**
 * Bundles `src/runtime/lambda.ts` with everything it imports (the AWS SDK included, so the
 * deployed version is the one tested, not whichever the Lambda runtime ships) into
 * `outDir/index.mjs`, with the local esbuild: offline, in well under a second; the operator
 * console's files go to `outDir/console/`.
 * @returns `outDir`, ready for `lambda.Code.fromAsset`.
 */
export function bundleLambda(outDir: string): string {
  mkdirSync(outDir, { recursive: true });
  buildSync({
    absWorkingDir: REPO_ROOT,
    entryPoints: [join(REPO_ROOT, "src/runtime/lambda.ts")],
    outfile: join(outDir, LAMBDA_BUNDLE_FILE),
    bundle: true,
    platform: "node",
    target: "node22",
    format: "esm",
    // ES module builds of the SDK and Hono tree-shake; the CommonJS ones do not.
    mainFields: ["module", "main"],
    minify: true,
    legalComments: "none",
    logLevel: "error",
  });
  // The operator console, read by the handler from next to itself (src/runtime/lambda.ts).
  cpSync(join(REPO_ROOT, "public/console"), join(outDir, "console"), { recursive: true });
  return outDir;
}
