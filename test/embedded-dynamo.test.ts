import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateTableCommand, type DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { AwsV4Signer } from "aws4fetch";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type EmbeddedDynamo, startEmbeddedDynamo } from "../src/runtime/embedded-dynamo.js";
import { createNodeDynamoHandler } from "../src/runtime/node-dynamo-handler.js";
import { isProcessAlive } from "../src/runtime/process-alive.js";
import { StartupError } from "../src/runtime/startup-error.js";
import {
  loadStoreCredentials,
  STORE_CREDENTIALS_FILE,
  type StoreCredentials,
} from "../src/runtime/store-credentials.js";
import { createDynamoClient } from "../src/store/dynamo-client.js";
import { TEST_AWS } from "./support/test-store.js";

// The Node runtime's embedded store (dynalite persisted under STEPWATCH_DATA_DIR), the checks its
// start-up makes, and the DynamoDB client's HTTP handler, each run inside the test.

let root: string;
const started: EmbeddedDynamo[] = [];
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "stepwatch-embedded-"));
});
afterAll(async () => {
  await Promise.all(started.map((server) => server.close()));
  rmSync(root, { recursive: true, force: true });
});

async function start(...args: Parameters<typeof startEmbeddedDynamo>): Promise<EmbeddedDynamo> {
  const server = await startEmbeddedDynamo(...args);
  started.push(server);
  return server;
}

/** Calls `store` with the SDK signing with `credentials` (the store's own by default), as stepwatch does. */
async function withClient<T>(
  store: EmbeddedDynamo,
  call: (client: DynamoDBClient) => Promise<T>,
  credentials: StoreCredentials = store.credentials,
): Promise<T> {
  const client = createDynamoClient(
    {
      AWS_REGION: "local",
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      DYNAMODB_ENDPOINT: store.endpoint,
    },
    createNodeDynamoHandler(),
  );
  try {
    return await call(client);
  } finally {
    client.destroy();
  }
}

const tableNames = (store: EmbeddedDynamo) =>
  withClient(store, async (client) => (await client.send(new ListTablesCommand({}))).TableNames ?? []);

const createTable = (store: EmbeddedDynamo, name: string) =>
  withClient(store, (client) =>
    client.send(
      new CreateTableCommand({
        TableName: name,
        BillingMode: "PAY_PER_REQUEST",
        KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
        AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
      }),
    ),
  );

