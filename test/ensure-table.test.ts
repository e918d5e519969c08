import { CreateTableCommand, DescribeTableCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../src/observability/logger.js";
import { createTableInput, ensureTable, TableLayoutError } from "../src/store/ensure-table.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
const logger = createLogger("error");

beforeAll(async () => {
  store = await startTestStore();
});
afterAll(() => store.close());

describe("ensureTable", () => {
  it("creates the table with every index projecting only what its queries read", async () => {
    await ensureTable(store.client, "fresh-table", { retentionDays: 0, logger });
    const { Table } = await store.client.send(new DescribeTableCommand({ TableName: "fresh-table" }));
    const indexes = Object.fromEntries(
      (Table?.GlobalSecondaryIndexes ?? []).map((i) => [i.IndexName, i.Projection]),
    );
    for (const index of Object.values(TABLE_SCHEMA.indexes)) {
      expect(indexes[index.name]?.ProjectionType).toBe("INCLUDE");
      expect([...(indexes[index.name]?.NonKeyAttributes ?? [])].sort()).toEqual([...index.projection].sort());
    }
    // A second start finds it as it is and leaves it alone.
    await ensureTable(store.client, "fresh-table", { retentionDays: 0, logger });
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
    const started = ensureTable(store.client, "old-layout", { retentionDays: 0, logger });
    await expect(started).rejects.toBeInstanceOf(TableLayoutError);
    await expect(started).rejects.toThrow(
      /^Table old-layout has the layout of an earlier stepwatch version \(index outbox, queue missing\); set DYNAMODB_TABLE to a new table/,
    );
    const { Table } = await store.client.send(new DescribeTableCommand({ TableName: "old-layout" }));
    expect((Table?.GlobalSecondaryIndexes ?? []).map((i) => i.IndexName).sort()).toEqual([
      "by-run",
      "dead",
      "due",
    ]);
  });
});
