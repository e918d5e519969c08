import { type AttributeValue, BatchGetItemCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Item } from "./item-codec.js";
import { guardStore, StoreUnavailableError } from "./store-errors.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const BATCH = 100;
const ROUNDS = 8;

/** How to read a batch. */
export interface BatchGetOptions {
  /** Named in errors. */
  readonly operation: string;
  readonly consistent?: boolean;
  /** Attribute names to read; all when absent. */
  readonly attributes?: readonly string[];
}

/**
 * Reads items by key value, 100 to a call, retrying keys DynamoDB leaves unprocessed (a bounded
 * number of rounds, then the store counts as unavailable). Missing items are simply absent.
 */
export async function batchGet(
  client: DynamoDBClient,
  table: string,
  keys: readonly string[],
  options: BatchGetOptions,
): Promise<Map<string, Item>> {
  const found = new Map<string, Item>();
  const pending = [...new Set(keys)];
  const pk = TABLE_SCHEMA.partitionKey;
  const projection = options.attributes ? [pk, ...options.attributes] : undefined;
  while (pending.length > 0) {
    let request = pending.splice(0, BATCH).map((key) => ({ [pk]: { S: key } }));
    for (let round = 0; request.length > 0; round++) {
      if (round === ROUNDS)
        throw new StoreUnavailableError(`DynamoDB ${options.operation}: keys left unprocessed`);
      if (round > 0) await new Promise((resolve) => setTimeout(resolve, 20 * 2 ** round));
      const result = await guardStore(
        options.operation,
        client.send(
          new BatchGetItemCommand({
            RequestItems: {
              [table]: {
                Keys: request,
                ConsistentRead: options.consistent ?? false,
                ...(projection
                  ? {
                      ProjectionExpression: projection.map((name) => `#${name}`).join(", "),
                      ExpressionAttributeNames: Object.fromEntries(
                        projection.map((name) => [`#${name}`, name]),
                      ),
                    }
                  : {}),
              },
            },
          }),
        ),
      );
      // Every item carries its key, a string: the projection always names it.
      for (const item of result.Responses?.[table] ?? []) {
        found.set((item[pk] as AttributeValue.SMember).S, item);
      }
      request = (result.UnprocessedKeys?.[table]?.Keys ?? []) as typeof request;
    }
  }
  return found;
}