describe("the embedded store", () => {
  it("creates its directory, listens on loopback, and keeps its tables across a restart", async () => {
    const dir = join(root, "nested", "data", "dynamodb");
    const first = await start(dir);
    expect(first.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await createTable(first, "kept");
    await first.close();

    const second = await start(dir);
    expect(await tableNames(second)).toEqual(["kept"]);
    await second.close();
  });

  it("without a directory it keeps nothing; on a given port it listens there", async () => {
    const first = await start();
    await createTable(first, "forgotten");
    const port = Number(new URL(first.endpoint).port);
    await first.close();
    const again = await start(undefined, port, undefined, first.credentials);
    expect(again.endpoint).toBe(`http://127.0.0.1:${port}`);
    expect(await tableNames(again)).toEqual([]);
    await again.close();
  });

  it("listens on 127.0.0.1 only: not on another address of the machine (here ::1)", async () => {
    const store = await start();
    const port = Number(new URL(store.endpoint).port);
    await expect(fetch(`http://[::1]:${port}/`, { signal: AbortSignal.timeout(2000) })).rejects.toMatchObject(
      {
        cause: { code: "ECONNREFUSED" },
      },
    );
    await store.close();
  });

  it("a port already taken: starting fails with the listen error instead of hanging", async () => {
    const store = await start();
    const port = Number(new URL(store.endpoint).port);
    await expect(startEmbeddedDynamo(undefined, port)).rejects.toMatchObject({ code: "EADDRINUSE" });
    await store.close();
  }, 5000);

  it("a directory another process has open: a StartupError saying so and what to do, named as shown", async () => {
    const dir = join(root, "busy");
    const holder = await start(dir);
    // dynalite opens its database at the first request.
    expect(await tableNames(holder)).toEqual([]);

    const shown = await startEmbeddedDynamo(dir, 0, "STEPWATCH_DATA_DIR/dynamodb").catch((e: unknown) => e);
    expect(shown).toBeInstanceOf(StartupError);
    expect(shown).toMatchObject({
      name: "StartupError",
      message:
        "STEPWATCH_DATA_DIR/dynamodb is open in another process (a stepwatch or dynalite using the same " +
        "directory): stop it, or set STEPWATCH_DATA_DIR to another directory",
      cause: { cause: { code: "LEVEL_LOCKED" } },
    });
    // Named by its path when no other name is given.
    await expect(startEmbeddedDynamo(dir)).rejects.toThrow(new RegExp(`^${dir} is open in another process`));
    await holder.close();
  });

  it("a directory that is not a readable store: a StartupError saying to move it away", async () => {
    const dir = join(root, "corrupt");
    mkdirSync(dir);
    writeFileSync(join(dir, "CURRENT"), "MANIFEST-000404\n");
    const failure = await startEmbeddedDynamo(dir, 0, "the data directory").catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(StartupError);
    expect(failure).toMatchObject({
      name: "StartupError",
      message:
        "the data directory is corrupt or unreadable: move it away or delete it (the embedded store starts empty)",
      cause: expect.any(Error),
    });
    expect(String((failure as Error).message)).not.toContain("\n");
  });

  it("a StartupError is an Error named StartupError, keeping its cause", () => {
    const cause = new Error("underneath");
    const error = new StartupError("set PORT to a free port", { cause });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe("StartupError");
    expect(String(error)).toBe("StartupError: set PORT to a free port");
    expect(error.cause).toBe(cause);
  });
});

/** What the store answered, read whole. */
interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/**
 * Sends one request to `endpoint` over node:http, as any local process or browser could: the
 * body written in `chunks` (several: streamed, chunked), each after the one before.
 */
function send(
  endpoint: string,
  options: { method?: string; path?: string; headers?: Record<string, string>; chunks?: readonly string[] },
): Promise<Answer> {
  const url = new URL(endpoint);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: options.method ?? "POST",
        path: options.path ?? "/",
        headers: options.headers ?? {},
        signal: AbortSignal.timeout(5_000),
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    const chunks = options.chunks ?? [];
    const next = (i: number) => {
      if (i >= chunks.length) return void req.end();
      req.write(chunks[i], () => setImmediate(() => next(i + 1)));
    };
    next(0);
  });
}

/**
 * A DynamoDB call signed by aws4fetch (a signer other than the SDK's, as the Worker client uses),
 * with `credentials`; `extra` headers are added after signing (so they are not signed).
 */
async function signed(
  endpoint: string,
  operation: string,
  body: string,
  credentials: StoreCredentials,
  extra: Record<string, string> = {},
): Promise<Record<string, string>> {
  const request = await new AwsV4Signer({
    url: `${endpoint}/`,
    method: "POST",
    headers: {
      "content-type": "application/x-amz-json-1.0",
      "x-amz-target": `DynamoDB_20120810.${operation}`,
    },
    body,
    ...credentials,
    service: "dynamodb",
    region: "local",
  }).sign();
  const headers: Record<string, string> = { "content-length": String(Buffer.byteLength(body)) };
  request.headers.forEach((value, name) => {
    headers[name] = value;
  });
  return { ...headers, ...extra };
}

const createTableBody = (name: string) =>
  JSON.stringify({
    TableName: name,
    BillingMode: "PAY_PER_REQUEST",
    KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
    AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
  });

const errorType = (answer: Answer) => (JSON.parse(answer.body) as { __type: string }).__type;

