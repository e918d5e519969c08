import {
  CreateTableCommand,
  DescribeTableCommand,
  type DescribeTableCommandOutput,
  type DynamoDBClient,
  ProvisionedThroughputExceededException,
  type UpdateTimeToLiveCommandInput,
} from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../src/observability/logger.js";
import { createTableInput, ensureTable, TableLayoutError } from "../src/store/ensure-table.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { overriding } from "./support/overriding.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
const logger = createLogger("error");

beforeAll(async () => {
  store = await startTestStore();
});
afterAll(() => store.close());

let tables = 0;
/** A table name no other test uses. */
const freshName = () => `ensure-${++tables}`;

type Described = NonNullable<DescribeTableCommandOutput["Table"]>;

/**
 * The test store's client, recording the commands ensureTable sends (by name) and the TTL it asks
 * for; `described[n]`, when given, rewrites the n-th successful DescribeTable answer (a table still
 * being created, say), and `failFirstDescribe` makes the first DescribeTable fail with it.
 */
function watchedClient(
  options: { described?: readonly ((table: Described) => Described)[]; failFirstDescribe?: Error } = {},
) {
  const sent: string[] = [];
  const ttl: UpdateTimeToLiveCommandInput[] = [];
  let describes = 0;
  const send = async (command: { constructor: { name: string }; input: unknown }) => {
    const name = command.constructor.name.replace(/Command$/, "");
    sent.push(name);
    if (name === "UpdateTimeToLive") ttl.push(command.input as UpdateTimeToLiveCommandInput);
    if (
      name === "DescribeTable" &&
      options.failFirstDescribe &&
      sent.indexOf("DescribeTable") === sent.length - 1
    ) {
      throw options.failFirstDescribe;
    }
    const answer = await (store.client.send as (c: unknown) => Promise<unknown>)(command);
    if (name !== "DescribeTable") return answer;
    const rewrite = options.described?.[describes++];
    const output = answer as DescribeTableCommandOutput;
    return rewrite && output.Table ? { ...output, Table: rewrite(output.Table) } : output;
  };
  const client = overriding(store.client, { send: send as unknown as DynamoDBClient["send"] });
  return { client, sent, ttl };
}

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  return { lines, logger: createLogger("info", (line) => lines.push(JSON.parse(line))) };
}

const describeTable = async (name: string) =>
  (await store.client.send(new DescribeTableCommand({ TableName: name }))).Table;

/** The table as it is still being made: the table's status, then each index's. */
const creating =
  (table: string, indexes: Record<string, string> = {}) =>
  (described: Described): Described => ({
    ...described,
    TableStatus: table as Described["TableStatus"],
    GlobalSecondaryIndexes: described.GlobalSecondaryIndexes?.map((index) => ({
      ...index,
      IndexStatus: (indexes[index.IndexName ?? ""] ?? "CREATING") as "CREATING",
    })),
  });

