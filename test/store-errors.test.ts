import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { DescribeTableCommand, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeDynamoHandler } from "../src/runtime/node-dynamo-handler.js";
import * as lean from "../src/runtime/worker-dynamodb.js";
import { createDynamoClient } from "../src/store/dynamo-client.js";
import {
  guardStore,
  InvalidCursorError,
  ItemTooLargeError,
  isConditionalFailure,
  isStoreUnavailable,
  StoreUnavailableError,
  toStoreError,
} from "../src/store/store-errors.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";
import { startTestStore, TEST_AWS, type TestStore } from "./support/test-store.js";

// Real failures where they can be had on loopback: dynalite's refusals, the Node SDK and the
// Worker's fetch client against a port nobody listens on, a proxy answering 5xx; only workerd's
// message (no workerd here) and values that are no Error at all are made by hand.
let store: TestStore;
let proxy: SinkServer;
let closedPort: number;

beforeAll(async () => {
  [store, proxy] = await Promise.all([startTestStore(), startSinkServer()]);
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
});
afterAll(async () => {
  await Promise.all([store.close(), proxy.close()]);
});

async function failureOf(call: Promise<unknown>): Promise<Error> {
  try {
    await call;
  } catch (error) {
    return error as Error;
  }
  throw new Error("the call succeeded");
}

function workerClient(endpoint: string): lean.DynamoDBClient {
  return new lean.DynamoDBClient({
    region: TEST_AWS.AWS_REGION,
    endpoint,
    credentials: { accessKeyId: TEST_AWS.AWS_ACCESS_KEY_ID, secretAccessKey: TEST_AWS.AWS_SECRET_ACCESS_KEY },
    maxAttempts: 1,
  });
}

const describeTable = (TableName: string) => new lean.DescribeTableCommand({ TableName });

describe("isStoreUnavailable: try again later", () => {
  it("a missing table (dynalite's ResourceNotFoundException)", async () => {
    const error = await failureOf(
      store.client.send(new GetItemCommand({ TableName: "no-such-table", Key: { pk: { S: "x" } } })),
    );
    expect(error.name).toBe("ResourceNotFoundException");
    expect(isStoreUnavailable(error)).toBe(true);
  });

  it("a refused connection through the Node SDK (its error carries only the code)", async () => {
    const client = createDynamoClient(
      { ...TEST_AWS, DYNAMODB_ENDPOINT: `http://127.0.0.1:${closedPort}` },
      createNodeDynamoHandler(),
    );
    try {
      const error = await failureOf(client.send(new DescribeTableCommand({ TableName: "t" })));
      expect((error as Error & { code?: string }).code).toBe("ECONNREFUSED");
      expect(error.name).toBe("Error");
      expect(isStoreUnavailable(error)).toBe(true);
    } finally {
      client.destroy();
    }
  });

  it("the other network codes Node reports", () => {
    for (const code of ["ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH"]) {
      expect(isStoreUnavailable(Object.assign(new Error(`socket ${code}`), { code })), code).toBe(true);
    }
  });

  it("a refused connection through fetch (the Worker's client): a TypeError without a code", async () => {
    const error = await failureOf(workerClient(`http://127.0.0.1:${closedPort}`).send(describeTable("t")));
    expect(error).toBeInstanceOf(TypeError);
    expect(isStoreUnavailable(error)).toBe(true);
  });

  it("workerd's lost connection, a plain Error", () => {
    expect(isStoreUnavailable(new Error("Network connection lost."))).toBe(true);
  });

  it("any 5xx answer, whatever the error is called, from exactly 500 up", async () => {
    proxy.script(
      { status: 500, headers: { "content-type": "text/html" }, body: "<h1>Internal error</h1>" },
      { status: 503, body: "" },
    );
    const client = workerClient(proxy.url);
    for (const status of [500, 503]) {
      const error = await failureOf(client.send(describeTable("t")));
      expect(error.name).toBe(String(status));
      expect(isStoreUnavailable(error)).toBe(true);
    }
  });

  it("throttling, time-outs and aborts by their names", () => {
    for (const name of [
      "ProvisionedThroughputExceededException",
      "ThrottlingException",
      "RequestLimitExceeded",
      "LimitExceededException",
      "InternalServerError",
      "ServiceUnavailable",
      "TimeoutError",
      "RequestTimeout",
      "AbortError",
    ]) {
      expect(isStoreUnavailable(Object.assign(new Error("x"), { name })), name).toBe(true);
    }
  });
});

