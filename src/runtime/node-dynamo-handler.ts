import { Agent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { NodeHttpHandler } from "@smithy/node-http-handler";

/**
 * The Node HTTP handler for the DynamoDB client: keep-alive sockets (a TLS handshake per call would
 * dominate the hot path) and short time-outs, so an unreachable store is reported in seconds.
 */
export function createNodeDynamoHandler(): NodeHttpHandler {
  const agentOptions = { keepAlive: true, maxSockets: 256 };
  return new NodeHttpHandler({
    connectionTimeout: 1_000,
    requestTimeout: 3_000,
    // Without this the handler only warns and the request waits forever on a store that never answers.
    throwOnRequestTimeout: true,
    httpAgent: new Agent(agentOptions),
    httpsAgent: new HttpsAgent(agentOptions),
  });
}
