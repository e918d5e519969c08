import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { ROOT } from "./child-process.js";

/** The Worker bundle's size, or why there is none. */
export interface WorkerBundleSize {
  readonly gzipKib: number | null;
  readonly rawKib: number | null;
  readonly how: string;
}

const kib = (bytes: number) => Math.round((bytes / 1024) * 100) / 100;

/**
 * Measures the minified Worker bundle, gzip. Prefers the project's own build (`scripts/build-worker.ts`,
 * wrangler's bundle as `wrangler deploy` uploads it); without it, bundles `src/runtime/worker.ts`
 * with esbuild the way wrangler does (ESM, minified, workerd/browser conditions).
 */
export async function measureWorkerBundle(): Promise<WorkerBundleSize> {
  const entry = join(ROOT, "src/runtime/worker.ts");
  if (!existsSync(entry))
    return { gzipKib: null, rawKib: null, how: "no src/runtime/worker.ts in this checkout" };
  const outDir = mkdtempSync(join(tmpdir(), "stepwatch-bench-worker-"));
  try {
    const script = join(ROOT, "scripts/build-worker.ts");
    if (existsSync(script)) {
      try {
        const mod = (await import(script)) as {
          buildWorker?: (outDir: string) => { rawBytes: number; gzipBytes: number };
        };
        if (mod.buildWorker) {
          const built = mod.buildWorker(outDir);
          return {
            gzipKib: kib(built.gzipBytes),
            rawKib: kib(built.rawBytes),
            how: "scripts/build-worker.ts (wrangler --dry-run)",
          };
        }
      } catch (error) {
        process.stderr.write(`[bench] build-worker failed, falling back to esbuild: ${String(error)}\n`);
      }
    }
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      minify: true,
      format: "esm",
      platform: "browser",
      conditions: ["workerd", "worker", "browser"],
      external: ["node:*", "cloudflare:*"],
      target: "es2022",
      write: false,
      logLevel: "silent",
    });
    const code = result.outputFiles[0]?.contents ?? new Uint8Array();
    return { gzipKib: kib(gzipSync(code).byteLength), rawKib: kib(code.byteLength), how: "esbuild fallback" };
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
}
