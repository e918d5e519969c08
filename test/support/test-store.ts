import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { createLogger } from "../../src/observability/logger.js";
import { startEmbeddedDynamo } from "../../src/runtime/embedded-dynamo.js";
import { createNodeDynamoHandler } from "../../src/runtime/node-dynamo-handler.js";
import { createDynamoClient } from "../../src/store/dynamo-client.js";
import { ensureTable } from "../../src/store/ensure-table.js";

/** A real dynalite on a free loopback port with stepwatch's table, for one test file. */
export interface TestStore {
  readonly endpoint: string;
  readonly port: number;
  readonly tableName: string;
  readonly client: DynamoDBClient;
  /** Stops the server (the client stays, to see it unreachable). */
  stop(): Promise<void>;
  /** Starts it again on the same port (in memory: the data is gone). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Configuration pieces pointing at a test store. */
export const TEST_AWS = {
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "test",
  AWS_SECRET_ACCESS_KEY: "test",
} as const;

// The key pair the test store accepts (it refuses any other), as clients of TEST_AWS sign.
const TEST_CREDENTIALS = {
  accessKeyId: TEST_AWS.AWS_ACCESS_KEY_ID,
  secretAccessKey: TEST_AWS.AWS_SECRET_ACCESS_KEY,
};

export async function startTestStore(tableName = "stepwatch-test"): Promise<TestStore> {
  let server = await startEmbeddedDynamo(undefined, 0, undefined, TEST_CREDENTIALS);
  const port = Number(new URL(server.endpoint).port);
  const client = createDynamoClient(
    { ...TEST_AWS, DYNAMODB_ENDPOINT: server.endpoint },
    createNodeDynamoHandler(),
  );
  const logger = createLogger("error");
  await ensureTable(client, tableName, { retentionDays: 0, logger });
  let running = true;
  return {
    endpoint: server.endpoint,
    port,
    tableName,
    client,
    async stop() {
      if (running) await server.close();
      running = false;
    },
    async restart() {
      server = await startEmbeddedDynamo(undefined, port, undefined, TEST_CREDENTIALS);
      running = true;
      await ensureTable(client, tableName, { retentionDays: 0, logger });
    },
    async close() {
      if (running) await server.close();
      running = false;
      client.destroy();
    },
  };
}
