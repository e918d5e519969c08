import { readdirSync, readFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from "node:http";
import { createServer as createTcpServer, type Socket } from "node:net";
import { join } from "node:path";
import * as sdk from "@aws-sdk/client-dynamodb";
import { AwsClient } from "aws4fetch";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createNodeDynamoHandler } from "../src/runtime/node-dynamo-handler.js";
import * as lean from "../src/runtime/worker-dynamodb.js";
import { createDynamoClient } from "../src/store/dynamo-client.js";
import { createTableInput } from "../src/store/ensure-table.js";
import {
  isConditionalFailure,
  isStoreUnavailable,
  StoreUnavailableError,
  toStoreError,
} from "../src/store/store-errors.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { startTestStore, TEST_AWS, type TestStore } from "./support/test-store.js";

// The Worker's own DynamoDB client (wrangler.toml aliases the SDK to it in the bundle), run under
// Node against a real dynalite and loopback servers, and compared with the real SDK where they meet.

const TABLE = "lean-pairs";
let store: TestStore;
let client: lean.DynamoDBClient;

type LeanConfig = Partial<lean.WorkerDynamoConfig>;
const leanClient = (endpoint: string, extra: LeanConfig = {}, random = () => 0.25) =>
  new lean.DynamoDBClient(
    {
      region: "us-east-1",
      endpoint,
      credentials: {
        accessKeyId: TEST_AWS.AWS_ACCESS_KEY_ID,
        secretAccessKey: TEST_AWS.AWS_SECRET_ACCESS_KEY,
      },
      maxAttempts: 2,
      requestHandler: { requestTimeout: 2_000 },
      ...extra,
    },
    random,
  );
const sdkClient = (endpoint: string) =>
  createDynamoClient({ ...TEST_AWS, DYNAMODB_ENDPOINT: endpoint }, createNodeDynamoHandler());

const withoutMetadata = <T extends object>(output: T) => {
  const { $metadata: _, ...rest } = output as T & { $metadata?: unknown };
  return rest;
};

async function caught(call: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await call;
  } catch (error) {
    return error as Error & Record<string, unknown>;
  }
  throw new Error("expected the call to fail");
}

beforeAll(async () => {
  store = await startTestStore("lean-stepwatch");
  client = leanClient(store.endpoint);
  await client.send(
    new lean.CreateTableCommand({
      TableName: TABLE,
      BillingMode: "PAY_PER_REQUEST",
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
      AttributeDefinitions: [
        { AttributeName: "pk", AttributeType: "S" },
        { AttributeName: "sk", AttributeType: "N" },
      ],
    }),
  );
});

afterAll(async () => {
  await store?.close();
});

const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
const richItem = (pk: string, sk: number): Record<string, sdk.AttributeValue> => ({
  pk: { S: pk },
  sk: { N: String(sk) },
  body: { B: bytes },
  empty: { B: new Uint8Array([0]) },
  set: { BS: [new Uint8Array([1, 2, 3]), new Uint8Array([250, 251])] },
  nested: {
    M: {
      raw: { B: new Uint8Array([9, 8, 7]) },
      list: {
        L: [{ B: new Uint8Array([42]) }, { S: "text" }, { M: { deep: { B: new Uint8Array([0, 255]) } } }],
      },
    },
  },
  flag: { BOOL: true },
  none: { NULL: true },
  tags: { SS: ["a", "b"] },
  nums: { NS: ["1", "2.5"] },
});

// A TCP server that accepts connections and never answers: a store that hangs.
async function silentServer() {
  const sockets = new Set<Socket>();
  const silent = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  return { sockets, silent, port: (silent.address() as { port: number }).port };
}

