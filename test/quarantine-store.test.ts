import {
  BatchGetItemCommand,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
} from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { QuarantinedRequest } from "../src/domain/quarantined-request.js";
import { DynamoQuarantineStore } from "../src/store/dynamo-quarantine-store.js";
import { encodeCursor } from "../src/store/item-codec.js";
import { InvalidCursorError } from "../src/store/store-errors.js";
import { overriding } from "./support/overriding.js";
import {
  itemReads,
  type Sent,
  type StoreWithOutage,
  startStoreWithOutage,
} from "./support/store-with-outage.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// The store's contract, tested on its own against real dynalite: what README's "Quarantine: nothing
// signed is lost" promises (every part of a refused signed request kept and read back, one record per
// webhook-id, replayed once, gone when it expires) and what /metrics relies on (a bounded count).

let store: TestStore;
// It and a stopped twin: calls sent to the twin meet a real refused connection.
let stores: StoreWithOutage;
let seq = 0;

beforeAll(async () => {
  stores = await startStoreWithOutage("quarantine-store");
  store = stores.store;
});
afterAll(() => stores.close());

// A real client that sends the calls `failing` picks to the stopped store, and notes every call.
const clientWith = (failing: (command: Sent) => boolean, sent: Sent[] = []) =>
  stores.clientWith({ failing, sent });

const quarantineOn = (client: DynamoDBClient, nowMs?: () => number) =>
  new DynamoQuarantineStore({
    client,
    tableName: store.tableName,
    ...(nowMs ? { nowMs } : {}),
  });

const NOW_S = Math.floor(Date.now() / 1000);

const record = (overrides: Partial<QuarantinedRequest> = {}): QuarantinedRequest => {
  const n = seq++;
  return {
    id: `q_${Date.now().toString(16)}${String(n).padStart(6, "0")}`,
    receivedAtMs: Date.now() + n,
    expiresAt: NOW_S + 14 * 86_400,
    webhookId: `msg_store_${n}`,
    webhookTimestamp: NOW_S - 30,
    headers: {
      "webhook-id": `msg_store_${n}`,
      "webhook-timestamp": String(NOW_S - 30),
      "webhook-signature": "v1,c2lnbmF0dXJl",
      "content-type": "application/json; charset=utf-8",
    },
    bodyBytes: 5,
    refusal: {
      status: 422,
      code: "invalid_payload",
      message: "not a valid run step event",
      issues: [
        { path: "created_at", message: "must be a number" },
        { path: "usage.total_tokens", message: "must be an integer" },
      ],
    },
    replay: null,
    version: 1,
    ...overrides,
  };
};

describe("quarantine store: what is kept reads back", () => {
  const quarantine = () => quarantineOn(store.client);

  it("every field of a refused request, and its raw body bytes (not UTF-8 either)", async () => {
    const kept = record();
    const body = new Uint8Array([0xff, 0x00, 0x7b, 0x80, 0x0a]);
    await quarantine().keep(kept, body);
    expect(await quarantine().get(kept.id)).toEqual(kept);
    expect(await quarantine().body(kept.id)).toEqual(body);
    const listed = await quarantine().list(100, null);
    expect(listed.items.find((r) => r.id === kept.id)).toEqual(kept);
  });

  it("a 400 without issues and an empty body (an empty signed POST) are kept as they were", async () => {
    const kept = record({
      headers: {},
      bodyBytes: 0,
      refusal: { status: 400, code: "invalid_json", message: "", issues: [] },
    });
    await quarantine().keep(kept, new Uint8Array(0));
    expect(await quarantine().get(kept.id)).toEqual(kept);
    expect(await quarantine().body(kept.id)).toEqual(new Uint8Array(0));
  });

  it("nothing was kept under an unknown id: no record and no body", async () => {
    expect(await quarantine().get("q_00000000000000000000000000")).toBeNull();
    expect(await quarantine().body("q_00000000000000000000000000")).toBeNull();
  });

  it("a sender's retry of a kept message leaves the first record and body as they were", async () => {
    const first = record();
    await quarantine().keep(first, new Uint8Array([1]));
    await quarantine().keep(
      { ...first, receivedAtMs: first.receivedAtMs + 5_000, refusal: { ...first.refusal, message: "again" } },
      new Uint8Array([1]),
    );
    expect(await quarantine().get(first.id)).toEqual(first);
  });

  it("a second request under the same webhook-id with another body replaces neither the record nor its body", async () => {
    const first = record({ bodyBytes: 3 });
    await quarantine().keep(first, new Uint8Array([1, 2, 3]));
    const second = {
      ...first,
      receivedAtMs: first.receivedAtMs + 5_000,
      headers: { ...first.headers, "webhook-signature": "v1,c2Vjb25k" },
      bodyBytes: 5,
    };
    await quarantine().keep(second, new Uint8Array([9, 9, 9, 9, 9]));
    // The kept signature and body_bytes describe the kept body: the first request's, all of it.
    expect(await quarantine().get(first.id)).toEqual(first);
    expect(await quarantine().body(first.id)).toEqual(new Uint8Array([1, 2, 3]));
  });
});

