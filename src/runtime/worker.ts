import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type {
  ExecutionContext,
  ExportedHandler,
  ScheduledController,
  Response as WorkerResponse,
} from "@cloudflare/workers-types/latest/index";
import { type Config, ConfigError, parseConfig } from "../config/config-schema.js";
import { createLogger } from "../observability/logger.js";
import { createStepwatch, type Stepwatch } from "./create-stepwatch.js";
import { startOnce, startupErrorMessage } from "./startup.js";
import type { WorkerDynamoConfig } from "./worker-dynamodb.js";

/**
 * The Worker's bindings: `Env` is generated from wrangler.toml and .dev.vars.example by
 * `npm run types:worker` (src/types/worker-configuration.d.ts), not written by hand.
 */
export type WorkerEnv = Env;

// A DynamoDB call that has not answered within this is reported as a 503, not left to hang the request.
const DYNAMO_REQUEST_TIMEOUT_MS = 3_000;
// Attempts per DynamoDB call, as on Node (src/store/dynamo-client.ts): a prompt 503 beats long backoff.
const DYNAMO_MAX_ATTEMPTS = 2;

// Workers Paid limits one invocation to 10,000 subrequests and 6 connections open at once; a cron
// invocation may run 15 minutes but the next one comes a minute later. A sweep drains for 50 s,
// makes at most 3,000 attempts (each one fetch plus one write, reads shared by a page), and keeps
// each sink's attempts within the connections there are. Before them it makes at most 250 OpenAI
// hydrations (each one fetch to OpenAI and two writes, plus its notifications: a fetch and a write
// or two per sink), so that both together stay under the cap with a few sinks; what is left waits
// for the next minute's sweep (a hydration a request started is never counted here).
const WORKER_SWEEP = {
  sweepBudgetMs: 50_000,
  maxAttemptsPerSweep: 3_000,
  maxSinkConcurrency: 6,
  maxHydrationsPerSweep: 250,
  maxHydrationConcurrency: 6,
};

// Settings the AWS SDK would otherwise look up in files or the environment, which Workers lack.
const REQUIRED_ON_WORKERS = ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] as const;

const isAsset = (path: string) =>
  path === "/openapi.json" || path === "/console" || path.startsWith("/console/");

type WorkerConfig = Config & { readonly [name in (typeof REQUIRED_ON_WORKERS)[number]]: string };

// Parses the bindings, insisting on what the SDK cannot find by itself here.
function parseWorkerConfig(env: WorkerEnv): WorkerConfig {
  // A copy, as a plain record: the settings are read by name, and any binding may be missing.
  const config = parseConfig({ ...env });
  for (const name of REQUIRED_ON_WORKERS) {
    if (config[name] === undefined) {
      throw new ConfigError(`Invalid configuration: ${name} is required on Workers (a secret or var)`);
    }
  }
  return config as WorkerConfig;
}

// One stepwatch per isolate: bindings do not change within an isolate (a new deployment or secret
// starts new isolates), so configuration is parsed and keys imported once, not per request.
const stepwatchFor = startOnce(async (env: WorkerEnv): Promise<Stepwatch> => {
  const config = parseWorkerConfig(env);
  // wrangler.toml aliases the SDK to src/runtime/worker-dynamodb.ts in the bundle: this config is
  // checked against both (the SDK reads it as well when tests import this file under Node).
  const clientConfig = {
    region: config.AWS_REGION,
    ...(config.DYNAMODB_ENDPOINT ? { endpoint: config.DYNAMODB_ENDPOINT } : {}),
    credentials: {
      accessKeyId: config.AWS_ACCESS_KEY_ID,
      secretAccessKey: config.AWS_SECRET_ACCESS_KEY,
      ...(config.AWS_SESSION_TOKEN ? { sessionToken: config.AWS_SESSION_TOKEN } : {}),
    },
    maxAttempts: DYNAMO_MAX_ATTEMPTS,
    requestHandler: { requestTimeout: DYNAMO_REQUEST_TIMEOUT_MS },
  } satisfies WorkerDynamoConfig;
  const client = new DynamoDBClient(clientConfig);
  return createStepwatch(config, client, createLogger(config.LOG_LEVEL), WORKER_SWEEP);
});

function startupFailure(error: unknown): Response {
  // The message names the variable, never a value; callers only learn the Worker is misconfigured.
  console.error(startupErrorMessage(error));
  return Response.json(
    { error: { code: "internal_error", message: "stepwatch is misconfigured; see the Worker's logs" } },
    { status: 500 },
  );
}

/**
 * The Cloudflare Worker: `fetch` serves the app (notifications and OpenAI hydrations after the
 * response run under `ctx.waitUntil`, which the app calls through Hono's execution context), and
 * the cron `scheduled` handler sweeps due hydrations and notification retries.
 */
export default {
  async fetch(request, env, ctx) {
    // Static files (public/: the OpenAPI document, the operator console) come from the assets
    // binding, not the bundle; its html_handling redirects /console to /console/, and public/_headers
    // gives the console's files their security headers.
    const assets = (env as Partial<WorkerEnv>).ASSETS as
      | { fetch(request: unknown): Promise<WorkerResponse> }
      | undefined;
    if (assets && isAsset(new URL(request.url).pathname)) return assets.fetch(request);
    let stepwatch: Stepwatch;
    try {
      stepwatch = await stepwatchFor(env);
    } catch (error) {
      return startupFailure(error) as unknown as WorkerResponse;
    }
    // The app calls ctx.waitUntil (Hono's executionCtx) for notification and hydration work after the response.
    const response = await stepwatch.app.fetch(request as unknown as Request, env, ctx);
    // Same objects at run time: Workers' types give Request/Response extras the DOM types lack.
    return response as unknown as WorkerResponse;
  },

  async scheduled(_controller: ScheduledController, env: WorkerEnv, _ctx: ExecutionContext) {
    const stepwatch = await stepwatchFor(env);
    // Awaited (the sweep includes its delivery attempts), so a failed sweep shows as a failed cron
    // run, with its reason in the log; the next run picks up whatever it left.
    try {
      await stepwatch.sweep();
    } catch (error) {
      console.error(JSON.stringify({ level: "error", msg: "sweep failed", error: String(error) }));
      throw error;
    }
  },
} satisfies ExportedHandler<WorkerEnv>;