describe("isStoreUnavailable: a fault in the request, not the store", () => {
  it("a 4xx refusal with another name", async () => {
    proxy.script({
      status: 400,
      body: JSON.stringify({ __type: "com.amazon.coral.service#AccessDeniedException", message: "no" }),
    });
    const error = await failureOf(workerClient(proxy.url).send(describeTable("t")));
    expect(error.name).toBe("AccessDeniedException");
    expect(isStoreUnavailable(error)).toBe(false);
  });

  it("an answer of 499 is not a server fault", () => {
    const error = Object.assign(new Error("x"), { name: "Odd", $metadata: { httpStatusCode: 499 } });
    expect(isStoreUnavailable(error)).toBe(false);
  });

  it("a validation error from dynalite, even quoting a network message in a value", async () => {
    const error = await failureOf(
      store.client.send(new GetItemCommand({ TableName: store.tableName, Key: { nope: { S: "x" } } })),
    );
    expect(error.name).toBe("ValidationException");
    expect(isStoreUnavailable(error)).toBe(false);
    const quoting = Object.assign(new Error("Invalid value 'Network connection lost'"), {
      name: "ValidationException",
    });
    expect(isStoreUnavailable(quoting)).toBe(false);
  });

  it("a code that is no network failure", () => {
    expect(isStoreUnavailable(Object.assign(new Error("bad"), { code: "ERR_INVALID_ARG_TYPE" }))).toBe(false);
    expect(isStoreUnavailable(Object.assign(new Error("bad"), { code: 104 }))).toBe(false);
  });

  it("a TypeError that is a bug, and a fetch-ish message on another error", () => {
    expect(isStoreUnavailable(new TypeError("client.send is not a function"))).toBe(false);
    expect(isStoreUnavailable(new Error("fetch failed"))).toBe(false);
    expect(isStoreUnavailable(new RangeError("cannot connect the dots"))).toBe(false);
  });

  it("values that are no Error, even shaped like one", () => {
    for (const value of [
      null,
      undefined,
      "ECONNRESET",
      "Network connection lost.",
      { name: "ThrottlingException", message: "Network connection lost." },
      { code: "ECONNRESET", $metadata: { httpStatusCode: 503 } },
    ]) {
      expect(isStoreUnavailable(value), JSON.stringify(value)).toBe(false);
    }
  });
});

describe("isConditionalFailure", () => {
  it("is DynamoDB's refusal of a conditional write, and only that", async () => {
    const item = { pk: { S: "conditional" } };
    await store.client.send(new PutItemCommand({ TableName: store.tableName, Item: item }));
    const refused = await failureOf(
      store.client.send(
        new PutItemCommand({
          TableName: store.tableName,
          Item: item,
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      ),
    );
    expect(refused.name).toBe("ConditionalCheckFailedException");
    expect(isConditionalFailure(refused)).toBe(true);
    expect(isStoreUnavailable(refused)).toBe(false);
    expect(isConditionalFailure(new Error("ConditionalCheckFailedException"))).toBe(false);
    expect(isConditionalFailure({ name: "ConditionalCheckFailedException" })).toBe(false);
    expect(isConditionalFailure(null)).toBe(false);
  });
});

describe("toStoreError and guardStore", () => {
  it("turn a store that is unavailable into StoreUnavailableError naming the call, the original as cause", async () => {
    const missing = store.client.send(
      new GetItemCommand({ TableName: "no-such-table", Key: { pk: { S: "x" } } }),
    );
    const error = await failureOf(guardStore("getStep", missing));
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect(error.name).toBe("StoreUnavailableError");
    expect(error.message).toBe("DynamoDB getStep failed: ResourceNotFoundException");
    expect((error.cause as Error).name).toBe("ResourceNotFoundException");

    const thrown = new Error("Network connection lost.");
    const wrapped = toStoreError(thrown, "putStep") as Error;
    expect(wrapped.message).toBe("DynamoDB putStep failed: Error");
    expect(wrapped.cause).toBe(thrown);
  });

  it("pass every other error through as it is", async () => {
    const invalid = store.client.send(
      new GetItemCommand({ TableName: store.tableName, Key: { nope: { S: "x" } } }),
    );
    const original = await failureOf(invalid);
    expect(toStoreError(original, "getStep")).toBe(original);
    const bug = new TypeError("x is not a function");
    await expect(guardStore("getStep", Promise.reject(bug))).rejects.toBe(bug);
    await expect(guardStore("getStep", Promise.resolve(42))).resolves.toBe(42);
  });

  it("the store's own error classes say what they are", () => {
    const unavailable = new StoreUnavailableError("down", { cause: "why" });
    expect([unavailable.name, unavailable.message, unavailable.cause]).toEqual([
      "StoreUnavailableError",
      "down",
      "why",
    ]);
    const cursor = new InvalidCursorError("cursor is not one this API returned");
    expect([cursor.name, cursor.message]).toEqual([
      "InvalidCursorError",
      "cursor is not one this API returned",
    ]);
    const large = new ItemTooLargeError(500_000, 400_000);
    expect([large.name, large.bytes, large.limit]).toEqual(["ItemTooLargeError", 500_000, 400_000]);
    expect(large.message).toBe(
      "the stored item would be 500000 bytes; DynamoDB keeps at most 400000 bytes per item",
    );
  });
});