describe("the embedded store answers stepwatch alone", () => {
  let store: EmbeddedDynamo;
  beforeAll(async () => {
    store = await start();
  });

  it("a browser's request (any Origin) is refused 403, signed or not, with no CORS header, and does nothing", async () => {
    for (const origin of ["http://localhost:3000", "null", "https://attacker.example"]) {
      const body = createTableBody("from_a_page");
      const answer = await send(store.endpoint, {
        headers: await signed(store.endpoint, "CreateTable", body, store.credentials, { origin }),
        chunks: [body],
      });
      expect(answer.status, origin).toBe(403);
      expect(errorType(answer)).toBe("com.amazon.coral.service#AccessDeniedException");
      expect(answer.headers["access-control-allow-origin"]).toBeUndefined();
      expect(answer.headers["content-type"]).toBe("application/x-amz-json-1.0");
    }
    expect(await tableNames(store)).not.toContain("from_a_page");
  });

  it("every CORS preflight (OPTIONS), with or without Origin, is refused 403 and echoes nothing", async () => {
    for (const headers of [
      {
        origin: "http://localhost:3000",
        "access-control-request-method": "POST",
        "access-control-request-headers": "x-amz-target,content-type",
      },
      {},
    ]) {
      const answer = await send(store.endpoint, { method: "OPTIONS", headers });
      expect(answer.status).toBe(403);
      expect(errorType(answer)).toBe("com.amazon.coral.service#AccessDeniedException");
      expect(answer.headers["access-control-allow-origin"]).toBeUndefined();
      expect(answer.headers["access-control-allow-methods"]).toBeUndefined();
      expect(answer.headers["access-control-allow-headers"]).toBeUndefined();
    }
  });

  it("a request without a credential, or with another key id, is refused 400 UnrecognizedClientException", async () => {
    const body = createTableBody("unsigned");
    const unsigned = {
      "content-type": "application/x-amz-json-1.0",
      "x-amz-target": "DynamoDB_20120810.CreateTable",
    };
    // dynalite alone accepted a signature of the right shape that nobody computed.
    const shaped = {
      ...unsigned,
      "x-amz-date": "20250101T000000Z",
      authorization: `AWS4-HMAC-SHA256 Credential=${store.credentials.accessKeyId}x/20250101/local/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=${"0".repeat(64)}`,
    };
    const other = await signed(store.endpoint, "CreateTable", body, {
      accessKeyId: `${store.credentials.accessKeyId.slice(0, -1)}X`,
      secretAccessKey: store.credentials.secretAccessKey,
    });
    const prefix = await signed(store.endpoint, "CreateTable", body, {
      accessKeyId: store.credentials.accessKeyId.slice(0, -1),
      secretAccessKey: store.credentials.secretAccessKey,
    });
    for (const headers of [unsigned, shaped, other, prefix]) {
      const answer = await send(store.endpoint, { headers, chunks: [body] });
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body)).toEqual({
        __type: "com.amazon.coral.service#UnrecognizedClientException",
        message: "The security token included in the request is invalid.",
      });
    }
    // A GET (dynalite's health answer) and a presigned URL carry no Authorization header either.
    expect((await send(store.endpoint, { method: "GET" })).status).toBe(400);
    expect((await send(store.endpoint, { path: "/?X-Amz-Algorithm=AWS4-HMAC-SHA256" })).status).toBe(400);
    expect(await tableNames(store)).not.toContain("unsigned");
  });

  it("the SDK signing with the right key id and a wrong secret: refused (InvalidSignatureException)", async () => {
    const wrong = { accessKeyId: store.credentials.accessKeyId, secretAccessKey: "not-the-secret" };
    const failure = await withClient(store, (client) => client.send(new ListTablesCommand({})), wrong).catch(
      (error: unknown) => error,
    );
    expect(failure).toMatchObject({ name: "InvalidSignatureException", $metadata: { httpStatusCode: 400 } });
    const other = { accessKeyId: "local", secretAccessKey: "local" };
    const unknown = await withClient(store, (client) => client.send(new ListTablesCommand({})), other).catch(
      (error: unknown) => error,
    );
    expect(unknown).toMatchObject({
      name: "UnrecognizedClientException",
      $metadata: { httpStatusCode: 400 },
    });
  });

  it("a signed request whose body, operation, path or date was changed is refused, and does nothing", async () => {
    const body = createTableBody("changed");
    const headers = await signed(store.endpoint, "ListTables", "{}", store.credentials);
    const cases: { what: string; options: Parameters<typeof send>[1] }[] = [
      // Same length, so only the hash of what arrived tells it apart.
      { what: "body", options: { headers, chunks: ["[]"] } },
      {
        what: "body and its claimed hash",
        options: { headers: { ...headers, "x-amz-content-sha256": "0".repeat(64) }, chunks: ["{}"] },
      },
      {
        what: "operation",
        options: { headers: { ...headers, "x-amz-target": "DynamoDB_20120810.CreateTable" }, chunks: ["{}"] },
      },
      { what: "method", options: { method: "PUT", headers, chunks: ["{}"] } },
      { what: "path", options: { path: "/x", headers, chunks: ["{}"] } },
      { what: "query", options: { path: "/?x=1", headers, chunks: ["{}"] } },
      {
        what: "date",
        options: { headers: { ...headers, "x-amz-date": "20250101T000000Z" }, chunks: ["{}"] },
      },
      {
        what: "date's day",
        options: {
          headers: { ...headers, "x-amz-date": headers["x-amz-date"]?.replace(/^\d{8}/, "20250101") ?? "" },
          chunks: ["{}"],
        },
      },
      { what: "no date", options: { headers: { ...headers, "x-amz-date": "" }, chunks: ["{}"] } },
    ];
    for (const { what, options } of cases) {
      const answer = await send(store.endpoint, options);
      expect(answer.status, what).toBe(400);
      expect(errorType(answer), what).toBe("com.amazon.coral.service#InvalidSignatureException");
    }
    // The operation unsigned: a signature over the rest, with X-Amz-Target added afterwards.
    const { "x-amz-target": target = "", ...withoutTarget } = await signed(
      store.endpoint,
      "CreateTable",
      body,
      store.credentials,
    );
    const resigned = await new AwsV4Signer({
      url: `${store.endpoint}/`,
      method: "POST",
      headers: { "content-type": "application/x-amz-json-1.0" },
      body,
      ...store.credentials,
      service: "dynamodb",
      region: "local",
    }).sign();
    const unsignedTarget: Record<string, string> = {
      "content-length": String(body.length),
      "x-amz-target": target,
    };
    resigned.headers.forEach((value, name) => {
      unsignedTarget[name] = value;
    });
    expect(withoutTarget.authorization).toContain("x-amz-target");
    expect(unsignedTarget.authorization).not.toContain("x-amz-target");
    const answer = await send(store.endpoint, { headers: unsignedTarget, chunks: [body] });
    expect(answer.status).toBe(400);
    expect(errorType(answer)).toBe("com.amazon.coral.service#InvalidSignatureException");
    expect(await tableNames(store)).not.toContain("changed");
  });

  it("answers requests signed by the SDK and by aws4fetch, bodies streamed in chunks included", async () => {
    await createTable(store, "signed_by_sdk");
    const body = createTableBody("signed_by_aws4fetch");
    const headers = await signed(store.endpoint, "CreateTable", body, store.credentials);
    // No x-amz-content-sha256 from aws4fetch: the body's hash is computed as it arrives.
    expect(headers["x-amz-content-sha256"]).toBeUndefined();
    const { "content-length": _, ...chunked } = headers;
    const third = Math.floor(body.length / 3);
    const answer = await send(store.endpoint, {
      headers: chunked,
      chunks: [body.slice(0, third), body.slice(third, 2 * third), body.slice(2 * third)],
    });
    expect(answer.status, answer.body).toBe(200);
    expect(await tableNames(store)).toEqual(expect.arrayContaining(["signed_by_sdk", "signed_by_aws4fetch"]));
  });

  it("a client that goes away mid-body does not bring the store down", async () => {
    const body = createTableBody("abandoned");
    const headers = await signed(store.endpoint, "CreateTable", body, store.credentials);
    const url = new URL(store.endpoint);
    await new Promise<void>((resolve) => {
      const req = request({ host: url.hostname, port: url.port, method: "POST", path: "/", headers });
      req.on("error", () => resolve());
      req.write(body.slice(0, 10), () => setTimeout(() => req.destroy(), 50));
      req.on("close", () => resolve());
    });
    expect(await tableNames(store)).not.toContain("abandoned");
  });
});