describe("the Worker's DynamoDB client against dynalite", () => {
  it("exports every name src/ imports from the SDK as a value", () => {
    const imported = new Set<string>();
    const walk = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
        entry.isDirectory()
          ? walk(join(dir, entry.name))
          : entry.name.endsWith(".ts")
            ? [join(dir, entry.name)]
            : [],
      );
    for (const file of walk("src")) {
      for (const match of readFileSync(file, "utf8").matchAll(
        /import\s+(type\s+)?\{([^}]*)\}\s+from\s+"@aws-sdk\/client-dynamodb"/g,
      )) {
        if (match[1]) continue;
        for (const name of (match[2] ?? "").split(",").map((s) => s.trim())) {
          if (name && !name.startsWith("type ")) imported.add(name);
        }
      }
    }
    expect([...imported]).toEqual(expect.arrayContaining(["DynamoDBClient", "UpdateItemCommand"]));
    for (const name of imported)
      expect(typeof (lean as Record<string, unknown>)[name], name).toBe("function");
  });

  it("writes and reads binary attributes (B, BS, inside M and L) as the SDK does, both ways", async () => {
    const reference = sdkClient(store.endpoint);
    try {
      await client.send(new lean.PutItemCommand({ TableName: TABLE, Item: richItem("bin", 1) }));
      const key = { pk: { S: "bin" }, sk: { N: "1" } };
      const byLean = await client.send(
        new lean.GetItemCommand({ TableName: TABLE, Key: key, ConsistentRead: true }),
      );
      const bySdk = await reference.send(
        new sdk.GetItemCommand({ TableName: TABLE, Key: key, ConsistentRead: true }),
      );
      expect(byLean.Item).toEqual(richItem("bin", 1));
      expect(byLean.Item?.body?.B).toBeInstanceOf(Uint8Array);
      expect(withoutMetadata(byLean)).toEqual(withoutMetadata(bySdk));
      expect(byLean.$metadata).toMatchObject({ httpStatusCode: 200, attempts: 1, totalRetryDelay: 0 });

      // The SDK's write, read by this client.
      await reference.send(new sdk.PutItemCommand({ TableName: TABLE, Item: richItem("bin", 2) }));
      const written = await client.send(
        new lean.GetItemCommand({ TableName: TABLE, Key: { pk: { S: "bin" }, sk: { N: "2" } } }),
      );
      expect(written.Item).toEqual(richItem("bin", 2));
    } finally {
      reference.destroy();
    }
  });

  it("UpdateItem, Query (paged), BatchGetItem and DeleteItem answer what the SDK answers", async () => {
    const reference = sdkClient(store.endpoint);
    try {
      for (const sk of [1, 2, 3]) {
        await client.send(new lean.PutItemCommand({ TableName: TABLE, Item: richItem("q", sk) }));
      }
      const update = (pk: string) => ({
        TableName: TABLE,
        Key: { pk: { S: pk }, sk: { N: "2" } },
        UpdateExpression: "SET #b = :b ADD #n :one",
        ExpressionAttributeNames: { "#b": "blob", "#n": "count" },
        ExpressionAttributeValues: { ":b": { B: new Uint8Array([7, 7]) }, ":one": { N: "1" } },
        ReturnValues: "ALL_NEW" as const,
      });
      const updated = await client.send(new lean.UpdateItemCommand(update("q")));
      expect(updated.Attributes?.blob).toEqual({ B: new Uint8Array([7, 7]) });
      expect(updated.Attributes?.count).toEqual({ N: "1" });
      expect(updated.Attributes?.body).toEqual({ B: bytes });

      const query = {
        TableName: TABLE,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": { S: "q" } },
        Limit: 2,
      };
      const page = await client.send(new lean.QueryCommand(query));
      expect(withoutMetadata(page)).toEqual(
        withoutMetadata(await reference.send(new sdk.QueryCommand(query))),
      );
      expect(page.Items?.map((item) => item.sk?.N)).toEqual(["1", "2"]);
      expect(page.LastEvaluatedKey).toEqual({ pk: { S: "q" }, sk: { N: "2" } });
      const next = await client.send(
        new lean.QueryCommand({ ...query, ExclusiveStartKey: page.LastEvaluatedKey }),
      );
      expect(next.Items).toEqual([richItem("q", 3)]);
      expect(next.LastEvaluatedKey).toBeUndefined();

      const keys = [1, 3, 9].map((sk) => ({ pk: { S: "q" }, sk: { N: String(sk) } }));
      const batch = { RequestItems: { [TABLE]: { Keys: keys, ConsistentRead: true } } };
      const got = await client.send(new lean.BatchGetItemCommand(batch));
      const sorted = (items: Record<string, sdk.AttributeValue>[] | undefined) =>
        [...(items ?? [])].sort((a, b) => Number(a.sk?.N) - Number(b.sk?.N));
      expect(sorted(got.Responses?.[TABLE])).toEqual([richItem("q", 1), richItem("q", 3)]);
      expect(sorted(got.Responses?.[TABLE])).toEqual(
        sorted((await reference.send(new sdk.BatchGetItemCommand(batch))).Responses?.[TABLE]),
      );

      const removed = await client.send(
        new lean.DeleteItemCommand({ TableName: TABLE, Key: keys[0] ?? {}, ReturnValues: "ALL_OLD" }),
      );
      expect(removed.Attributes).toEqual(richItem("q", 1));
      const gone = await client.send(new lean.GetItemCommand({ TableName: TABLE, Key: keys[0] ?? {} }));
      expect(gone.Item).toBeUndefined();
    } finally {
      reference.destroy();
    }
  });

  it("throws DynamoDB's errors under their names, with status and fields, like the SDK", async () => {
    const reference = sdkClient(store.endpoint);
    try {
      const conditional = {
        TableName: TABLE,
        Item: { pk: { S: "cond" }, sk: { N: "1" } },
        ConditionExpression: "attribute_not_exists(pk)",
      };
      await client.send(new lean.PutItemCommand(conditional));
      const failed = await caught(client.send(new lean.PutItemCommand(conditional)));
      const sdkFailed = await caught(reference.send(new sdk.PutItemCommand(conditional)));
      expect(failed.name).toBe("ConditionalCheckFailedException");
      expect(isConditionalFailure(failed)).toBe(true);
      expect(isStoreUnavailable(failed)).toBe(false);
      expect(failed.message).toBe(sdkFailed.message);
      expect(failed.$fault).toBe("client");
      expect(failed.$metadata).toMatchObject({ httpStatusCode: 400, attempts: 1 });

      const missing = await caught(client.send(new lean.GetItemCommand({ TableName: "no-such", Key: {} })));
      expect(missing.name).toBe("ResourceNotFoundException");
      expect(missing.name).toBe(
        (await caught(reference.send(new sdk.GetItemCommand({ TableName: "no-such", Key: {} })))).name,
      );
      expect(isStoreUnavailable(missing)).toBe(true);
      expect(toStoreError(missing, "read")).toBeInstanceOf(StoreUnavailableError);

      const invalid = await caught(
        client.send(new lean.GetItemCommand({ TableName: TABLE, Key: { pk: { S: "x" } } })),
      );
      expect(invalid.name).toBe("ValidationException");
      expect(invalid.message.length).toBeGreaterThan(0);
      expect(isStoreUnavailable(invalid)).toBe(false);
    } finally {
      reference.destroy();
    }
  });

  it("creates stepwatch's table (ensure-table's input) and describes it", async () => {
    // ensureTable itself builds the SDK's command objects under Node; the Worker bundle gives it
    // these (test/worker.test.ts), so here the same input goes through this client's commands.
    const table = `lean-ensure-${Date.now()}`;
    const created = await client.send(new lean.CreateTableCommand(createTableInput(table)));
    expect(created.TableDescription?.TableName).toBe(table);
    let Table: sdk.TableDescription | undefined;
    for (let i = 0; i < 50 && Table?.TableStatus !== "ACTIVE"; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 20));
      ({ Table } = await client.send(new lean.DescribeTableCommand({ TableName: table })));
    }
    expect(Table?.TableStatus).toBe("ACTIVE");
    expect(Table?.KeySchema).toEqual([{ AttributeName: TABLE_SCHEMA.partitionKey, KeyType: "HASH" }]);
    expect((Table?.GlobalSecondaryIndexes ?? []).map((index) => index.IndexName).sort()).toEqual(
      Object.values(TABLE_SCHEMA.indexes)
        .map((index) => index.name)
        .sort(),
    );
  });
});

