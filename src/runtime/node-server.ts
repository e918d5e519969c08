import { existsSync } from "node:fs";
import type { Server } from "node:http";
import { Server as NetServer } from "node:net";
import { isAbsolute, join, relative, resolve } from "node:path";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type ServerType, serve } from "@hono/node-server";
import openApiDocument from "../../public/openapi.json" with { type: "json" };
import { type Config, ConfigError, parseConfig } from "../config/config-schema.js";
import { consoleRoutes } from "../http/routes/console-routes.js";
import { createLogger, type Logger } from "../observability/logger.js";
import { createDynamoClient } from "../store/dynamo-client.js";
import { ensureTable, TableLayoutError } from "../store/ensure-table.js";
import { consoleFilesIn } from "./console-files.js";
import { createStepwatch, type Stepwatch } from "./create-stepwatch.js";
import { lockDataDir } from "./data-dir-lock.js";
import { type EmbeddedDynamo, startEmbeddedDynamo } from "./embedded-dynamo.js";
import { applyLocalDefaults, type LocalDefaults } from "./local-defaults.js";
import { manageConnections } from "./node-connections.js";
import { createNodeDynamoHandler } from "./node-dynamo-handler.js";
import { nodeHmacSha256 } from "./node-hmac.js";
import { makePrivateDir } from "./private-dir.js";
import { createPromMetrics } from "./prom-metrics.js";
import { StartupError } from "./startup-error.js";
import { loadStoreCredentials } from "./store-credentials.js";

/** A running Node server. */
export interface NodeServer {
  readonly url: string;
  readonly stepwatch: Stepwatch;
  readonly local: LocalDefaults;
  readonly logger: Logger;
  /** The embedded store, when DYNAMODB_ENDPOINT was not set. */
  readonly embedded: EmbeddedDynamo | undefined;
  /** The longest a {@link close} should take: the time-out of an attempt in flight, and some. */
  readonly drainTimeoutMs: number;
  /**
   * Stops accepting requests, answers the ones received, lets notification attempts in flight
   * finish, then stops the store, logging each step.
   */
  close(): Promise<void>;
}

// Beyond the longest notification attempt: recording it, and the store's own shutdown.
const DRAIN_MARGIN_MS = 5_000;

// A refused upload is read and discarded for up to 2 s and 1 MiB after its answer, so the answer
// reaches a client still sending (README, "Security"); at shutdown an idle connection is closed
// once nothing arrived on it for 500 ms.
const LINGER = { lingerMs: 2_000, lingerBytes: 1_048_576, quietMs: 500 } as const;

/**
 * Starts stepwatch as a Node HTTP server: local defaults, configuration, the embedded store when
 * no endpoint is configured (claiming its data directory), the table, the app, and the sweeper.
 * @throws {ConfigError} listing every invalid variable.
 * @throws {StartupError} naming the file or variable to fix otherwise (data directory in use,
 *   corrupt store, broken secrets file, unreachable store, missing region or credentials).
 */
export async function startNodeServer(
  environment: Readonly<Record<string, string | undefined>>,
  dataDir = resolve(environment.STEPWATCH_DATA_DIR ?? ".data"),
): Promise<NodeServer> {
  const env = { ...environment };
  const embedded = !env.DYNAMODB_ENDPOINT?.trim();
  const shownDir = shown(dataDir);
  let release: (() => void) | undefined;
  if (embedded) {
    // Private (0700): it holds the store, its credential and the generated secrets.
    makePrivateDir(dataDir);
    release = lockDataDir(dataDir, shownDir);
  }
  let store: EmbeddedDynamo | undefined;
  try {
    const local = applyLocalDefaults(env, dataDir, embedded);
    const config = await parseNodeConfig(env, embedded);
    const logger = createLogger(config.LOG_LEVEL);
    store = embedded
      ? await startEmbeddedDynamo(
          join(dataDir, "dynamodb"),
          0,
          join(shownDir, "dynamodb"),
          loadStoreCredentials(dataDir),
        )
      : undefined;
    const client = createDynamoClient(
      store
        ? // The embedded store's own key pair (it refuses any other); the region is any name.
          {
            AWS_REGION: "local",
            AWS_ACCESS_KEY_ID: store.credentials.accessKeyId,
            AWS_SECRET_ACCESS_KEY: store.credentials.secretAccessKey,
            DYNAMODB_ENDPOINT: store.endpoint,
          }
        : config,
      createNodeDynamoHandler(),
    );
    try {
      await ensureTable(client, config.DYNAMODB_TABLE, { retentionDays: config.RETENTION_DAYS, logger });
    } catch (error) {
      if (store || error instanceof TableLayoutError) throw error;
      throw unreachable(error, config.DYNAMODB_TABLE);
    }
    const server = await serveNode(config, client, logger, local, store, release);
    release = undefined;
    return server;
  } catch (error) {
    await store?.close();
    release?.();
    throw error;
  }
}

