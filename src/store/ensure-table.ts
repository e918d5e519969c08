import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
  type TableDescription,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import type { Logger } from "../observability/logger.js";
import { TABLE_SCHEMA } from "./table-schema.js";

interface IndexDefinitionShape {
  readonly name: string;
  readonly partitionKey: string;
  readonly sortKey: string;
  readonly keyTypes: Readonly<Record<string, "S" | "N">>;
  /** Never empty: every index serves a query that reads more than the keys (none is KEYS_ONLY). */
  readonly projection: readonly [string, ...string[]];
}

/** CreateTable input for stepwatch's table, derived from {@link TABLE_SCHEMA}. */
export function createTableInput(tableName: string): CreateTableCommandInput {
  const indexes: readonly IndexDefinitionShape[] = Object.values(TABLE_SCHEMA.indexes);
  const attributes = new Map<string, "S" | "N">([[TABLE_SCHEMA.partitionKey, "S"]]);
  for (const index of indexes) {
    for (const [name, type] of Object.entries(index.keyTypes)) attributes.set(name, type);
  }
  return {
    TableName: tableName,
    BillingMode: "PAY_PER_REQUEST",
    KeySchema: [{ AttributeName: TABLE_SCHEMA.partitionKey, KeyType: "HASH" }],
    AttributeDefinitions: [...attributes].map(([AttributeName, AttributeType]) => ({
      AttributeName,
      AttributeType,
    })),
    GlobalSecondaryIndexes: indexes.map((index) => ({
      IndexName: index.name,
      KeySchema: [
        { AttributeName: index.partitionKey, KeyType: "HASH" },
        { AttributeName: index.sortKey, KeyType: "RANGE" },
      ],
      // Only what the index's queries read: every attribute projected is written again on each change.
      Projection: { ProjectionType: "INCLUDE", NonKeyAttributes: [...index.projection] },
    })),
  };
}

/** The table exists with another layout (an earlier version's indexes); start-up stops on it. */
export class TableLayoutError extends Error {
  override readonly name = "TableLayoutError";
}

/**
 * Creates the table and its indexes when missing and waits until it is active. Never drops or
 * alters an existing table: one made by an earlier version, with other indexes, is refused with
 * a {@link TableLayoutError} saying what to do (README, "Upgrading").
 */
export async function ensureTable(
  client: DynamoDBClient,
  tableName: string,
  options: { readonly retentionDays: number; readonly logger: Logger; readonly timeoutMs?: number },
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let created = false;
  for (;;) {
    let table: TableDescription | undefined;
    try {
      table = (await client.send(new DescribeTableCommand({ TableName: tableName }))).Table;
    } catch (error) {
      if ((error as Error).name !== "ResourceNotFoundException" || created) throw error;
      await client.send(new CreateTableCommand(createTableInput(tableName)));
      created = true;
      options.logger.info("created table", { table: tableName });
    }
    if (table) {
      // Stryker disable next-line ArrayDeclaration: a table without indexes is refused the same way with junk in place of none (junk names no index)
      const indexes = table.GlobalSecondaryIndexes ?? [];
      const mismatch = layoutMismatch(indexes);
      if (mismatch) {
        throw new TableLayoutError(
          `Table ${tableName} has the layout of an earlier stepwatch version (${mismatch}); ` +
            "set DYNAMODB_TABLE to a new table (README, Upgrading) or, for a local store, delete .data/",
        );
      }
      if (table.TableStatus === "ACTIVE" && indexes.every((i) => i.IndexStatus === "ACTIVE")) break;
    }
    // Stryker disable next-line EqualityOperator: which side of one millisecond the wait gives up on is unobservable
    if (Date.now() > deadline) throw new Error(`table ${tableName} did not become active in time`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (created && options.retentionDays > 0) {
    try {
      await client.send(
        new UpdateTimeToLiveCommand({
          TableName: tableName,
          TimeToLiveSpecification: { AttributeName: TABLE_SCHEMA.ttlAttribute, Enabled: true },
        }),
      );
    } catch (error) {
      // dynalite has no TTL; the attribute is still written, so real DynamoDB would honour it.
      options.logger.warn("could not enable TTL on this endpoint", {
        table: tableName,
        error: (error as Error).name,
      });
    }
  }
}

// What differs between the table's indexes and the ones this version reads; empty when none.
function layoutMismatch(indexes: readonly { IndexName?: string | undefined }[]): string {
  const have = new Set(indexes.map((index) => index.IndexName));
  const want = Object.values(TABLE_SCHEMA.indexes).map((index) => index.name);
  const missing = want.filter((name) => !have.has(name));
  return missing.length > 0 ? `index ${missing.join(", ")} missing` : "";
}