describe("the data directory's store credential and modes", () => {
  const modeOf = (path: string) => statSync(path).mode & 0o777;

  it("generated once per data directory, kept 0600, the same on every start; another directory has another", () => {
    const dir = join(root, "credential");
    mkdirSync(dir);
    const first = loadStoreCredentials(dir);
    const file = join(dir, STORE_CREDENTIALS_FILE);
    expect(modeOf(file)).toBe(0o600);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({
      AWS_ACCESS_KEY_ID: first.accessKeyId,
      AWS_SECRET_ACCESS_KEY: first.secretAccessKey,
    });
    expect(first.secretAccessKey.length).toBeGreaterThanOrEqual(43);
    expect(loadStoreCredentials(dir)).toEqual(first);
    const other = join(root, "credential-other");
    mkdirSync(other);
    const second = loadStoreCredentials(other);
    expect(second.accessKeyId).not.toBe(first.accessKeyId);
    expect(second.secretAccessKey).not.toBe(first.secretAccessKey);
    // A file left readable by others is tightened.
    chmodSync(file, 0o644);
    expect(loadStoreCredentials(dir)).toEqual(first);
    expect(modeOf(file)).toBe(0o600);
  });

  it("a broken credential file: a StartupError naming it and what to do", () => {
    for (const content of [
      "{",
      "null",
      "[]",
      '{"AWS_ACCESS_KEY_ID":"a"}',
      '{"AWS_ACCESS_KEY_ID":"","AWS_SECRET_ACCESS_KEY":"b"}',
      '{"AWS_ACCESS_KEY_ID":"a","AWS_SECRET_ACCESS_KEY":2}',
    ]) {
      const dir = mkdtempSync(join(root, "broken-credential-"));
      const file = join(dir, STORE_CREDENTIALS_FILE);
      writeFileSync(file, content);
      const failure = (() => {
        try {
          return loadStoreCredentials(dir);
        } catch (error) {
          return error;
        }
      })();
      expect(failure, content).toBeInstanceOf(StartupError);
      expect((failure as Error).message).toBe(
        `${file} is not a JSON object of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: fix it, or delete it ` +
          "(a new credential for the embedded store is generated)",
      );
    }
  });

  it("the store's directory is created 0700, and one left readable by others is tightened", async () => {
    const dir = join(root, "private", "dynamodb");
    const store = await start(dir);
    expect(modeOf(dir)).toBe(0o700);
    expect(modeOf(join(root, "private"))).toBe(0o700);
    await store.close();
    chmodSync(dir, 0o755);
    const again = await start(dir);
    expect(modeOf(dir)).toBe(0o700);
    await again.close();
  });
});

