import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { overriding } from "./overriding.js";
import type { TestStore } from "./test-store.js";

/** A test store whose DynamoDB client can be switched to answer as a throttled table does. */
export interface ThrottleableStore {
  /** The real store, its client wrapped: hand it to `createTestApp`. */
  readonly store: TestStore;
  /** While true, every call fails with DynamoDB's ThrottlingException (after the SDK's own retries). */
  throttled: boolean;
}

export function throttleable(real: TestStore): ThrottleableStore {
  const state: ThrottleableStore = {
    store: {
      ...real,
      client: overriding(real.client, {
        send: ((...args: Parameters<DynamoDBClient["send"]>) => {
          if (!state.throttled) return real.client.send(...args);
          const error = Object.assign(new Error("Rate of requests exceeds the allowed throughput."), {
            name: "ThrottlingException",
            $metadata: { httpStatusCode: 400 },
          });
          return Promise.reject(error);
        }) as DynamoDBClient["send"],
      }),
    },
    throttled: false,
  };
  return state;
}
