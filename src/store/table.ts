import {
  type AttributeValue,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { batchGet } from "./batch-get.js";
import { type Item, keyOf, namesFor } from "./item-codec.js";
import { guardStore, isConditionalFailure, toStoreError } from "./store-errors.js";

/**
 * What a conditional write came to: done, or refused by its condition. `old` is what DynamoDB
 * answered with when asked (see {@link UpdateReturns}): on success the attributes `ReturnValues`
 * names (with UPDATED_NEW, the new ones), when refused the old item.
 */
export type WriteResult =
  | { readonly ok: true; readonly old: Item | undefined }
  | { readonly ok: false; readonly old: Item | undefined };

/**
 * What an update asks back, as DynamoDB names it: `values` its ReturnValues on success, `onRefusal`
 * whether a refused update brings the old item (ReturnValuesOnConditionCheckFailure ALL_OLD).
 * Each costs no read unit; they only say what the write's answer carries.
 */
export interface UpdateReturns {
  readonly values?: "ALL_OLD" | "UPDATED_OLD" | "UPDATED_NEW";
  readonly onRefusal?: boolean;
}

// `returnOld: true`: the whole old item back, written or refused.
const ALL_OLD: UpdateReturns = { values: "ALL_OLD", onRefusal: true };

/** One query of the table or an index. */
export interface TableQuery {
  readonly operation: string;
  readonly index?: string;
  readonly condition: string;
  /** Applied after the read (the units are those of every item read, matched or not). */
  readonly filter?: string | undefined;
  readonly values: Record<string, AttributeValue>;
  readonly limit?: number;
  readonly start?: Item | undefined;
  readonly forward?: boolean;
  readonly projection?: string;
  readonly consistent?: boolean;
  /** COUNT answers the number of matches and no items. */
  readonly select?: "COUNT";
}

/**
 * The plumbing every store repeats, once: a get by key value, a conditional put or update that
 * answers false instead of throwing when its condition fails, a query, a batch read. Attribute
 * names are aliased from the expressions (`namesFor`), store failures become
 * `StoreUnavailableError` (`guardStore`), and nothing here knows what an item means.
 */
export class Table {
  readonly #client: DynamoDBClient;
  readonly #name: string;

  constructor(client: DynamoDBClient, name: string) {
    this.#client = client;
    this.#name = name;
  }

  /** The item with this key value, read consistently unless told otherwise; undefined when none. */
  async get(operation: string, key: string, options: { consistent?: boolean; projection?: string } = {}) {
    const { Item: item } = await guardStore(
      operation,
      this.#client.send(
        new GetItemCommand({
          TableName: this.#name,
          Key: keyOf(key),
          ConsistentRead: options.consistent ?? true,
          ...(options.projection
            ? {
                ProjectionExpression: options.projection,
                ExpressionAttributeNames: namesFor(options.projection),
              }
            : {}),
        }),
      ),
    );
    return item;
  }

  /**
   * Items by key value, consistently unless told otherwise, 100 to a call; missing ones absent.
   * `attributes` limits what is read (the key is always read).
   */
  getMany(
    operation: string,
    keys: readonly string[],
    attributes?: readonly string[],
    options: { consistent?: boolean } = {},
  ): Promise<Map<string, Item>> {
    return batchGet(this.#client, this.#name, keys, {
      operation,
      consistent: options.consistent ?? true,
      ...(attributes ? { attributes } : {}),
    });
  }

  /** Puts a whole item if `condition` holds (always when absent); false when it did not. */
  async put(
    operation: string,
    item: Item,
    condition?: string,
    values?: Record<string, AttributeValue>,
  ): Promise<boolean> {
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#name,
          Item: item,
          ...(condition
            ? {
                ConditionExpression: condition,
                ExpressionAttributeNames: namesFor(condition),
                ...(values ? { ExpressionAttributeValues: values } : {}),
              }
            : {}),
        }),
      );
      return true;
    } catch (error) {
      if (isConditionalFailure(error)) return false;
      throw toStoreError(error, operation);
    }
  }

  /**
   * Updates the item with this key value if `condition` holds. `returnOld: true` asks for the old
   * item back: on success (ALL_OLD, undefined when it was created) and when refused, so the caller
   * can name the outcome without another read; {@link UpdateReturns} asks for something else.
   */
  async update(
    operation: string,
    key: string,
    update: string,
    condition: string | undefined,
    values: Record<string, AttributeValue>,
    returnOld: boolean | UpdateReturns = false,
  ): Promise<WriteResult> {
    const returns = returnOld === true ? ALL_OLD : returnOld === false ? {} : returnOld;
    try {
      const result = await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#name,
          Key: keyOf(key),
          UpdateExpression: update,
          ...(condition ? { ConditionExpression: condition } : {}),
          ExpressionAttributeNames: namesFor(update, condition ?? ""),
          ExpressionAttributeValues: values,
          ...(returns.values ? { ReturnValues: returns.values } : {}),
          ...(returns.onRefusal ? { ReturnValuesOnConditionCheckFailure: "ALL_OLD" } : {}),
        }),
      );
      return { ok: true, old: result.Attributes };
    } catch (error) {
      if (isConditionalFailure(error)) return { ok: false, old: (error as { Item?: Item }).Item };
      throw toStoreError(error, operation);
    }
  }

  /** One page of a query. */
  query(q: TableQuery) {
    return guardStore(
      q.operation,
      this.#client.send(
        new QueryCommand({
          TableName: this.#name,
          IndexName: q.index,
          KeyConditionExpression: q.condition,
          // Members left undefined are not sent.
          FilterExpression: q.filter,
          // Stryker disable next-line StringLiteral: any text without a `#` adds no name, as "" does.
          ExpressionAttributeNames: namesFor(q.condition, q.filter ?? "", q.projection ?? ""),
          ExpressionAttributeValues: q.values,
          ProjectionExpression: q.projection,
          Select: q.select,
          Limit: q.limit,
          ExclusiveStartKey: q.start,
          ScanIndexForward: q.forward,
          ConsistentRead: q.consistent,
        }),
      ),
    );
  }

  /** Whether the table answers (DescribeTable: no read units). */
  async ping(operation: string): Promise<void> {
    await guardStore(operation, this.#client.send(new DescribeTableCommand({ TableName: this.#name })));
  }
}