describe("isProcessAlive", () => {
  it("true for this process, false for one that has exited or a pid that is not one", async () => {
    expect(isProcessAlive(process.pid)).toBe(true);
    const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
    const pid = child.pid ?? -1;
    await new Promise((resolve) => child.once("exit", resolve));
    expect(isProcessAlive(pid)).toBe(false);
    expect(isProcessAlive(Number.NaN)).toBe(false);
    expect(isProcessAlive(2 ** 31)).toBe(false);
  });

  it("true for a process of another user (the system answers EPERM)", () => {
    // This test runs as one user; what the system answers for another user's process is given here.
    const kill = vi.spyOn(process, "kill").mockImplementation(() => {
      throw Object.assign(new Error("kill EPERM"), { code: "EPERM" });
    });
    try {
      expect(isProcessAlive(4242)).toBe(true);
      expect(kill).toHaveBeenCalledWith(4242, 0);
    } finally {
      kill.mockRestore();
    }
  });
});

describe("the DynamoDB client's Node HTTP handler", () => {
  let server: Server;
  let connections = 0;
  let url: string;
  beforeAll(async () => {
    server = createServer((_req, res) => res.end("{}"));
    server.on("connection", () => connections++);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("keeps its connection alive between calls, and times out requests by throwing", async () => {
    const handler = createNodeDynamoHandler();
    try {
      const client = createDynamoClient({ ...TEST_AWS, DYNAMODB_ENDPOINT: url }, handler);
      await client.send(new ListTablesCommand({}));
      await client.send(new ListTablesCommand({}));
      expect(connections).toBe(1);
      expect(handler.httpHandlerConfigs()).toMatchObject({
        connectionTimeout: 1_000,
        requestTimeout: 3_000,
        throwOnRequestTimeout: true,
      });
    } finally {
      handler.destroy();
    }
  });
});
