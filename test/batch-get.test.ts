import {
  type BatchGetItemCommand,
  type BatchGetItemCommandInput,
  type BatchGetItemCommandOutput,
  BatchWriteItemCommand,
  type DynamoDBClient,
} from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { batchGet } from "../src/store/batch-get.js";
import { StoreUnavailableError } from "../src/store/store-errors.js";
import { overriding } from "./support/overriding.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
const STORED = Array.from({ length: 250 }, (_, i) => `S#step_${String(i).padStart(3, "0")}`);

beforeAll(async () => {
  store = await startTestStore();
  for (let i = 0; i < STORED.length; i += 25) {
    await store.client.send(
      new BatchWriteItemCommand({
        RequestItems: {
          [store.tableName]: STORED.slice(i, i + 25).map((pk) => ({
            PutRequest: {
              Item: { pk: { S: pk }, st: { S: "completed" }, run: { S: "run_1" }, doc: { S: "{}" } },
            },
          })),
        },
      }),
    );
  }
});
afterAll(() => store.close());

type Answer = (input: BatchGetItemCommandInput, real: BatchGetItemCommandOutput) => BatchGetItemCommandOutput;

interface Call {
  readonly input: BatchGetItemCommandInput;
  readonly keys: string[];
  /** Date.now() when the call was made (the fake clock's, in the tests that use one). */
  readonly at: number;
}

/**
 * The test store's client, recording every BatchGetItem it is asked for; `answers[n]`, when given,
 * rewrites the real answer to the n-th call (keys DynamoDB left unprocessed, say).
 */
function recordingClient(answers: readonly (Answer | undefined)[] = []) {
  const calls: Call[] = [];
  let inFlight = 0;
  const send = async (command: BatchGetItemCommand) => {
    const index = calls.length;
    const keys = (command.input.RequestItems?.[store.tableName]?.Keys ?? []).map((key) => key.pk?.S ?? "");
    calls.push({ input: command.input, keys, at: Date.now() });
    inFlight++;
    try {
      const real = await store.client.send(command);
      return answers[index]?.(command.input, real) ?? real;
    } finally {
      inFlight--;
    }
  };
  const client = overriding(store.client, { send: send as unknown as DynamoDBClient["send"] });
  return { client, calls, inFlight: () => inFlight };
}

/** DynamoDB read `keep` of the keys and left the others unprocessed. */
function leaveUnprocessed(keep: (key: string) => boolean): Answer {
  return (input, real) => {
    const table = store.tableName;
    const items = real.Responses?.[table] ?? [];
    const unprocessed = (input.RequestItems?.[table]?.Keys ?? []).filter((key) => !keep(key.pk?.S ?? ""));
    return {
      ...real,
      Responses: { [table]: items.filter((item) => keep(item.pk?.S ?? "")) },
      UnprocessedKeys: { [table]: { Keys: unprocessed } },
    };
  };
}

/** DynamoDB read nothing this time: every key unprocessed, and no `Responses` at all (the SDK types it optional). */
const readNothing: Answer = (input, real) => ({
  $metadata: real.$metadata,
  UnprocessedKeys: { [store.tableName]: { Keys: input.RequestItems?.[store.tableName]?.Keys ?? [] } },
});

/**
 * Runs `work` on a fake clock (setTimeout and Date) that jumps to the next timer whenever no call to
 * the store is in flight, so the backoff's seconds take no time and its waits can be read exactly.
 */
async function onFakeClock<T>(inFlight: () => number, work: () => Promise<T>): Promise<T> {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
  try {
    let settled = false;
    const outcome = work().finally(() => {
      settled = true;
    });
    outcome.catch(() => {});
    const giveUp = performance.now() + 5_000;
    while (!settled) {
      if (performance.now() > giveUp) throw new Error("batchGet did not settle");
      if (inFlight() === 0 && vi.getTimerCount() > 0) vi.advanceTimersToNextTimer();
      await new Promise((resolve) => setImmediate(resolve));
    }
    return await outcome;
  } finally {
    vi.useRealTimers();
  }
}