// A loopback DynamoDB endpoint that answers from a script: a canned answer, or "proxy" to dynalite.
interface Recorded {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}
type Answer = { status: number; body: string; headers?: Record<string, string> } | "proxy";
interface Scripted {
  readonly url: string;
  readonly requests: Recorded[];
  close(): Promise<void>;
}

const storeSigner = new AwsClient({
  accessKeyId: TEST_AWS.AWS_ACCESS_KEY_ID,
  secretAccessKey: TEST_AWS.AWS_SECRET_ACCESS_KEY,
  service: "dynamodb",
  region: "us-east-1",
});

async function startScripted(answers: Answer[], fallback: Answer = "proxy"): Promise<Scripted> {
  const requests: Recorded[] = [];
  const server: Server = createHttpServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    requests.push({ headers: req.headers, body });
    const answer = answers.shift() ?? fallback;
    if (answer === "proxy") {
      // Signed anew: the store checks the signature, which covers the host it was signed for.
      const upstream = await storeSigner.fetch(store.endpoint, {
        method: "POST",
        headers: {
          "content-type": String(req.headers["content-type"]),
          "x-amz-target": String(req.headers["x-amz-target"]),
        },
        body,
      });
      res.writeHead(upstream.status, { "content-type": "application/x-amz-json-1.0" });
      res.end(await upstream.text());
      return;
    }
    res.writeHead(answer.status, { "content-type": "application/x-amz-json-1.0", ...answer.headers });
    res.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const errorBody = (type: string, fields: Record<string, unknown> = {}) =>
  JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, message: `${type} here`, ...fields });