describe("quarantine store: replay, once", () => {
  const quarantine = () => quarantineOn(store.client);

  it("marking a record replayed keeps the replay and moves its version on by one", async () => {
    const kept = record();
    await quarantine().keep(kept, new Uint8Array([1]));
    const replay = { atMs: Date.now(), stepId: "step_replayed", outcome: "created" };
    expect(await quarantine().markReplayed(kept, replay)).toBe(true);
    expect(await quarantine().get(kept.id)).toEqual({ ...kept, replay, version: kept.version + 1 });
  });

  it("a second replay from the same read is refused (false) and changes nothing: two operators, one replay", async () => {
    const kept = record();
    await quarantine().keep(kept, new Uint8Array([1]));
    const first = { atMs: Date.now(), stepId: "step_a", outcome: "created" };
    expect(await quarantine().markReplayed(kept, first)).toBe(true);
    expect(await quarantine().markReplayed(kept, { ...first, stepId: "step_b" })).toBe(false);
    const now = await quarantine().get(kept.id);
    expect(now).toEqual({ ...kept, replay: first, version: 2 });
    // From the record as it is now, the version matches again.
    const delta = { atMs: first.atMs + 1, stepId: null, outcome: "acknowledged" };
    expect(await quarantine().markReplayed(now as QuarantinedRequest, delta)).toBe(true);
    expect(await quarantine().get(kept.id)).toEqual({ ...kept, replay: delta, version: 3 });
  });
});

describe("quarantine store: expiry", () => {
  it("a record and its body are gone from the moment they expire, before DynamoDB's TTL deletes them", async () => {
    const kept = record({ expiresAt: NOW_S + 60 });
    await quarantineOn(store.client).keep(kept, new Uint8Array([7]));
    const expiresMs = kept.expiresAt * 1000;

    const before = quarantineOn(store.client, () => expiresMs - 1);
    expect(await before.get(kept.id)).toEqual(kept);
    expect(await before.body(kept.id)).toEqual(new Uint8Array([7]));
    expect((await before.list(100, null)).items.map((r) => r.id)).toContain(kept.id);

    const at = quarantineOn(store.client, () => expiresMs);
    expect(await at.get(kept.id)).toBeNull();
    expect(await at.body(kept.id)).toBeNull();
    expect((await at.list(100, null)).items.map((r) => r.id)).not.toContain(kept.id);
    // Deleting what has expired removes it, and reports it as not there.
    expect(await at.delete(kept.id)).toBe(false);
    expect(await before.get(kept.id)).toBeNull();
  });

  it("a delete removes the record and its body, and says whether there was one", async () => {
    const kept = record();
    await quarantineOn(store.client).keep(kept, new Uint8Array([1, 2]));
    expect(await quarantineOn(store.client).delete(kept.id)).toBe(true);
    expect(await quarantineOn(store.client).get(kept.id)).toBeNull();
    expect(await quarantineOn(store.client).body(kept.id)).toBeNull();
    expect(await quarantineOn(store.client).delete(kept.id)).toBe(false);
  });
});

