import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateTableCommand, type DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type EmbeddedDynamo, startEmbeddedDynamo } from "../src/runtime/embedded-dynamo.js";
import { createNodeDynamoHandler } from "../src/runtime/node-dynamo-handler.js";
import { isProcessAlive } from "../src/runtime/process-alive.js";
import { StartupError } from "../src/runtime/startup-error.js";
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

/** Calls the store at `endpoint` with the SDK, as stepwatch does. */
async function withClient<T>(endpoint: string, call: (client: DynamoDBClient) => Promise<T>): Promise<T> {
  const client = createDynamoClient({ ...TEST_AWS, DYNAMODB_ENDPOINT: endpoint }, createNodeDynamoHandler());
  try {
    return await call(client);
  } finally {
    client.destroy();
  }
}

const tableNames = (endpoint: string) =>
  withClient(endpoint, async (client) => (await client.send(new ListTablesCommand({}))).TableNames ?? []);

const createTable = (endpoint: string, name: string) =>
  withClient(endpoint, (client) =>
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
    await createTable(first.endpoint, "kept");
    await first.close();

    const second = await start(dir);
    expect(await tableNames(second.endpoint)).toEqual(["kept"]);
    await second.close();
  });

  it("without a directory it keeps nothing; on a given port it listens there", async () => {
    const first = await start();
    await createTable(first.endpoint, "forgotten");
    const port = Number(new URL(first.endpoint).port);
    await first.close();
    const again = await start(undefined, port);
    expect(again.endpoint).toBe(`http://127.0.0.1:${port}`);
    expect(await tableNames(again.endpoint)).toEqual([]);
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
    expect(await tableNames(holder.endpoint)).toEqual([]);

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
