import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import type { Config } from "../config/config-schema.js";

/**
 * Retries the SDK may make of one call. Small on purpose: a webhook sender waiting on us is better
 * served by a prompt 503 + Retry-After (it retries, nothing is lost) than by minutes of backoff.
 */
const MAX_ATTEMPTS = 2;

/**
 * One DynamoDB client per process or isolate, configured explicitly from the parsed config so it
 * needs no file or environment look-ups (Workers have neither). The runtime supplies the HTTP
 * handler: keep-alive sockets on Node, fetch on Workers.
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
  return new DynamoDBClient({
    ...(config.AWS_REGION ? { region: config.AWS_REGION } : {}),
    ...(config.DYNAMODB_ENDPOINT ? { endpoint: config.DYNAMODB_ENDPOINT } : {}),
    ...(credentials ? { credentials } : {}),
    maxAttempts: MAX_ATTEMPTS,
    requestHandler,
  });
}