async function serveNode(
  config: Config,
  client: DynamoDBClient,
  logger: Logger,
  local: LocalDefaults,
  store: EmbeddedDynamo | undefined,
  release: (() => void) | undefined,
): Promise<NodeServer> {
  // A Node sweep may drain for as long as the interval between two sweeps.
  const stepwatch = await createStepwatch(config, client, logger, {
    hmac: nodeHmacSha256,
    openApiDocument,
    consoleRoutes: consoleRoutes(consoleFilesIn(consoleDirectory())),
    // Human lines on stderr: stdout carries only JSON log records (see banner.ts).
    writeLine: (line) => process.stderr.write(`${line}\n`),
    metrics: createPromMetrics(),
    sweepBudgetMs: config.SWEEP_INTERVAL_S * 1000,
  });

  const server = await new Promise<ServerType>((resolveServer, reject) => {
    const s = serve(
      {
        fetch: stepwatch.app.fetch,
        port: config.PORT,
        hostname: config.HOST,
        // Node's defaults (60 s for headers, 300 s for a whole request) let slow senders hold
        // connections and their buffered bodies for minutes (README, "Security").
        serverOptions: {
          headersTimeout: config.HEADERS_TIMEOUT_MS,
          requestTimeout: config.REQUEST_TIMEOUT_MS,
          keepAliveTimeout: config.KEEP_ALIVE_TIMEOUT_MS,
          // How often Node looks for requests past those time-outs (its default is every 30 s).
          connectionsCheckingInterval: Math.min(1_000, Math.ceil(config.HEADERS_TIMEOUT_MS / 4)),
        },
      },
      () => resolveServer(s),
    );
    s.once("error", reject);
  });
  const http = server as Server;
  http.maxConnections = config.MAX_CONNECTIONS;
  const connections = manageConnections(http, LINGER);
  let closing: Promise<void> | undefined;
  const address = http.address();
  const port = typeof address === "object" && address ? address.port : config.PORT;
  const host = config.HOST.includes(":") ? `[${config.HOST}]` : config.HOST;
  const stopSweeper = stepwatch.startSweeper(config.SWEEP_INTERVAL_S * 1000);

  return {
    url: `http://${host}:${port}`,
    stepwatch,
    local,
    logger,
    embedded: store,
    drainTimeoutMs: config.NOTIFY_TIMEOUT_MS + DRAIN_MARGIN_MS,
    close() {
      closing ??= (async () => {
        stopSweeper();
        logger.info("shutdown: no longer accepting connections", {
          requests_in_flight: connections.requestsInFlight,
        });
        await new Promise<void>((done) => {
          // Not Node's closeIdleConnections(), which drops a keep-alive connection whose next
          // request is still in the socket's buffer (the client gets ECONNRESET): every answer now
          // says `Connection: close`, and a connection is closed once nothing arrives on it.
          connections.drain();
          // net's close, not http's: http.Server#close() begins with closeIdleConnections().
          NetServer.prototype.close.call(http, () => done());
        });
        logger.info("shutdown: every request received was answered");
        const attempts = stepwatch.notifier.attemptsInFlight;
        await stepwatch.close();
        logger.info("shutdown: notification attempts finished", { attempts_waited_for: attempts });
        client.destroy();
        if (store) {
          await store.close();
          logger.info("shutdown: embedded store stopped");
        }
        release?.();
      })();
      return closing;
    },
  };
}

// Configuration, insisting outside the embedded store on what only the embedded store may invent,
// and on a region and credentials the SDK can find: every problem of these at once.
async function parseNodeConfig(env: Record<string, string | undefined>, embedded: boolean): Promise<Config> {
  const problems: string[] = [];
  let config: Config | undefined;
  try {
    config = parseConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems);
  }
  if (!embedded && !env.API_TOKEN?.trim()) {
    problems.push(
      "Invalid configuration: API_TOKEN is required with DYNAMODB_ENDPOINT set (tokens are generated " +
        "only for the embedded local store): set one or more tokens of 16 or more characters",
    );
  }
  if (!embedded) problems.push(...(await awsSettingProblems(env)));
  if (problems.length > 0 || !config) throw new ConfigError(problems);
  return config;
}

// The SDK's own words ("Region is missing", "Could not load credentials from any providers") name
// no variable; these do. Both are checked, so both are reported at once.
async function awsSettingProblems(env: Record<string, string | undefined>): Promise<string[]> {
  const client = createDynamoClient(
    {
      AWS_REGION: env.AWS_REGION?.trim() || undefined,
      AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID?.trim() || undefined,
      AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY?.trim() || undefined,
      AWS_SESSION_TOKEN: env.AWS_SESSION_TOKEN?.trim() || undefined,
      DYNAMODB_ENDPOINT: undefined,
    },
    createNodeDynamoHandler(),
  );
  const problems: string[] = [];
  try {
    await client.config.region();
  } catch {
    problems.push(
      "AWS_REGION is not set: set it to the region of the table (any name, e.g. local, for a " +
        "DynamoDB-compatible server such as dynalite)",
    );
  }
  try {
    await client.config.credentials();
  } catch {
    problems.push(
      "No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any values for a " +
        "local DynamoDB-compatible server), or AWS_PROFILE, or run with an IAM role",
    );
  }
  client.destroy();
  return problems.map((problem) => `Invalid configuration: ${problem}`);
}

// A store that does not answer, or refuses, names what to check rather than a bare SDK error.
function unreachable(error: unknown, table: string): StartupError {
  const e = error as { name?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  if (e.$metadata?.httpStatusCode !== undefined) {
    return new StartupError(
      `The store at DYNAMODB_ENDPOINT refused DescribeTable on ${table} (${e.name}): check ` +
        "AWS_REGION, the credentials and their permissions (README, Deploying)",
      { cause: error },
    );
  }
  return new StartupError(
    `Could not reach the store at DYNAMODB_ENDPOINT (${e.code ?? e.name ?? "no answer"}): check the ` +
      "URL and that the store is running and reachable from here",
    { cause: error },
  );
}

// The directory as the operator would write it: relative to the working directory when inside it.
function shown(dir: string): string {
  const rel = relative(process.cwd(), dir);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : dir;
}

// The console's files: public/console in the repository (src/runtime/ is two levels below), or
// console/ beside the bundle that `npm run build` writes (dist/node-main.js).
function consoleDirectory(): URL {
  const inRepository = new URL("../../public/console/", import.meta.url);
  return existsSync(inRepository) ? inRepository : new URL("./console/", import.meta.url);
}
