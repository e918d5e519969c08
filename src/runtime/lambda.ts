import { type APIGatewayProxyResult, handle, type LambdaContext, type LambdaEvent } from "hono/aws-lambda";
import openApiDocument from "../../public/openapi.json" with { type: "json" };
import { parseConfig } from "../config/config-schema.js";
import { consoleRoutes } from "../http/routes/console-routes.js";
import type { SweepReport } from "../notify/notifier.js";
import { backlogMetricLines } from "../observability/backlog-metrics.js";
import { createLogger, describeError } from "../observability/logger.js";
import { createDynamoClient } from "../store/dynamo-client.js";
import { consoleFilesIn } from "./console-files.js";
import { createStepwatch, type Stepwatch } from "./create-stepwatch.js";
import { withSecrets } from "./lambda-secrets.js";
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
  readonly tableName: string;
}

/** What the Lambda entry writes to and reads from, injectable for tests. */
export interface LambdaHandlerOptions {
  /** Where JSON log lines go: stdout, unwrapped (see `writeStdout`). */
  readonly writeLine?: (line: string) => void;
  /** For reading secrets through the Parameters and Secrets extension. */
  readonly fetch?: typeof fetch;
}

// Lambda's JSON log format wraps what goes through console.* into its own record, our JSON line
// becoming an escaped string in `message`. Lines written to stdout directly are passed on as they
// are: one JSON object per line, which CloudWatch Logs Insights reads field by field and from which
// CloudWatch extracts the Embedded Metric Format gauges.
const writeStdout = (line: string) => {
  process.stdout.write(`${line}\n`);
};

/**
 * Builds the Lambda handlers over `env` (process.env on Lambda, where the function's role supplies
 * AWS_REGION and session credentials). Configuration is parsed on the first invocation and kept
 * for the life of the execution environment.
 */
export function createLambdaHandlers(
  env: Readonly<Record<string, string | undefined>>,
  options: LambdaHandlerOptions = {},
): LambdaHandlers {
  const writeLine = options.writeLine ?? writeStdout;
  // One instance per entry: infra/ runs each in a function of its own, and the sweep function is
  // given no WEBHOOK_SECRET (it receives no webhook), which the HTTP entry must have.
  const build = async (receivesWebhooks: boolean): Promise<Instance> => {
    // Secrets (infra/ passes their ARNs, not their values) are read once per execution environment.
    const config = parseConfig(await withSecrets(env, options.fetch), { receivesWebhooks });
    const client = createDynamoClient(config, createNodeDynamoHandler());
    const logger = createLogger(config.LOG_LEVEL, writeLine);
    const stepwatch = await createStepwatch(config, client, logger, {
      writeLine,
      hmac: nodeHmacSha256,
      openApiDocument,
      // infra/ bundles public/console/ next to the bundled handler (lambda-bundle.ts).
      consoleRoutes: consoleRoutes(consoleFilesIn(new URL("./console/", import.meta.url))),
      // The schedule runs every minute, the sweeper function may run two (infra/): 50 s of draining
      // leaves room for the attempts in flight to end.
      sweepBudgetMs: 50_000,
    });
    return { stepwatch, serve: handle(stepwatch.app), tableName: config.DYNAMODB_TABLE };
  };
  const forHttp = startOnce(() => build(true));
  const forSweeps = startOnce(() => build(false));

  return {
    async handler(event, context) {
      let current: Instance;
      try {
        current = await forHttp(undefined);
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
      const result = await current.serve(withRequestId(event, context.awsRequestId), context);
      // Lambda freezes the environment once the handler returns, so the notification attempts the
      // app starts after answering (Workers' waitUntil) finish first; each is bounded by
      // NOTIFY_TIMEOUT_MS, and an interrupted one is taken over by the sweeper after its lease.
      await current.stepwatch.drain();
      return result;
    },
    async scheduled() {
      let current: Instance;
      try {
        current = await forSweeps(undefined);
      } catch (error) {
        throw new Error(startupErrorMessage(error));
      }
      const report = await current.stepwatch.sweep();
      // The backlog gauges infra/'s alarms watch (oldest pending age, dead deliveries): the Lambda
      // side has no /metrics to scrape, so each sweep logs them in Embedded Metric Format.
      try {
        const sinks = await current.stepwatch.operations.sinks();
        const nowMs = current.stepwatch.operations.nowMs();
        const samples = sinks.map(({ config, backlog }) => ({ name: config.name, ...backlog }));
        for (const line of backlogMetricLines(current.tableName, samples, nowMs)) writeLine(line);
      } catch (error) {
        // The sweep itself went through; a missing gauge shows as missing data on the alarm.
        writeLine(
          JSON.stringify({ level: "warn", msg: "backlog gauges failed", error: describeError(error) }),
        );
      }
      return report;
    },
  };
}

type HeaderedEvent = LambdaEvent & { headers?: Record<string, string | undefined> | null };

// Without an X-Request-Id from the caller, the request's id is Lambda's: the app's request line,
// the X-Request-Id answer header and Lambda's own START/END/REPORT lines then share one id.
function withRequestId(event: LambdaEvent, awsRequestId: string): LambdaEvent {
  const headers = (event as HeaderedEvent).headers;
  if (!headers || typeof headers !== "object" || !awsRequestId) return event;
  if (Object.keys(headers).some((name) => name.toLowerCase() === "x-request-id")) return event;
  return { ...event, headers: { ...headers, "x-request-id": awsRequestId } } as LambdaEvent;
}

const handlers = createLambdaHandlers(process.env);

/** Function URL / API Gateway handler (`index.handler`). */
export const handler = handlers.handler;

/** EventBridge schedule handler (`index.scheduled`): sweeps due notification retries. */
export const scheduled = handlers.scheduled;
