import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import type { Config } from "../config/config-schema.js";

/**
 * Retries the SDK may make of one call. Small on purpose: a webhook sender waiting on us is better
 * served by a prompt 503 + Retry-After (it retries, nothing is lost) than by minutes of backoff.
 */
const MAX_ATTEMPTS = 2;

// Carried by every call so they stay recognisable in CloudTrail and to AWS support.
const USER_AGENT = "stepwatch aws-sdk-js/3 api/dynamodb";

/**
 * One DynamoDB client per process or isolate, configured explicitly from the parsed config so it
 * needs no file or environment look-ups (Workers have neither). The runtime supplies the HTTP
 * handler: keep-alive sockets on Node, fetch on Workers.
 *
 * Tuned for the hot path (one conditional UpdateItem per event; see BENCHMARKS.md): the middleware
 * stack is resolved once per command class rather than on every call, so middleware added to
 * `client.middlewareStack` must be added before the first call with that command. Middleware that
 * does nothing here is left out: the SDK logger (none is configured), Lambda trace-header
 * propagation outside Lambda, and the per-call User-Agent assembly, replaced by a constant one.
 */
export function createDynamoClient(
  config: Pick<
    Config,
    "AWS_REGION" | "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN" | "DYNAMODB_ENDPOINT"
  >,
  requestHandler: NonNullable<DynamoDBClientConfig["requestHandler"]>,
): DynamoDBClient {
  const credentials =
    config.AWS_ACCESS_KEY_ID && config.AWS_SECRET_ACCESS_KEY
      ? {
          accessKeyId: config.AWS_ACCESS_KEY_ID,
          secretAccessKey: config.AWS_SECRET_ACCESS_KEY,
          ...(config.AWS_SESSION_TOKEN ? { sessionToken: config.AWS_SESSION_TOKEN } : {}),
        }
      : undefined;
  const client = new DynamoDBClient({
    ...(config.AWS_REGION ? { region: config.AWS_REGION } : {}),
    ...(config.DYNAMODB_ENDPOINT ? { endpoint: config.DYNAMODB_ENDPOINT } : {}),
    ...(credentials ? { credentials } : {}),
    maxAttempts: MAX_ATTEMPTS,
    requestHandler,
    // Building the handler chain per call was ~12% of the SDK's CPU per call (see BENCHMARKS.md).
    cacheMiddleware: true,
  });
  trimMiddleware(client);
  return client;
}

function trimMiddleware(client: DynamoDBClient): void {
  const stack = client.middlewareStack;
  // Logs nothing without a configured logger, yet redacted the whole input of every failed call
  // (each stale or duplicate event is one) before discarding it, and is an async layer per call.
  stack.remove("loggerMiddleware");
  // It only ever acts inside Lambda (AWS_LAMBDA_FUNCTION_NAME set), and a process does not move there.
  if (!isLambda()) stack.remove("recursionDetectionMiddleware");
  // The SDK rebuilt and escaped its User-Agent on every call (~0.04 ms, the largest single saving);
  // a constant one keeps calls identifiable for a fraction of that.
  stack.remove("getUserAgentMiddleware");
  stack.add(
    (next) => (args) => {
      const request = args.request as { headers?: Record<string, string> } | undefined;
      // Stryker disable next-line ConditionalExpression,OptionalChaining: at the build step every call's request is an HTTP request with headers.
      if (request?.headers) request.headers["user-agent"] = USER_AGENT;
      return next(args);
    },
    // Stryker disable next-line StringLiteral: step and priority only order it among build middleware, and since the SDK's own is removed none other sets user-agent (with "" for either, every call still carries it).
    { step: "build", name: "stepwatchUserAgent", priority: "low" },
  );
}

function isLambda(): boolean {
  // Stryker disable next-line OptionalChaining: Node always has `process`; a runtime without it (Workers) is tested in workerd (test/worker.test.ts).
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return Boolean(env?.AWS_LAMBDA_FUNCTION_NAME);
}
