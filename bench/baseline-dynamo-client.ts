import { Agent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { NodeHttpHandler } from "@smithy/node-http-handler";

/**
 * The DynamoDB client exactly as stepwatch configured it before the hot-path work (one client,
 * keep-alive NodeHttpHandler, maxAttempts 2, SDK defaults otherwise), kept so every bench run
 * measures "before" and "after" side by side.
 */
export function createBaselineDynamoClient(endpoint: string): DynamoDBClient {
  const agentOptions = { keepAlive: true, maxSockets: 256 };
  return new DynamoDBClient({
    region: "us-east-1",
    endpoint,
    credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
    maxAttempts: 2,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 1_000,
      requestTimeout: 3_000,
      throwOnRequestTimeout: true,
      httpAgent: new Agent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
    }),
  });
}