describe("quarantine store: listing", () => {
  it("reads records strongly consistently, so one kept or replayed a moment ago reads as written", async () => {
    const sent: Sent[] = [];
    const quarantine = quarantineOn(clientWith(() => false, sent));
    const kept = record();
    await quarantine.keep(kept, new Uint8Array([1]));
    sent.length = 0;
    await quarantine.get(kept.id);
    await quarantine.body(kept.id);
    await quarantine.list(5, null);
    expect(itemReads(sent, store.tableName)).toEqual([
      { name: "GetItemCommand", consistent: true },
      { name: "GetItemCommand", consistent: true },
      { name: "BatchGetItemCommand", consistent: true },
    ]);
  });

  it("refuses a cursor of another list with the message the API answers 400 with", async () => {
    const another = encodeCursor({ pk: { S: "S#step_1" }, q: { S: "P#hook#0" }, qt: { N: "1" } });
    const listing = quarantineOn(store.client).list(10, another);
    await expect(listing).rejects.toThrow(InvalidCursorError);
    await expect(listing).rejects.toThrow("cursor is not one this API returned");
  });
});

describe("quarantine store: count (the /metrics gauge)", () => {
  // A table of its own holding ten records, kept by the first test that needs them (inside it, not
  // in a hook, so that what keep runs counts for that test alone).
  let counting: TestStore;
  let seeded: Promise<void> | undefined;
  beforeAll(async () => {
    counting = await startTestStore("quarantine-count");
  });
  afterAll(() => counting.close());
  const tenKept = () => {
    const quarantine = new DynamoQuarantineStore({ client: counting.client, tableName: counting.tableName });
    seeded ??= Promise.all(
      Array.from({ length: 10 }, (_, i) => quarantine.keep(record(), new Uint8Array([i]))),
    ).then(() => undefined);
    return seeded;
  };

  // DynamoDB ends a page after 1 MB of keys (some 10,000 records here): pages ending after `perPage`
  // keys let ten records stand for that. Each query's count of keys read is noted in `read`.
  const countingOn = (perPage: number, read: number[]) =>
    new DynamoQuarantineStore({
      tableName: counting.tableName,
      client: overriding(counting.client, {
        send: (async (command: Sent) => {
          if (!(command instanceof QueryCommand)) throw new Error("count only queries");
          const limit = Math.min(command.input.Limit ?? perPage, perPage);
          const result = await counting.client.send(new QueryCommand({ ...command.input, Limit: limit }));
          read.push(result.Count ?? Number.NaN);
          return result;
        }) as DynamoDBClient["send"],
      }),
    });

  it("counts every record kept", async () => {
    await tenKept();
    const read: number[] = [];
    expect(await countingOn(1_000, read).count(10_000)).toBe(10);
    expect(read).toEqual([10]);
  });

  it("stops at max, having read no more keys than that", async () => {
    await tenKept();
    for (const max of [1, 3, 9, 10]) {
      const read: number[] = [];
      expect(await countingOn(1_000, read).count(max)).toBe(max);
      expect(read).toEqual([max]);
    }
  });

  it("goes on from where each page ended", async () => {
    await tenKept();
    const read: number[] = [];
    expect(await countingOn(3, read).count(9)).toBe(9);
    expect(read).toEqual([3, 3, 3]);
  });

  it("asks the last page for only what max still allows", async () => {
    await tenKept();
    const read: number[] = [];
    expect(await countingOn(4, read).count(6)).toBe(6);
    expect(read).toEqual([4, 2]);
  });

  it("reads at most four pages, then reports what it has: a scrape stays cheap however many there are", async () => {
    await tenKept();
    const read: number[] = [];
    expect(await countingOn(2, read).count(10_000)).toBe(8);
    expect(read).toEqual([2, 2, 2, 2]);
  });

  it("ends at the last page, however few pages that is", async () => {
    await tenKept();
    const read: number[] = [];
    expect(await countingOn(6, read).count(10_000)).toBe(10);
    expect(read).toEqual([6, 4]);
  });
});