describe("the Worker's DynamoDB client on the wire", () => {
  it("POSTs the input as DynamoDB JSON, SigV4-signed, binary as base64", async () => {
    const server = await startScripted([{ status: 200, body: "{}" }]);
    try {
      const signed = leanClient(server.url, {
        region: "eu-west-1",
        credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret", sessionToken: "session-token" },
      });
      const input = {
        TableName: TABLE,
        Item: { pk: { S: "wire" }, b: { B: Buffer.from([1, 2, 3]) }, s: { BS: [new Uint8Array([255])] } },
      };
      const output = await signed.send(new lean.PutItemCommand(input));
      expect(output.$metadata).toMatchObject({ httpStatusCode: 200, attempts: 1 });
      const [request] = server.requests;
      expect(request?.headers["content-type"]).toBe("application/x-amz-json-1.0");
      expect(request?.headers["x-amz-target"]).toBe("DynamoDB_20120810.PutItem");
      expect(request?.headers["x-amz-security-token"]).toBe("session-token");
      expect(request?.headers.authorization).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/dynamodb\/aws4_request, SignedHeaders=[^,]*x-amz-target[^,]*, Signature=[0-9a-f]{64}$/,
      );
      expect(JSON.parse(request?.body ?? "")).toEqual({
        TableName: TABLE,
        Item: { pk: { S: "wire" }, b: { B: "AQID" }, s: { BS: ["/w=="] } },
      });
    } finally {
      await server.close();
    }
  });

  it("names each command's operation in X-Amz-Target", async () => {
    const server = await startScripted([], { status: 200, body: "{}" });
    try {
      const operations = {
        GetItem: new lean.GetItemCommand({ TableName: TABLE, Key: {} }),
        PutItem: new lean.PutItemCommand({ TableName: TABLE, Item: {} }),
        UpdateItem: new lean.UpdateItemCommand({ TableName: TABLE, Key: {} }),
        DeleteItem: new lean.DeleteItemCommand({ TableName: TABLE, Key: {} }),
        Query: new lean.QueryCommand({ TableName: TABLE }),
        BatchGetItem: new lean.BatchGetItemCommand({ RequestItems: {} }),
        DescribeTable: new lean.DescribeTableCommand({ TableName: TABLE }),
        CreateTable: new lean.CreateTableCommand(createTableInput(TABLE)),
        UpdateTimeToLive: new lean.UpdateTimeToLiveCommand({
          TableName: TABLE,
          TimeToLiveSpecification: { AttributeName: "ttl", Enabled: true },
        }),
      };
      const scripted = leanClient(server.url);
      for (const command of Object.values(operations))
        await scripted.send(command as lean.Command<object, object>);
      expect(server.requests.map((r) => r.headers["x-amz-target"])).toEqual(
        Object.keys(operations).map((operation) => `DynamoDB_20120810.${operation}`),
      );
    } finally {
      await server.close();
    }
  });

  it("calls DynamoDB in the configured region when no endpoint is set", async () => {
    const urls: string[] = [];
    // Recorded and refused before anything leaves the machine.
    vi.stubGlobal("fetch", async (request: Request) => {
      urls.push(request.url);
      throw new TypeError("fetch failed");
    });
    try {
      const regional = new lean.DynamoDBClient({
        region: "ap-southeast-2",
        credentials: { accessKeyId: "a", secretAccessKey: "b" },
        maxAttempts: 1,
      });
      await caught(regional.send(new lean.DescribeTableCommand({ TableName: "t" })));
      expect(urls).toEqual(["https://dynamodb.ap-southeast-2.amazonaws.com/"]);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it("copies the error answer's fields, Item decoded, as the SDK does (ReturnValuesOnConditionCheckFailure)", async () => {
    const body = errorBody("ConditionalCheckFailedException", {
      Item: {
        pk: { S: "x" },
        status: { S: "completed" },
        raw: { B: "AQL/" },
        m: { M: { b: { B: "AA==" } } },
      },
    });
    const server = await startScripted([
      { status: 400, body },
      { status: 400, body },
    ]);
    const reference = sdkClient(server.url);
    try {
      const input = {
        TableName: TABLE,
        Key: { pk: { S: "x" } },
        UpdateExpression: "SET a = :a",
        ExpressionAttributeValues: { ":a": { S: "1" } },
        ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const,
      };
      const failed = await caught(leanClient(server.url).send(new lean.UpdateItemCommand(input)));
      const sdkFailed = await caught(reference.send(new sdk.UpdateItemCommand(input)));
      const expected = {
        pk: { S: "x" },
        status: { S: "completed" },
        raw: { B: new Uint8Array([1, 2, 255]) },
        m: { M: { b: { B: new Uint8Array([0]) } } },
      };
      expect(failed.name).toBe("ConditionalCheckFailedException");
      expect(failed.message).toBe("ConditionalCheckFailedException here");
      expect(failed.Item).toEqual(expected);
      expect(failed.__type).toBeUndefined();
      expect(sdkFailed.name).toBe(failed.name);
      expect(sdkFailed.message).toBe(failed.message);
      expect(sdkFailed.Item).toEqual(failed.Item);
      expect(server.requests).toHaveLength(2);
    } finally {
      reference.destroy();
      await server.close();
    }
  });

  it("reads the error code from X-Amzn-ErrorType and a `Message` key, like dynalite and the SDK", async () => {
    const server = await startScripted([
      {
        status: 400,
        body: JSON.stringify({ Message: "capital M" }),
        headers: { "x-amzn-errortype": "ValidationException:http://internal.amazon.com/coral/" },
      },
    ]);
    try {
      const failed = await caught(
        leanClient(server.url).send(new lean.GetItemCommand({ TableName: TABLE, Key: {} })),
      );
      expect(failed.name).toBe("ValidationException");
      expect(failed.message).toBe("capital M");
      expect(server.requests).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it("retries a 500 with backoff and answers the next attempt's result", async () => {
    await client.send(new lean.PutItemCommand({ TableName: TABLE, Item: richItem("retry", 1) }));
    const server = await startScripted([{ status: 500, body: errorBody("InternalServerError") }]);
    try {
      const output = await leanClient(server.url).send(
        new lean.GetItemCommand({ TableName: TABLE, Key: { pk: { S: "retry" }, sk: { N: "1" } } }),
      );
      expect(output.Item).toEqual(richItem("retry", 1));
      expect(server.requests).toHaveLength(2);
      // Full jitter over 100 ms · 2^attempt: 0.25 × 200.
      expect(output.$metadata).toMatchObject({ httpStatusCode: 200, attempts: 2, totalRetryDelay: 50 });
    } finally {
      await server.close();
    }
  });

  it("gives up after maxAttempts (3 by default) on 5xx, and the store counts as unavailable", async () => {
    const server = await startScripted([], { status: 503, body: "<html>unavailable</html>" });
    try {
      const unbounded = new lean.DynamoDBClient(
        {
          region: "us-east-1",
          endpoint: server.url,
          credentials: { accessKeyId: "a", secretAccessKey: "b" },
        },
        () => 0.25,
      );
      const failed = await caught(unbounded.send(new lean.DescribeTableCommand({ TableName: TABLE })));
      expect(server.requests).toHaveLength(3);
      expect(failed.name).toBe("503");
      expect(failed.$fault).toBe("server");
      expect(failed.$metadata).toMatchObject({ httpStatusCode: 503, attempts: 3, totalRetryDelay: 50 + 100 });
      expect(isStoreUnavailable(failed)).toBe(true);
    } finally {
      await server.close();
    }
  });

  it("retries throttling (a 400) on the longer base, 429 too, and never other 4xx", async () => {
    const server = await startScripted([
      { status: 400, body: errorBody("ProvisionedThroughputExceededException") },
      { status: 429, body: "" },
      "proxy",
      { status: 400, body: "{}" },
      { status: 400, body: errorBody("ValidationException") },
    ]);
    try {
      const retrying = leanClient(server.url, { maxAttempts: 3 });
      const output = await retrying.send(new lean.DescribeTableCommand({ TableName: TABLE }));
      expect(output.Table?.TableName).toBe(TABLE);
      // 0.25 × 500 · 2, then 0.25 × 100 · 4.
      expect(output.$metadata).toMatchObject({ attempts: 3, totalRetryDelay: 250 + 100 });
      expect(server.requests).toHaveLength(3);

      const bare = await caught(retrying.send(new lean.DescribeTableCommand({ TableName: TABLE })));
      expect(bare.name).toBe("400");
      expect(server.requests).toHaveLength(4);
      const invalid = await caught(retrying.send(new lean.DescribeTableCommand({ TableName: TABLE })));
      expect(invalid.name).toBe("ValidationException");
      expect(invalid.$metadata).toMatchObject({ httpStatusCode: 400, attempts: 1 });
      expect(server.requests).toHaveLength(5);
    } finally {
      await server.close();
    }
  });

  it("a store that accepts but never answers: TimeoutError per attempt, classified unavailable", async () => {
    const { sockets, silent, port } = await silentServer();
    try {
      const hanging = leanClient(
        `http://127.0.0.1:${port}`,
        { requestHandler: { requestTimeout: 300 } },
        () => 0,
      );
      const started = Date.now();
      const failed = await caught(hanging.send(new lean.GetItemCommand({ TableName: TABLE, Key: {} })));
      const elapsed = Date.now() - started;
      expect(failed.name).toBe("TimeoutError");
      expect(failed).toBeInstanceOf(lean.TimeoutError);
      expect(failed.message).toBe("DynamoDB GetItem did not answer within 300 ms");
      // The abort that ended the attempt, for whoever looks further.
      expect(failed.cause).toMatchObject({ name: "TimeoutError" });
      expect(elapsed).toBeGreaterThanOrEqual(550);
      expect(elapsed).toBeLessThan(2_000);
      expect(sockets.size).toBe(2);
      expect(isStoreUnavailable(failed)).toBe(true);
      expect(toStoreError(failed, "read")).toBeInstanceOf(StoreUnavailableError);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("a refused connection is classified unavailable", async () => {
    const closed = createTcpServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as { port: number };
    await new Promise((resolve) => closed.close(resolve));
    const failed = await caught(
      leanClient(`http://127.0.0.1:${port}`, {}, () => 0).send(
        new lean.GetItemCommand({ TableName: TABLE, Key: {} }),
      ),
    );
    expect(failed).not.toBeInstanceOf(lean.DynamoServiceError);
    expect(isStoreUnavailable(failed)).toBe(true);
  });

  it("stops at once when the caller aborts, without retrying", async () => {
    const { sockets, silent, port } = await silentServer();
    try {
      const hanging = leanClient(`http://127.0.0.1:${port}`, { maxAttempts: 3 }, () => 0);
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 200);
      const failed = await caught(
        hanging.send(new lean.GetItemCommand({ TableName: TABLE, Key: {} }), {
          abortSignal: controller.signal,
        }),
      );
      clearTimeout(timer);
      expect(failed.name).toBe("AbortError");
      expect(failed).not.toBeInstanceOf(lean.TimeoutError);
      expect(sockets.size).toBe(1);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe("the Worker's DynamoDB client's answers, as the SDK gives them", () => {
  const once = (url: string) => leanClient(url, { maxAttempts: 1 });
  const get = new lean.GetItemCommand({ TableName: TABLE, Key: {} });

  it("a DynamoServiceError is a server fault from 500 up, a client fault below, with the SDK's $metadata", () => {
    const server = new lean.DynamoServiceError("InternalServerError", "inside", 500);
    expect(server).toBeInstanceOf(Error);
    expect(server).toMatchObject({ name: "InternalServerError", message: "inside", $fault: "server" });
    expect(server.$metadata).toEqual({ httpStatusCode: 500, attempts: 1, totalRetryDelay: 0 });
    expect(new lean.DynamoServiceError("ThrottlingException", "slow", 499).$fault).toBe("client");
  });

  it("carries the answer's request id in $metadata, of an output and of an error", async () => {
    const server = await startScripted([
      { status: 200, body: "{}", headers: { "x-amzn-requestid": "REQ-OK" } },
      { status: 400, body: errorBody("ValidationException"), headers: { "x-amzn-requestid": "REQ-BAD" } },
      { status: 200, body: "{}" },
    ]);
    try {
      const client = once(server.url);
      expect((await client.send(get)).$metadata).toMatchObject({ httpStatusCode: 200, requestId: "REQ-OK" });
      expect((await caught(client.send(get))).$metadata).toMatchObject({ requestId: "REQ-BAD" });
      expect((await client.send(get)).$metadata).not.toHaveProperty("requestId");
    } finally {
      await server.close();
    }
  });

  it("only a 2xx answer is an output: a 300 with a JSON object is an error", async () => {
    const server = await startScripted([{ status: 300, body: "{}" }]);
    try {
      const failed = await caught(once(server.url).send(get));
      expect(failed).toBeInstanceOf(lean.DynamoServiceError);
      expect(failed).toMatchObject({ name: "300", $fault: "client" });
    } finally {
      await server.close();
    }
  });

  it("an error's message: its message field; else its code for a JSON object; else the body's first 200 characters; else its code", async () => {
    const long = `<html>${"x".repeat(300)}</html>`;
    const bodies = [
      "{}",
      JSON.stringify({ __type: "com.amazonaws.dynamodb.v20120810#ValidationException" }),
      "5",
      '["a"]',
      "null",
      '"text"',
      long,
      "",
    ];
    const server = await startScripted(bodies.map((body) => ({ status: 400, body })));
    try {
      const client = once(server.url);
      const failures = [];
      for (const _ of bodies) failures.push(await caught(client.send(get)));
      expect(failures.map(({ name, message }) => ({ name, message }))).toEqual([
        { name: "400", message: "400" },
        { name: "ValidationException", message: "ValidationException" },
        { name: "400", message: "5" },
        { name: "400", message: '["a"]' },
        { name: "400", message: "null" },
        { name: "400", message: '"text"' },
        { name: "400", message: long.slice(0, 200) },
        { name: "400", message: "400" },
      ]);
    } finally {
      await server.close();
    }
  });

  it("a call with options but no abort signal is retried like one without", async () => {
    await client.send(new lean.PutItemCommand({ TableName: TABLE, Item: richItem("optioned", 1) }));
    const server = await startScripted([{ status: 500, body: errorBody("InternalServerError") }]);
    try {
      const output = await leanClient(server.url).send(
        new lean.GetItemCommand({ TableName: TABLE, Key: { pk: { S: "optioned" }, sk: { N: "1" } } }),
        {},
      );
      expect(output.Item).toEqual(richItem("optioned", 1));
      expect(output.$metadata).toMatchObject({ attempts: 2 });
    } finally {
      await server.close();
    }
  });

  it("retries a request that got no answer (a network failure), but not an abort that is not its own time-out, nor a throw that is no Error", async () => {
    const rejections: unknown[] = [];
    let calls = 0;
    vi.stubGlobal("fetch", async () => {
      calls++;
      throw rejections[0];
    });
    const attempts = async (rejection: unknown) => {
      rejections[0] = rejection;
      calls = 0;
      const failed = await caught(leanClient("http://127.0.0.1:9", { maxAttempts: 3 }, () => 0).send(get));
      expect(failed).toBe(rejection);
      return calls;
    };
    try {
      expect(await attempts(new TypeError("fetch failed"))).toBe(3);
      expect(await attempts(new Error("Network connection lost."))).toBe(3);
      expect(await attempts(new DOMException("The operation was aborted.", "AbortError"))).toBe(1);
      expect(await attempts("not an Error")).toBe(1);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it("decodes binary keys in LastEvaluatedKey and BatchGetItem's UnprocessedKeys", async () => {
    const server = await startScripted([
      { status: 200, body: JSON.stringify({ Items: [], LastEvaluatedKey: { pk: { B: "AQI=" } } }) },
      {
        status: 200,
        body: JSON.stringify({
          Responses: { [TABLE]: [] },
          UnprocessedKeys: { [TABLE]: { Keys: [{ pk: { B: "/wA=" } }] }, other: { ConsistentRead: true } },
        }),
      },
    ]);
    try {
      const client = once(server.url);
      const page = await client.send(new lean.QueryCommand({ TableName: TABLE }));
      expect(page.LastEvaluatedKey).toEqual({ pk: { B: new Uint8Array([1, 2]) } });
      const batch = await client.send(new lean.BatchGetItemCommand({ RequestItems: {} }));
      expect(batch.UnprocessedKeys?.[TABLE]?.Keys).toEqual([{ pk: { B: new Uint8Array([255, 0]) } }]);
      expect(batch.UnprocessedKeys?.other).toEqual({ ConsistentRead: true });
    } finally {
      await server.close();
    }
  });
});
