import {
  BatchGetItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
} from "@aws-sdk/client-dynamodb";
import { overriding } from "./overriding.js";
import { startTestStore, type TestStore } from "./test-store.js";

/** A command as a DynamoDB client is handed it. */
export type Sent = Parameters<DynamoDBClient["send"]>[0];

/** How a client from {@link StoreWithOutage.clientWith} treats each call. */
export interface ClientOptions {
  /** Notes every call, in order. */
  readonly sent?: Sent[];
  /** Runs just before a call is sent (to hold it, or to interleave another writer). */
  readonly before?: (command: Sent) => Promise<void>;
  /** Sends the calls it picks to the stopped store: a real refused connection. */
  readonly failing?: (command: Sent) => boolean;
  /** Ends every query's page after this many items, standing in for DynamoDB's 1 MB pages. */
  readonly perPage?: number;
}

/** A running test store and a stopped one, for store classes tested against real dynalite. */
export interface StoreWithOutage {
  readonly store: TestStore;
  /** A real client of `store` that treats calls as `options` say. */
  clientWith(options?: ClientOptions): DynamoDBClient;
  close(): Promise<void>;
}

/** Starts both stores (`name` names their tables) and stops the second at once. */
export async function startStoreWithOutage(name: string): Promise<StoreWithOutage> {
  const [store, down] = await Promise.all([startTestStore(name), startTestStore(`${name}-down`)]);
  await down.stop();
  return {
    store,
    clientWith: (options = {}) =>
      overriding(store.client, {
        send: (async (command: Sent) => {
          options.sent?.push(command);
          await options.before?.(command);
          if (options.failing?.(command)) return down.client.send(command as never);
          if (options.perPage !== undefined && command instanceof QueryCommand) {
            const limit = Math.min(command.input.Limit ?? options.perPage, options.perPage);
            return store.client.send(new QueryCommand({ ...command.input, Limit: limit }));
          }
          return store.client.send(command as never);
        }) as DynamoDBClient["send"],
      }),
    close: async () => {
      await Promise.all([store.close(), down.close()]);
    },
  };
}

/**
 * The item reads among `sent` (GetItem, BatchGetItem of `table`), each as its command's name and
 * whether it asked for a strongly consistent read (dynalite is always consistent: only the request
 * shows it).
 */
export function itemReads(sent: readonly Sent[], table: string): { name: string; consistent: boolean }[] {
  return sent.flatMap((command) => {
    if (!(command instanceof GetItemCommand) && !(command instanceof BatchGetItemCommand)) return [];
    const input = command.input as { ConsistentRead?: boolean; RequestItems?: Record<string, unknown> };
    const asked = input.RequestItems
      ? (input.RequestItems[table] as { ConsistentRead?: boolean } | undefined)?.ConsistentRead
      : input.ConsistentRead;
    return [{ name: command.constructor.name, consistent: asked === true }];
  });
}