describe("quarantine store: an unreachable store", () => {
  const is = (Command: new (...args: never[]) => unknown, key?: string) => (command: Sent) =>
    command instanceof Command && (key === undefined || JSON.stringify(command.input).includes(`"${key}"`));
  const unavailable = (operation: string) =>
    expect.objectContaining({
      name: "StoreUnavailableError",
      message: expect.stringMatching(new RegExp(`^DynamoDB ${operation} failed: `)),
    });

  it("is reported as StoreUnavailableError naming the call that failed, for every read", async () => {
    const kept = record();
    await quarantineOn(store.client).keep(kept, new Uint8Array([1]));
    await expect(quarantineOn(clientWith(is(GetItemCommand))).get(kept.id)).rejects.toEqual(
      unavailable("getQuarantined"),
    );
    await expect(quarantineOn(clientWith(is(GetItemCommand))).body(kept.id)).rejects.toEqual(
      unavailable("getQuarantinedBody"),
    );
    await expect(quarantineOn(clientWith(is(QueryCommand))).list(5, null)).rejects.toEqual(
      unavailable("listQuarantined"),
    );
    // The records' keys were listed, then reading the records failed.
    await expect(quarantineOn(clientWith(is(BatchGetItemCommand))).list(5, null)).rejects.toEqual(
      unavailable("listQuarantined"),
    );
    await expect(quarantineOn(clientWith(is(QueryCommand))).count(5)).rejects.toEqual(
      unavailable("countQuarantined"),
    );
  });

  it("fails a keep whichever of its two writes fails, so the sender is answered 503 and retries", async () => {
    const kept = record();
    await expect(
      quarantineOn(clientWith(is(PutItemCommand, `Q#${kept.id}#body`))).keep(kept, new Uint8Array([1])),
    ).rejects.toEqual(unavailable("keepQuarantinedBody"));
    expect(await quarantineOn(store.client).get(kept.id)).toBeNull();

    await expect(
      quarantineOn(clientWith(is(PutItemCommand, `Q#${kept.id}`))).keep(kept, new Uint8Array([1])),
    ).rejects.toEqual(unavailable("keepQuarantined"));
    expect(await quarantineOn(store.client).get(kept.id)).toBeNull();
    // The sender's retry keeps it.
    await quarantineOn(store.client).keep(kept, new Uint8Array([1]));
    expect(await quarantineOn(store.client).get(kept.id)).toEqual(kept);
  });

  it("when only the first body was kept (its record write failed), another body neither replaces it nor gets a record", async () => {
    const first = record({ bodyBytes: 1 });
    await expect(
      quarantineOn(clientWith(is(PutItemCommand, `Q#${first.id}`))).keep(first, new Uint8Array([1])),
    ).rejects.toEqual(unavailable("keepQuarantined"));
    await quarantineOn(store.client).keep({ ...first, bodyBytes: 2 }, new Uint8Array([2, 2]));
    expect(await quarantineOn(store.client).get(first.id)).toBeNull();
    expect(await quarantineOn(store.client).body(first.id)).toEqual(new Uint8Array([1]));
    // The first sender's retry (the same body) completes it.
    await quarantineOn(store.client).keep(first, new Uint8Array([1]));
    expect(await quarantineOn(store.client).get(first.id)).toEqual(first);
    expect(await quarantineOn(store.client).body(first.id)).toEqual(new Uint8Array([1]));
  });
  it("fails a replay's mark rather than reporting it as already replayed", async () => {
    const kept = record();
    await quarantineOn(store.client).keep(kept, new Uint8Array([1]));
    await expect(
      quarantineOn(clientWith(is(PutItemCommand))).markReplayed(kept, {
        atMs: Date.now(),
        stepId: "step_x",
        outcome: "created",
      }),
    ).rejects.toEqual(unavailable("markReplayed"));
    expect(await quarantineOn(store.client).get(kept.id)).toEqual(kept);
  });

  it("fails a delete whichever of its two deletes fails", async () => {
    const kept = record();
    await quarantineOn(store.client).keep(kept, new Uint8Array([1]));
    await expect(
      quarantineOn(clientWith(is(DeleteItemCommand, `Q#${kept.id}`))).delete(kept.id),
    ).rejects.toEqual(unavailable("deleteQuarantined"));
    expect(await quarantineOn(store.client).get(kept.id)).toEqual(kept);
    await expect(
      quarantineOn(clientWith(is(DeleteItemCommand, `Q#${kept.id}#body`))).delete(kept.id),
    ).rejects.toEqual(unavailable("deleteQuarantinedBody"));
    expect(await quarantineOn(store.client).get(kept.id)).toBeNull();
  });
});
