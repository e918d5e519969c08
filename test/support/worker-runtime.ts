import { fileURLToPath } from "node:url";
import { unstable_startWorker } from "wrangler";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The Worker from wrangler.toml, running in workerd through wrangler's local runtime. */
export interface WorkerRuntime {
  readonly url: URL;
  /** Runs the `scheduled` (cron) handler once and resolves when it has finished. */
  scheduled(): Promise<{ status: number; outcome: string }>;
  dispose(): Promise<void>;
}

// Keeps wrangler offline and anonymous: no telemetry, no account, no download of Request.cf data.
const OFFLINE_ENV: Record<string, string | undefined> = {
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  CLOUDFLARE_API_TOKEN: undefined,
  CLOUDFLARE_API_KEY: undefined,
  CLOUDFLARE_ACCOUNT_ID: undefined,
};

/**
 * Starts the Worker exactly as `wrangler dev --local` would (wrangler bundles `main` from
 * wrangler.toml and runs it in workerd), on a free loopback port, with `vars` added to or
 * overriding the configured vars. Secrets go in `vars` too: locally both are plain bindings.
 */
export async function startWorkerRuntime(vars: Record<string, string>): Promise<WorkerRuntime> {
  const saved = Object.fromEntries(Object.keys(OFFLINE_ENV).map((name) => [name, process.env[name]]));
  const restoreEnv = () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  for (const [name, value] of Object.entries(OFFLINE_ENV)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  try {
    const worker = await unstable_startWorker({
      config: `${ROOT}wrangler.toml`,
      sendMetrics: false,
      bindings: Object.fromEntries(
        Object.entries(vars).map(([name, value]) => [name, { type: "plain_text", value }]),
      ),
      dev: {
        server: { hostname: "127.0.0.1", port: 0 },
        inspector: false,
        watch: false,
        persist: false,
        logLevel: (process.env.WORKER_LOG_LEVEL as "warn" | undefined) ?? "warn",
        testScheduled: true,
      },
    });
    try {
      await worker.ready;
      const url = await worker.url;
      return {
        url,
        // wrangler's test-scheduled middleware runs the handler inside the Worker (the Worker runs
        // before its static assets) and answers 200 once it has finished, 500 when it threw.
        scheduled: async () => {
          const response = await fetch(new URL("/__scheduled?cron=*+*+*+*+*", url));
          await response.body?.cancel();
          return { status: response.status, outcome: response.status === 200 ? "ok" : "exception" };
        },
        async dispose() {
          await worker.dispose();
          restoreEnv();
        },
      };
    } catch (error) {
      await worker.dispose();
      throw error;
    }
  } catch (error) {
    restoreEnv();
    throw error;
  }
}
