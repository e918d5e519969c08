import { type APIGatewayProxyResult, handle, type LambdaContext, type LambdaEvent } from "hono/aws-lambda";
import openApiDocument from "../../public/openapi.json" with { type: "json" };
import { parseConfig } from "../config/config-schema.js";
import { consoleRoutes } from "../http/routes/console-routes.js";
import type { SweepReport } from "../notify/notifier.js";
import { createLogger } from "../observability/logger.js";
import { createDynamoClient } from "../store/dynamo-client.js";
import { consoleFilesIn } from "./console-files.js";
import { createStepwatch, type Stepwatch } from "./create-stepwatch.js";
import { createNodeDynamoHandler } from "./node-dynamo-handler.js";
import { nodeHmacSha256 } from "./node-hmac.js";
import { startOnce, startupErrorMessage } from "./startup.js";

/** The Lambda entry points, sharing one stepwatch per execution environment. */
export interface LambdaHandlers {
  /** Function URL / API Gateway (HTTP API, payload v2; v1 and ALB events work too). */
  readonly handler: (event: LambdaEvent, context: LambdaContext) => Promise<APIGatewayProxyResult>;
  /** The EventBridge schedule: one sweep for due notification retries. */
  readonly scheduled: () => Promise<SweepReport>;
}

interface Instance {
  readonly stepwatch: Stepwatch;
  readonly serve: ReturnType<typeof handle>;
}

/**
 * Builds the Lambda handlers over `env` (process.env on Lambda, where the function's role supplies
 * AWS_REGION and session credentials). Configuration is parsed on the first invocation and kept
 * for the life of the execution environment.
 */
export function createLambdaHandlers(env: Readonly<Record<string, string | undefined>>): LambdaHandlers {
  const start = startOnce(async (): Promise<Instance> => {
    const config = parseConfig(env);
    const client = createDynamoClient(config, createNodeDynamoHandler());
    const stepwatch = await createStepwatch(config, client, createLogger(config.LOG_LEVEL), {
      hmac: nodeHmacSha256,
      openApiDocument,
      // infra/ bundles public/console/ next to the bundled handler (lambda-bundle.ts).
      consoleRoutes: consoleRoutes(consoleFilesIn(new URL("./console/", import.meta.url))),
      // The schedule runs every minute, the sweeper function may run two (infra/): 50 s of draining
      // leaves room for the attempts in flight to end.
      sweepBudgetMs: 50_000,
    });
    return { stepwatch, serve: handle(stepwatch.app) };
  });
  const get = () => start(undefined);

  return {
    async handler(event, context) {
      let current: Instance;
      try {
        current = await get();
      } catch (error) {
        console.error(startupErrorMessage(error));
        return {
          statusCode: 500,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            error: { code: "internal_error", message: "stepwatch is misconfigured; see the function's logs" },
          }),
          isBase64Encoded: false,
        };
      }
      const result = await current.serve(event, context);
      // Lambda freezes the environment once the handler returns, so the notification attempts the
      // app starts after answering (Workers' waitUntil) finish first; each is bounded by
      // NOTIFY_TIMEOUT_MS, and an interrupted one is taken over by the sweeper after its lease.
      await current.stepwatch.drain();
      return result;
    },
    async scheduled() {
      let current: Instance;
      try {
        current = await get();
      } catch (error) {
        throw new Error(startupErrorMessage(error));
      }
      return current.stepwatch.sweep();
    },
  };
}

const handlers = createLambdaHandlers(process.env);

/** Function URL / API Gateway handler (`index.handler`). */
export const handler = handlers.handler;

/** EventBridge schedule handler (`index.scheduled`): sweeps due notification retries. */
export const scheduled = handlers.scheduled;