describe("ensureTable", () => {
  it("creates the table TABLE_SCHEMA describes: key, on-demand billing, every index with its keys and projection", async () => {
    const name = freshName();
    const { client, sent } = watchedClient();
    const { lines, logger } = capturingLogger();
    await ensureTable(client, name, { retentionDays: 0, logger });
    expect(lines).toEqual([expect.objectContaining({ level: "info", msg: "created table", table: name })]);
    // Kept forever (retention 0): no TTL asked for.
    expect(sent).toEqual(["DescribeTable", "CreateTable", "DescribeTable"]);

    const table = await describeTable(name);
    expect(table?.TableStatus).toBe("ACTIVE");
    expect(table?.KeySchema).toEqual([{ AttributeName: TABLE_SCHEMA.partitionKey, KeyType: "HASH" }]);
    expect(table?.BillingModeSummary?.BillingMode).toBe("PAY_PER_REQUEST");
    const indexes = Object.values(TABLE_SCHEMA.indexes);
    const types: Record<string, string> = { [TABLE_SCHEMA.partitionKey]: "S" };
    for (const index of indexes) Object.assign(types, index.keyTypes);
    expect(
      Object.fromEntries((table?.AttributeDefinitions ?? []).map((a) => [a.AttributeName, a.AttributeType])),
    ).toEqual(types);
    expect(types.qt).toBe("N"); // the queue index sorts by time, as a number
    expect(table?.AttributeDefinitions).toHaveLength(Object.keys(types).length);

    const described = new Map((table?.GlobalSecondaryIndexes ?? []).map((index) => [index.IndexName, index]));
    expect([...described.keys()].sort()).toEqual(indexes.map((index) => index.name).sort());
    for (const index of indexes) {
      expect(described.get(index.name)).toMatchObject({
        IndexStatus: "ACTIVE",
        KeySchema: [
          { AttributeName: index.partitionKey, KeyType: "HASH" },
          { AttributeName: index.sortKey, KeyType: "RANGE" },
        ],
        Projection: { ProjectionType: "INCLUDE", NonKeyAttributes: [...index.projection] },
      });
    }
  });

  it("leaves a table it finds as it is: no CreateTable, no TTL change, nothing logged", async () => {
    const { client, sent } = watchedClient();
    const { lines, logger: watching } = capturingLogger();
    await ensureTable(client, store.tableName, { retentionDays: 30, logger: watching });
    expect(sent).toEqual(["DescribeTable"]);
    expect(lines).toEqual([]);
  });

  it("asks for TTL on the `ttl` attribute when it creates the table with a retention, and says so when the store has none", async () => {
    const name = freshName();
    const { client, sent, ttl } = watchedClient();
    const { lines, logger: watching } = capturingLogger();
    await ensureTable(client, name, { retentionDays: 30, logger: watching });
    expect(sent.filter((command) => command !== "DescribeTable")).toEqual([
      "CreateTable",
      "UpdateTimeToLive",
    ]);
    expect(ttl).toEqual([
      {
        TableName: name,
        TimeToLiveSpecification: { AttributeName: TABLE_SCHEMA.ttlAttribute, Enabled: true },
      },
    ]);
    // dynalite has no UpdateTimeToLive: start-up goes on, with a warning naming the refusal.
    const warning = lines.find((line) => line.level === "warn");
    expect(warning).toMatchObject({ msg: "could not enable TTL on this endpoint", table: name });
    expect(warning?.error).toMatch(/^\w+$/);
    expect((await describeTable(name))?.TableStatus).toBe("ACTIVE");
  });

  it("waits until the table and every one of its indexes are ACTIVE", async () => {
    const { client, sent } = watchedClient({
      described: [
        creating("CREATING"),
        creating("CREATING", { "by-run": "ACTIVE", outbox: "ACTIVE", queue: "ACTIVE" }),
        creating("ACTIVE", { "by-run": "ACTIVE", outbox: "UPDATING" }),
      ],
    });
    await ensureTable(client, freshName(), { retentionDays: 0, logger });
    // Not found, then three answers still being made, then the real, active one.
    expect(sent).toEqual(["DescribeTable", "CreateTable", ...Array(4).fill("DescribeTable")]);
  });

  it("gives up on a table that does not become active in time, with an error saying so", {
    timeout: 5_000,
  }, async () => {
    const name = freshName();
    const { client, sent } = watchedClient({ described: Array(100).fill(creating("CREATING")) });
    const started = Date.now();
    await expect(ensureTable(client, name, { retentionDays: 0, logger, timeoutMs: 250 })).rejects.toThrow(
      new Error(`table ${name} did not become active in time`),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(sent.filter((command) => command === "DescribeTable").length).toBeGreaterThanOrEqual(3);
  });

  it("passes on a failure other than a missing table, creating nothing", async () => {
    const name = freshName();
    const throttled = new ProvisionedThroughputExceededException({ message: "slow down", $metadata: {} });
    const { client, sent } = watchedClient({ failFirstDescribe: throttled });
    await expect(ensureTable(client, name, { retentionDays: 0, logger })).rejects.toBe(throttled);
    expect(sent).toEqual(["DescribeTable"]);
    await expect(describeTable(name)).rejects.toMatchObject({ name: "ResourceNotFoundException" });
  });

  it("refuses a table an earlier version made, naming what to do, and changes nothing", async () => {
    // The earlier layout: the same key, the indexes `by-run`, `due` and `dead`.
    const input = createTableInput("old-layout");
    await store.client.send(
      new CreateTableCommand({
        ...input,
        GlobalSecondaryIndexes: (input.GlobalSecondaryIndexes ?? []).map((index, i) => ({
          ...index,
          IndexName: ["by-run", "due", "dead"][i] as string,
        })),
      }),
    );
    const { client, sent } = watchedClient();
    const started = ensureTable(client, "old-layout", { retentionDays: 30, logger });
    await expect(started).rejects.toBeInstanceOf(TableLayoutError);
    await expect(started).rejects.toMatchObject({ name: "TableLayoutError" });
    await expect(started).rejects.toThrow(
      /^Table old-layout has the layout of an earlier stepwatch version \(index outbox, queue missing\); set DYNAMODB_TABLE to a new table/,
    );
    expect(sent).toEqual(["DescribeTable"]);
    expect(
      ((await describeTable("old-layout"))?.GlobalSecondaryIndexes ?? []).map((i) => i.IndexName).sort(),
    ).toEqual(["by-run", "dead", "due"]);
  });

  it("refuses a table without any index, naming them all", async () => {
    const { GlobalSecondaryIndexes: _, AttributeDefinitions: __, ...input } = createTableInput("bare");
    await store.client.send(
      new CreateTableCommand({
        ...input,
        AttributeDefinitions: [{ AttributeName: TABLE_SCHEMA.partitionKey, AttributeType: "S" }],
      }),
    );
    await expect(ensureTable(store.client, "bare", { retentionDays: 0, logger })).rejects.toThrow(
      /\(index by-run, outbox, queue missing\)/,
    );
  });
});
