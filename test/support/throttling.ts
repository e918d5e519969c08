import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { expect } from "vitest";
import { overriding } from "./overriding.js";
import type { TestStore } from "./test-store.js";

/** A test store whose DynamoDB client can be switched to answer as a throttled table does. */
export interface ThrottleableStore {
  /** The real store, its client wrapped: hand it to `createTestApp`. */
  readonly store: TestStore;
  /** While true, every call fails with DynamoDB's ThrottlingException (after the SDK's own retries). */
  throttled: boolean;
  /** Runs `body` with the store throttled, and lets it answer again afterwards whatever happened. */
  whileThrottled(body: () => Promise<void>): Promise<void>;
}

/** What every route answers while the store throttles: 503 store_unavailable, retry in 5 s. */
export function expectStoreUnavailable(
  answer: { status: number; headers: Headers; body: unknown },
  label?: string,
): void {
  expect(answer, label).toMatchObject({ status: 503, body: { error: { code: "store_unavailable" } } });
  expect(answer.headers.get("retry-after")).toBe("5");
}

/** Wraps `real` so that its client can be throttled on demand. */
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
    async whileThrottled(body) {
      state.throttled = true;
      try {
        await body();
      } finally {
        state.throttled = false;
      }
    },
  };
  return state;
}
