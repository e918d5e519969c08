import { join, resolve } from "node:path";
import { type ServerType, serve } from "@hono/node-server";
import openApiDocument from "../../public/openapi.json" with { type: "json" };
import { parseConfig } from "../config/config-schema.js";
import { consoleRoutes } from "../http/routes/console-routes.js";
import { createLogger } from "../observability/logger.js";
import { createDynamoClient } from "../store/dynamo-client.js";
import { ensureTable } from "../store/ensure-table.js";
import { consoleFilesIn } from "./console-files.js";
import { createStepwatch, type Stepwatch } from "./create-stepwatch.js";
import { type EmbeddedDynamo, startEmbeddedDynamo } from "./embedded-dynamo.js";
import { applyLocalDefaults, type LocalDefaults } from "./local-defaults.js";
import { createNodeDynamoHandler } from "./node-dynamo-handler.js";
import { nodeHmacSha256 } from "./node-hmac.js";
import { createPromMetrics } from "./prom-metrics.js";

/** A running Node server. */
export interface NodeServer {
  readonly url: string;
  readonly stepwatch: Stepwatch;
  readonly local: LocalDefaults;
  /** The embedded store, when DYNAMODB_ENDPOINT was not set. */
  readonly embedded: EmbeddedDynamo | undefined;
  /** Stops accepting requests, lets in-flight requests and notifications finish, then stops the store. */
  close(): Promise<void>;
}

/**
 * Starts stepwatch as a Node HTTP server: local defaults, configuration, the embedded store when
 * no endpoint is configured, the table, the app, and the sweeper interval.
 * @throws {ConfigError} when the configuration is invalid.
 */
export async function startNodeServer(
  environment: Readonly<Record<string, string | undefined>>,
  dataDir = resolve(environment.STEPWATCH_DATA_DIR ?? ".data"),
): Promise<NodeServer> {
  const env = { ...environment };
  const local = applyLocalDefaults(env, dataDir);
  const config = parseConfig(env);
  const logger = createLogger(config.LOG_LEVEL);

  const embedded = config.DYNAMODB_ENDPOINT
    ? undefined
    : await startEmbeddedDynamo(join(dataDir, "dynamodb"));
  const client = createDynamoClient(
    embedded
      ? // dynalite ignores credentials, but the SDK insists on some and on a region.
        {
          AWS_REGION: "local",
          AWS_ACCESS_KEY_ID: "local",
          AWS_SECRET_ACCESS_KEY: "local",
          DYNAMODB_ENDPOINT: embedded.endpoint,
        }
      : config,
    createNodeDynamoHandler(),
  );
  try {
    await ensureTable(client, config.DYNAMODB_TABLE, { retentionDays: config.RETENTION_DAYS, logger });
  } catch (error) {
    await embedded?.close();
    throw error;
  }
  // A Node sweep may drain for as long as the interval between two sweeps.
  const stepwatch = await createStepwatch(config, client, logger, {
    hmac: nodeHmacSha256,
    openApiDocument,
    // Next to this module in the repository, wherever the process was started from.
    consoleRoutes: consoleRoutes(consoleFilesIn(new URL("../../public/console/", import.meta.url))),
    metrics: createPromMetrics(),
    sweepBudgetMs: config.SWEEP_INTERVAL_S * 1000,
  });

  const server = await new Promise<ServerType>((resolveServer, reject) => {
    const s = serve({ fetch: stepwatch.app.fetch, port: config.PORT, hostname: config.HOST }, () =>
      resolveServer(s),
    );
    s.once("error", reject);
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.PORT;
  const host = config.HOST.includes(":") ? `[${config.HOST}]` : config.HOST;
  const stopSweeper = stepwatch.startSweeper(config.SWEEP_INTERVAL_S * 1000);

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    stepwatch,
    local,
    embedded,
    close() {
      closing ??= (async () => {
        stopSweeper();
        await new Promise<void>((done) => {
          server.close(() => done());
          // Idle keep-alive sockets would hold close() open; in-flight requests still finish.
          if ("closeIdleConnections" in server) server.closeIdleConnections();
        });
        await stepwatch.close();
        client.destroy();
        await embedded?.close();
      })();
      return closing;
    },
  };
}
