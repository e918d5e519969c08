import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createNodeDynamoHandler } from "../src/runtime/node-dynamo-handler.js";
import { createDynamoClient } from "../src/store/dynamo-client.js";

// The client every runtime's store uses, seen from a loopback server standing in for DynamoDB's
// endpoint: where calls go, how they are signed and labelled, and how often a failing call is sent.

interface Seen {
  readonly headers: IncomingHttpHeaders;
  readonly target: string | undefined;
}

let server: Server;
let endpoint: string;
const seen: Seen[] = [];
// What the next calls are answered: DynamoDB's JSON, or a 500 (retryable by the SDK's rules).
let failing = false;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      seen.push({ headers: req.headers, target: req.headers["x-amz-target"] as string | undefined });
      res.setHeader("content-type", "application/x-amz-json-1.0");
      if (failing) {
        res.statusCode = 500;
        res.end(
          JSON.stringify({ __type: "com.amazonaws.dynamodb.v20120810#InternalServerError", message: "x" }),
        );
      } else {
        res.end(JSON.stringify({ TableNames: ["steps"] }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
afterEach(() => {
  seen.length = 0;
  failing = false;
  vi.unstubAllEnvs();
});

const KEYS = { AWS_ACCESS_KEY_ID: "AKIDSTEPWATCH", AWS_SECRET_ACCESS_KEY: "not-a-real-secret" };

const clientFor = (config: Parameters<typeof createDynamoClient>[0]) =>
  createDynamoClient(config, createNodeDynamoHandler());

describe("createDynamoClient", () => {
  it("sends each call to DYNAMODB_ENDPOINT, signed with the configured keys for AWS_REGION", async () => {
    const client = clientFor({ ...KEYS, AWS_REGION: "eu-west-3", DYNAMODB_ENDPOINT: endpoint });
    const answer = await client.send(new ListTablesCommand({}));
    expect(answer.TableNames).toEqual(["steps"]);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.target).toBe("DynamoDB_20120810.ListTables");
    expect(seen[0]?.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDSTEPWATCH\/\d{8}\/eu-west-3\/dynamodb\/aws4_request,/,
    );
    // No session token configured: none is sent.
    expect(seen[0]?.headers["x-amz-security-token"]).toBeUndefined();
    client.destroy();
  });

  it("sends AWS_SESSION_TOKEN with temporary keys", async () => {
    const client = clientFor({
      ...KEYS,
      AWS_SESSION_TOKEN: "session-token-value",
      AWS_REGION: "us-east-1",
      DYNAMODB_ENDPOINT: endpoint,
    });
    await client.send(new ListTablesCommand({}));
    expect(seen[0]?.headers["x-amz-security-token"]).toBe("session-token-value");
    client.destroy();
  });

  it("labels every call with stepwatch's constant User-Agent", async () => {
    const client = clientFor({ ...KEYS, AWS_REGION: "us-east-1", DYNAMODB_ENDPOINT: endpoint });
    await client.send(new ListTablesCommand({}));
    await client.send(new ListTablesCommand({}));
    expect(seen.map((s) => s.headers["user-agent"])).toEqual([
      "stepwatch aws-sdk-js/3 api/dynamodb",
      "stepwatch aws-sdk-js/3 api/dynamodb",
    ]);
    client.destroy();
  });

  it("sends a failing call twice at most: a sender is answered 503 promptly rather than after minutes of retries", async () => {
    const client = clientFor({ ...KEYS, AWS_REGION: "us-east-1", DYNAMODB_ENDPOINT: endpoint });
    failing = true;
    await expect(client.send(new ListTablesCommand({}))).rejects.toMatchObject({
      name: "InternalServerError",
    });
    expect(seen).toHaveLength(2);
    client.destroy();
  });

  it("uses the configured keys only as a pair: a key id without its secret is not used", async () => {
    const client = clientFor({
      AWS_ACCESS_KEY_ID: "AKIDALONE",
      AWS_REGION: "us-east-1",
      DYNAMODB_ENDPOINT: endpoint,
    });
    // Without a pair the SDK falls back to its own chain; these tests' environment gives it keys.
    vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDFROMENV");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "env-secret");
    await client.send(new ListTablesCommand({}));
    expect(seen[0]?.headers.authorization).toContain("Credential=AKIDFROMENV/");
    client.destroy();
  });

  it("leaves out the middleware that does nothing here, and keeps Lambda's recursion detection in Lambda", () => {
    const outside = clientFor({ ...KEYS, AWS_REGION: "us-east-1", DYNAMODB_ENDPOINT: endpoint });
    const names = outside.middlewareStack.identify().join("\n");
    expect(names).not.toMatch(/loggerMiddleware/);
    expect(names).not.toMatch(/getUserAgentMiddleware/);
    expect(names).not.toMatch(/recursionDetectionMiddleware/);
    expect(names).toMatch(/stepwatchUserAgent/);
    expect(outside.config.cacheMiddleware).toBe(true);
    outside.destroy();

    // A Worker's `process` (nodejs_compat) may come without an environment: outside Lambda.
    vi.stubGlobal("process", { version: process.version, versions: process.versions });
    try {
      const bare = clientFor({ ...KEYS, AWS_REGION: "us-east-1", DYNAMODB_ENDPOINT: endpoint });
      expect(bare.middlewareStack.identify().join("\n")).not.toMatch(/recursionDetectionMiddleware/);
    } finally {
      vi.unstubAllGlobals();
    }

    vi.stubEnv("AWS_LAMBDA_FUNCTION_NAME", "stepwatch");
    const inLambda = clientFor({ ...KEYS, AWS_REGION: "us-east-1", DYNAMODB_ENDPOINT: endpoint });
    expect(inLambda.middlewareStack.identify().join("\n")).toMatch(/recursionDetectionMiddleware/);
    inLambda.destroy();
  });
});
