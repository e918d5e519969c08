// `npm run build`: what production runs, compiled into dist/ so that plain `node` runs it with the
// production dependencies alone (no tsx, no TypeScript):
//
//   dist/node-main.js        the Node server (`node dist/node-main.js`)
//   dist/send-sample.js      the sample sender (`node dist/send-sample.js --url … --status completed`)
//   dist/relay.js            the relay CLI (`node dist/relay.js --file transcript.sse --url … --secret …`)
//   dist/tap.js              the tap proxy (`node dist/tap.js --upstream … --port … --url … --secret …`)
//   dist/console/            the operator console's files, served by the Node server
//   dist/lambda/index.mjs    the Lambda handlers, as infra/ deploys them (`index.handler`, `index.scheduled`)
//
// Everything is bundled except dynalite (the embedded store): it loads its actions by computed
// require() paths and opens LevelDB through a native addon, which a bundle cannot carry. So
// `dependencies` in package.json lists dynalite alone; the rest is bundled at build time.
import { cpSync, rmSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { build } from "esbuild";
import { bundleLambda, REPO_ROOT } from "../infra/lambda-bundle.js";

/** What {@link buildDist} wrote, with sizes. */
export interface DistFile {
  readonly file: string;
  readonly bytes: number;
}

/** Packages that stay in node_modules, loaded at run time: `dependencies` in package.json. */
export const EXTERNAL_PACKAGES = ["dynalite"] as const;

const ENTRIES = ["node-main", "send-sample", "relay", "tap"] as const;

/** Builds dist/ (or `outDir`) afresh; returns the files written. */
export async function buildDist(outDir = join(REPO_ROOT, "dist")): Promise<DistFile[]> {
  for (const name of [...ENTRIES.map((e) => `${e}.js`), "console", "lambda"]) {
    rmSync(join(outDir, name), { recursive: true, force: true });
  }
  await build({
    absWorkingDir: REPO_ROOT,
    entryPoints: {
      "node-main": "src/runtime/node-main.ts",
      "send-sample": "scripts/send-sample.ts",
      relay: "scripts/relay.ts",
      tap: "scripts/tap.ts",
    },
    outdir: outDir,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    // ES module builds of the SDK and Hono tree-shake; the CommonJS ones do not.
    mainFields: ["module", "main"],
    external: [...EXTERNAL_PACKAGES],
    // CommonJS packages in the bundle (prom-client) require() Node's built-ins; an ES module has
    // no require of its own.
    banner: {
      js: 'import { createRequire as __stepwatchRequire } from "node:module"; const require = __stepwatchRequire(import.meta.url);',
    },
    // Readable stack traces in production logs matter more than the bytes a minifier would save.
    minify: false,
    sourcemap: "linked",
    legalComments: "none",
    logLevel: "error",
  });
  cpSync(join(REPO_ROOT, "public/console"), join(outDir, "console"), { recursive: true });
  bundleLambda(join(outDir, "lambda"));
  return [...ENTRIES.map((e) => `${e}.js`), "lambda/index.mjs"].map((name) => ({
    file: join(outDir, name),
    bytes: statSync(join(outDir, name)).size,
  }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const files = await buildDist();
  for (const { file, bytes } of files) {
    console.log(`${relative(process.cwd(), file).padEnd(24)} ${(bytes / 1024).toFixed(0).padStart(6)} KiB`);
  }
}