const gaps = (calls: readonly Call[]) => calls.slice(1).map((call, i) => call.at - (calls[i] as Call).at);

describe("batchGet", () => {
  it("reads each key once, 100 to a call, at once; duplicates are read once and missing keys are absent", async () => {
    const missing = ["S#step_x1", "S#step_x2", "S#step_x3"];
    const keys = [...STORED.slice(0, 40), ...missing, ...STORED, ...STORED.slice(200), ...missing];
    const { client, calls } = recordingClient();
    const pending = batchGet(client, store.tableName, keys, { operation: "listRunSteps" });
    expect(calls).toHaveLength(1); // sent before batchGet first yields: no wait before the first call
    const found = await pending;

    expect(calls.map((call) => call.keys.length)).toEqual([100, 100, 53]);
    const requested = calls.flatMap((call) => call.keys);
    expect(requested.sort()).toEqual([...STORED, ...missing].sort());
    expect([...found.keys()].sort()).toEqual(STORED);
    for (const key of STORED) expect(found.get(key)?.pk).toEqual({ S: key });
    // Eventually consistent unless asked (half the read units), every attribute.
    for (const { input } of calls) {
      expect(input.RequestItems?.[store.tableName]).toEqual({
        Keys: expect.any(Array),
        ConsistentRead: false,
      });
    }
  });

  it("reads consistently when asked to", async () => {
    const { client, calls } = recordingClient();
    const found = await batchGet(client, store.tableName, STORED.slice(0, 3), {
      operation: "getDeliveries",
      consistent: true,
    });
    expect(found.size).toBe(3);
    expect(calls.map((call) => call.input.RequestItems?.[store.tableName]?.ConsistentRead)).toEqual([true]);
  });

  it("reads only the attributes asked for, and the key", async () => {
    const { client } = recordingClient();
    const found = await batchGet(client, store.tableName, STORED.slice(0, 2), {
      operation: "listRunSteps",
      attributes: ["st", "run"],
    });
    expect(found.get(STORED[1] as string)).toEqual({
      pk: { S: STORED[1] },
      st: { S: "completed" },
      run: { S: "run_1" },
    });
    const all = await batchGet(client, store.tableName, STORED.slice(0, 1), { operation: "listRunSteps" });
    expect(Object.keys(all.get(STORED[0] as string) ?? {}).sort()).toEqual(["doc", "pk", "run", "st"]);
  });

  it("asks again for the keys left unprocessed, waiting 40 ms, then twice as long each round", async () => {
    const keys = STORED.slice(0, 120);
    const late = new Set(keys.slice(10, 40));
    const { client, calls, inFlight } = recordingClient([
      leaveUnprocessed((key) => !late.has(key)),
      readNothing,
    ]);
    const found = await onFakeClock(inFlight, () =>
      batchGet(client, store.tableName, keys, { operation: "listRunSteps" }),
    );

    expect(calls.map((call) => call.keys.length)).toEqual([100, 30, 30, 20]);
    expect(new Set(calls[1]?.keys)).toEqual(late);
    expect(new Set(calls[2]?.keys)).toEqual(late);
    // The next hundred keys start at once: the backoff is per batch.
    expect(gaps(calls)).toEqual([40, 80, 0]);
    expect([...found.keys()].sort()).toEqual(keys);
  });

  it("gives up after eight rounds with keys still unprocessed: the store counts as unavailable", async () => {
    const { client, calls, inFlight } = recordingClient(Array.from({ length: 20 }, () => readNothing));
    const outcome = onFakeClock(inFlight, () =>
      batchGet(client, store.tableName, STORED.slice(0, 5), { operation: "listQuarantined" }),
    );
    await expect(outcome).rejects.toThrow(StoreUnavailableError);
    await expect(outcome).rejects.toThrow(/^DynamoDB listQuarantined: keys left unprocessed$/);
    expect(calls).toHaveLength(8);
    expect(gaps(calls)).toEqual([40, 80, 160, 320, 640, 1280, 2560]);
  });
});
