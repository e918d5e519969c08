import {
  BatchGetItemCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeliveryIntent } from "../src/domain/delivery.js";
import { DynamoStepStore, type DynamoStepStoreOptions } from "../src/store/dynamo-step-store.js";
import {
  decodeCursor,
  encodeCursor,
  encodeDocument,
  type Item,
  keyOf,
  shardOf,
  stepKey,
} from "../src/store/item-codec.js";
import { itemSize, MAX_ITEM_BYTES, valueSize } from "../src/store/item-size.js";
import type { StoredStep } from "../src/store/step-store.js";
import { InvalidCursorError } from "../src/store/store-errors.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { overriding } from "./support/overriding.js";
import { makeStep } from "./support/run-steps.js";
import { idInShard, idOf, snapshot } from "./support/step-snapshots.js";
import {
  type ClientOptions,
  type Sent,
  type StoreWithOutage,
  startStoreWithOutage,
} from "./support/store-with-outage.js";
import type { TestStore } from "./support/test-store.js";

// The step store on its own against real dynalite, method by method: SPEC §4 (the state rules as
// conditional writes, duplicates counted once in the rollup, a run's steps in created_at order),
// README's "Stalled steps" (the watch partitions, their watermarks, one mark however many race),
// reads by id and by run, and what an unreachable store looks like to callers. The listing of
// terminal steps across runs is test/step-store-listing.test.ts.

let store: TestStore;
// It and a stopped twin: calls sent to the twin meet a real refused connection.
let stores: StoreWithOutage;
let seq = 0;
const uid = (what: string) => `${what}_${Date.now().toString(36)}_${seq++}`;

beforeAll(async () => {
  stores = await startStoreWithOutage("step-store");
  store = stores.store;
});
afterAll(() => stores.close());

// A real client that notes every call, may run something just before one (`before`), and sends
// the calls `failing` picks to the stopped store.
const clientWith = (options: ClientOptions = {}) => stores.clientWith(options);

const stepsOn = (client: DynamoDBClient = store.client, options: Partial<DynamoStepStoreOptions> = {}) =>
  new DynamoStepStore({ client, tableName: store.tableName, retentionDays: 0, ...options });

/** The step's item as DynamoDB holds it. */
async function rawItem(stepId: string): Promise<Item | undefined> {
  const { Item: item } = await store.client.send(
    new GetItemCommand({
      TableName: store.tableName,
      Key: { pk: { S: `S#${stepId}` } },
      ConsistentRead: true,
    }),
  );
  return item;
}

const calls = (sent: Sent[]) => sent.map((c) => c.constructor.name.replace("Command", ""));

/** A deterministic stream of numbers in [0, 1): test data that is the same on every run. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

// --- apply ---------------------------------------------------------------------------------------

describe("apply: SPEC §4 as conditional writes", () => {
  it("names what each snapshot did, and keeps the document last applied", async () => {
    const steps = stepsOn();
    const id = uid("step");
    const first = snapshot({ id, metadata: { n: "1" } }, { sentAt: 100 });
    expect(await steps.apply(first)).toEqual({ outcome: "created", stalledAtMs: null });
    expect(await steps.apply(snapshot({ id, metadata: { n: "2" } }, { sentAt: 101 }))).toEqual({
      outcome: "updated",
      stalledAtMs: null,
    });
    // Not later than the stored one: stale, whether equal or earlier.
    expect((await steps.apply(snapshot({ id, metadata: { n: "3" } }, { sentAt: 101 }))).outcome).toBe(
      "stale",
    );
    expect((await steps.apply(snapshot({ id, metadata: { n: "4" } }, { sentAt: 50 }))).outcome).toBe("stale");
    expect((await steps.getStep(id))?.document).toEqual(makeStep({ id, metadata: { n: "2" } }));

    const done = snapshot({ id, status: "completed" }, { sentAt: 10 });
    expect(await steps.apply(done)).toEqual({ outcome: "updated", stalledAtMs: null });
    expect((await steps.apply(done)).outcome).toBe("unchanged");
    expect((await steps.apply(snapshot({ id }, { sentAt: 1_000 }))).outcome).toBe("stale");
    expect((await steps.apply(snapshot({ id, status: "failed" }))).outcome).toBe("conflict");
    expect((await steps.apply(snapshot({ id, status: "expired" }))).outcome).toBe("conflict");
    const stored = await steps.getStep(id);
    expect(stored).toMatchObject({ status: "completed", document: makeStep({ id, status: "completed" }) });
    // Each conflict is counted on the step, which stays as it was.
    expect(stored?.conflicts).toBe(2);
  });

  it("a terminal snapshot of a step never seen is created", async () => {
    const id = uid("step");
    expect(await stepsOn().apply(snapshot({ id, status: "failed" }))).toEqual({
      outcome: "created",
      stalledAtMs: null,
    });
    expect((await stepsOn().getStep(id))?.status).toBe("failed");
  });

  it("a stale in_progress snapshot costs its one refused write and nothing more", async () => {
    const id = uid("step");
    await stepsOn().apply(snapshot({ id }, { sentAt: 200 }));
    const sent: Sent[] = [];
    expect((await stepsOn(clientWith({ sent })).apply(snapshot({ id }, { sentAt: 100 }))).outcome).toBe(
      "stale",
    );
    expect(calls(sent)).toEqual(["UpdateItem"]);
  });

  it("a refused terminal snapshot is named from the stored status: asked of the refusal, else read consistently", async () => {
    const id = uid("step");
    await stepsOn().apply(snapshot({ id, status: "cancelled" }));
    const sent: Sent[] = [];
    const steps = stepsOn(clientWith({ sent }));
    expect((await steps.apply(snapshot({ id, status: "cancelled" }))).outcome).toBe("unchanged");
    // DynamoDB returns the stored item with the refusal when asked; dynalite does not, so the
    // status is read (consistently: a refusal a moment after the write must see it).
    expect((sent[0] as UpdateItemCommand).input.ReturnValuesOnConditionCheckFailure).toBe("ALL_OLD");
    expect(calls(sent)).toEqual(["UpdateItem", "GetItem"]);
    expect((sent[1] as GetItemCommand).input.ConsistentRead).toBe(true);
    sent.length = 0;
    expect((await steps.apply(snapshot({ id, status: "completed" }))).outcome).toBe("conflict");
    expect(calls(sent)).toEqual(["UpdateItem", "GetItem", "UpdateItem"]);
  });

  it("a terminal transition records the sinks it owes; an in_progress snapshot owes none, whatever it is handed", async () => {
    const id = uid("step");
    const intents: DeliveryIntent[] = [
      { sink: "slack", event: "run_step.completed" },
      { sink: "hook", event: "run_step.completed" },
    ];
    await stepsOn().apply(snapshot({ id }, { intents }));
    expect((await stepsOn().getStep(id))?.owedSinks).toEqual([]);
    await stepsOn().apply(snapshot({ id, status: "completed" }, { intents }));
    expect((await stepsOn().getStep(id))?.owedSinks).toEqual(["hook", "slack"]);

    const none = uid("step");
    await stepsOn().apply(snapshot({ id: none, status: "completed" }));
    expect((await stepsOn().getStep(none))?.owedSinks).toEqual([]);
  });

  it("a step's usage is the last applied snapshot's: one without usage takes the tokens away", async () => {
    const run = uid("run");
    const id = uid("step");
    const usage = { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 };
    await stepsOn().apply(snapshot({ id, run_id: run, usage }, { sentAt: 1 }));
    expect((await stepsOn().getRunRollup(run))?.usage).toEqual(usage);
    await stepsOn().apply(snapshot({ id, run_id: run, usage: null }, { sentAt: 2 }));
    expect((await stepsOn().getRunRollup(run))?.usage).toEqual({
      prompt_tokens: 0,
      completion_tokens: 0,
      total_tokens: 0,
    });
  });

  it("RETENTION_DAYS: a step expires (ttl, Unix seconds) that many days after its last update; 0 keeps it for ever", async () => {
    const id = uid("step");
    const kept = stepsOn(store.client, { retentionDays: 7 });
    await kept.apply(snapshot({ id }, { sentAt: 1, receivedAt: 1_764_000_000 }));
    expect((await rawItem(id))?.ttl).toEqual({ N: String(1_764_000_000 + 7 * 86_400) });
    await kept.apply(snapshot({ id, status: "completed" }, { receivedAt: 1_764_000_500 }));
    expect((await rawItem(id))?.ttl).toEqual({ N: String(1_764_000_500 + 7 * 86_400) });

    const forever = uid("step");
    await stepsOn().apply(snapshot({ id: forever }));
    await stepsOn().apply(snapshot({ id: forever, status: "completed" }));
    const item = await rawItem(forever);
    expect(item?.st).toEqual({ S: "completed" });
    expect(item).not.toHaveProperty("ttl");
  });
});

describe("apply: DynamoDB's 400 KB item limit, decided before the write", () => {
  // Random letters: deflate can shrink them only so far, so the stored (deflated) document grows
  // with every few letters added and the item crosses the limit between two neighbouring pads.
  const letters = (count: number, seed: number) => {
    const random = seeded(seed);
    return Array.from({ length: count }, () => String.fromCharCode(97 + Math.floor(random() * 26))).join("");
  };

  it("MAX_ITEM_BYTES is the line: the largest document that fits is stored, the next one up is refused with its size", async () => {
    const id = uid("step_size");
    const text = letters(650_000, 7);
    const document = (pad: number) => makeStep({ id, text, pad: letters(pad, 11) });
    const apply = (pad: number) => stepsOn().apply(snapshot({ id }, { document: document(pad) }));
    // The store's own size of a padded item, or null when it fits (then it is stored: deleted after).
    const refusedBytes = async (pad: number): Promise<number | null> => {
      const error = await apply(pad).then(
        () => null,
        (error: unknown) => error,
      );
      if (error === null) return null;
      expect(error).toMatchObject({ name: "ItemTooLargeError", limit: MAX_ITEM_BYTES });
      return (error as { bytes: number }).bytes;
    };
    // Largest pad that fits, by bisection between one that fits (0) and one that does not.
    let fits = 0;
    let over = 40_000;
    const overBytes = await refusedBytes(over);
    expect(overBytes).toBeGreaterThan(MAX_ITEM_BYTES);
    expect(await stepsOn().getStep(id)).toBeNull();
    while (over - fits > 1) {
      const mid = Math.floor((fits + over) / 2);
      const bytes = await refusedBytes(mid);
      if (bytes === null) {
        fits = mid;
        await store.client.send(
          new DeleteItemCommand({ TableName: store.tableName, Key: keyOf(stepKey(id)) }),
        );
      } else over = mid;
    }
    const refused = await apply(over).catch((error: unknown) => error);
    const bytes = (refused as { bytes: number }).bytes;
    expect(bytes).toBeGreaterThan(MAX_ITEM_BYTES);
    // One letter more deflates to at most a few bytes more: the refusal is right at the line.
    expect(bytes).toBeLessThanOrEqual(MAX_ITEM_BYTES + 8);
    expect((refused as Error).message).toBe(
      `the stored item would be ${bytes} bytes; DynamoDB keeps at most ${MAX_ITEM_BYTES} bytes per item`,
    );
    expect((await apply(fits)).outcome).toBe("created");
    expect((await stepsOn().getStep(id))?.document).toEqual(document(fits));
  });

  it("a deflated document just over the limit under the longest step id is refused by the store, not by DynamoDB", async () => {
    // A 512-byte id of 3-byte characters, its run, thread and assistant alike: what a quick
    // estimate per character could get wrong is largest here.
    const wide = (n: number, offset: number) =>
      String.fromCharCode(...Array.from({ length: n }, (_, i) => 0x4e00 + offset + i));
    const same = {
      run_id: wide(4, 200),
      thread_id: wide(4, 300),
      assistant_id: wide(4, 400),
      status: "completed",
    };
    // The item as DynamoDB counts it, less its document: from a step of the same sizes stored
    // with a small one.
    const twin = { ...same, id: wide(170, 1) };
    await stepsOn().apply(snapshot(twin));
    const small = (await rawItem(twin.id)) as Item;
    const rest = itemSize(small) - valueSize(small.doc as never);
    const ids = { ...same, id: wide(170, 0) };

    // Random base64 text: stored deflated, about 3 bytes for 4 characters. Grown until DynamoDB
    // would hold just over 400 KB.
    const random = seeded(11);
    const noise = Buffer.from(Array.from({ length: 420_000 }, () => Math.floor(random() * 256))).toString(
      "base64",
    );
    const document = (chars: number) => makeStep({ ...ids, noise: noise.slice(0, chars) });
    const stored = (chars: number) => rest + (encodeDocument(document(chars)).B?.byteLength ?? Number.NaN);
    // About 3 bytes for 4 characters: a guess, then a correction or two.
    let chars = Math.round(((MAX_ITEM_BYTES + 32 - rest) * 4) / 3);
    let size = stored(chars);
    for (let i = 0; i < 10 && (size <= MAX_ITEM_BYTES || size > MAX_ITEM_BYTES + 64); i++) {
      chars += Math.round(((MAX_ITEM_BYTES + 32 - size) * 4) / 3);
      size = stored(chars);
    }
    expect(size).toBeGreaterThan(MAX_ITEM_BYTES);
    expect(size).toBeLessThanOrEqual(MAX_ITEM_BYTES + 64);
    await expect(stepsOn().apply(snapshot(ids, { document: document(chars) }))).rejects.toMatchObject({
      name: "ItemTooLargeError",
    });
    expect(await stepsOn().getStep(ids.id)).toBeNull();
  });
});

// --- the stalled-step watchdog's store ------------------------------------------------------------

const WATCH_SHARDS = TABLE_SCHEMA.watchShards;

// Each test watches at a time of its own, so no other test's steps are due in its windows.
let watchClock = 1_900_000_000_000;
const watchTime = () => {
  watchClock += 100_000_000;
  return watchClock;
};

describe("stall watch: README's Stalled steps", () => {
  it("a step's first in_progress apply makes it due STALL_AFTER_S later; later snapshots and its terminal apply leave that as it is", async () => {
    const t0 = watchTime();
    const id = uid("step_watch");
    const shard = shardOf(id, TABLE_SCHEMA.watchShards);
    const at = (ms: number) => stepsOn(store.client, { stallAfterS: 600, nowMs: () => ms });
    await at(t0).apply(snapshot({ id }, { sentAt: 1 }));
    const due = [{ stepId: id, dueMs: t0 + 600_000 }];
    expect(await at(t0).dueForWatch(shard, t0, t0 + 10_000_000, 10, null)).toEqual(due);
    expect((await at(t0 + 5_000).apply(snapshot({ id }, { sentAt: 2 }))).outcome).toBe("updated");
    await at(t0 + 9_000).apply(snapshot({ id, status: "completed" }));
    expect(await at(t0).dueForWatch(shard, t0, t0 + 10_000_000, 10, null)).toEqual(due);

    // Terminal from the start, or with the watchdog off (0, the default): never watched.
    const done = idInShard(uid("step_done"), shard, WATCH_SHARDS);
    await at(t0 + 1).apply(snapshot({ id: done, status: "completed" }));
    const off = idInShard(uid("step_off"), shard, WATCH_SHARDS);
    await stepsOn(store.client, { nowMs: () => t0 + 2 }).apply(snapshot({ id: off }));
    expect(await at(t0).dueForWatch(shard, t0, t0 + 10_000_000, 10, null)).toEqual(due);
  });

  it("dueForWatch reads (watermark, upTo], oldest first, a page at a time after the last one read", async () => {
    const t0 = watchTime();
    const shard = 5;
    const prefix = uid("step_due");
    const ids = [0, 1, 2, 3].map((i) => idInShard(`${prefix}${i}`, shard, WATCH_SHARDS));
    const due = [t0 + 1_000, t0 + 2_000, t0 + 2_000, t0 + 3_000];
    for (const [i, id] of ids.entries()) {
      await stepsOn(store.client, { stallAfterS: 1, nowMs: () => (due[i] as number) - 1_000 }).apply(
        snapshot({ id }),
      );
    }
    const steps = stepsOn();
    const read = await steps.dueForWatch(shard, t0, t0 + 3_000, 10, null);
    expect(read.map((w) => w.dueMs)).toEqual(due);
    expect(read.map((w) => w.stepId).sort()).toEqual([...ids].sort());
    // Both ends: the watermark's own time was looked at already, upTo is included.
    expect((await steps.dueForWatch(shard, t0 + 1_000, t0 + 2_000, 10, null)).map((w) => w.dueMs)).toEqual([
      t0 + 2_000,
      t0 + 2_000,
    ]);
    // Two steps share a due time: pages of one still give each step once.
    const paged: string[] = [];
    let after: { stepId: string; dueMs: number } | null = null;
    for (let page = 0; page < 10; page++) {
      const got = await steps.dueForWatch(shard, t0, t0 + 3_000, 1, after);
      if (got.length === 0) break;
      expect(got).toHaveLength(1);
      paged.push(...got.map((w) => w.stepId));
      after = got.at(-1) ?? null;
    }
    expect(paged).toEqual(read.map((w) => w.stepId));
  });

  it("dueForWatch up to the watermark or before it reads nothing, and asks DynamoDB nothing", async () => {
    const t0 = watchTime();
    const shard = 6;
    const id = idInShard(uid("step_nothing"), shard, WATCH_SHARDS);
    await stepsOn(store.client, { stallAfterS: 1, nowMs: () => t0 - 1_000 }).apply(snapshot({ id }));
    const sent: Sent[] = [];
    const steps = stepsOn(clientWith({ sent }));
    expect(await steps.dueForWatch(shard, t0, t0, 10, null)).toEqual([]);
    expect(await steps.dueForWatch(shard, t0, t0 - 1, 10, null)).toEqual([]);
    expect(sent).toEqual([]);
    expect(await steps.dueForWatch(shard, t0 - 1, t0, 10, null)).toEqual([{ stepId: id, dueMs: t0 }]);
  });

  it("a watermark starts at 0 and moves only from where the caller read it: one of two sweepers wins", async () => {
    const shard = 11;
    const sent: Sent[] = [];
    const steps = stepsOn(clientWith({ sent }));
    expect(await steps.watermark(shard)).toBe(0);
    expect((sent[0] as GetItemCommand).input.ConsistentRead).toBe(true);
    expect(await steps.advanceWatermark(shard, 0, 100)).toBe(true);
    expect(await steps.watermark(shard)).toBe(100);
    // A second sweeper that read 0 too: refused, and the watermark stays.
    expect(await steps.advanceWatermark(shard, 0, 200)).toBe(false);
    expect(await steps.watermark(shard)).toBe(100);
    expect(await steps.advanceWatermark(shard, 100, 300)).toBe(true);
    expect(await steps.watermark(shard)).toBe(300);
    // Each partition has its own.
    expect(await steps.watermark(12)).toBe(0);
  });

  it("markStalled marks a step still in progress once, however many race; never a terminal, unknown or impossible one", async () => {
    const id = uid("step_stall");
    await stepsOn().apply(snapshot({ id }));
    const marks = await Promise.all([1, 2, 3, 4, 5].map((i) => stepsOn().markStalled(id, 5_000 + i)));
    expect(marks.filter(Boolean)).toHaveLength(1);
    const markedAt = 5_001 + marks.indexOf(true);
    expect((await stepsOn().getStep(id))?.stalledAtMs).toBe(markedAt);
    expect(await stepsOn().markStalled(id, 9_000)).toBe(false);
    // Its terminal apply reports the stall, so the notification can say so.
    expect(await stepsOn().apply(snapshot({ id, status: "failed" }))).toEqual({
      outcome: "updated",
      stalledAtMs: markedAt,
    });

    const done = uid("step_stall_done");
    await stepsOn().apply(snapshot({ id: done, status: "completed" }));
    expect(await stepsOn().markStalled(done, 5_000)).toBe(false);
    expect((await stepsOn().getStep(done))?.stalledAtMs).toBeNull();
    expect(await stepsOn().markStalled(uid("step_never"), 5_000)).toBe(false);
    const sent: Sent[] = [];
    expect(await stepsOn(clientWith({ sent })).markStalled("x".repeat(3_000), 5_000)).toBe(false);
    expect(sent).toEqual([]);
  });
});

// --- reads ---------------------------------------------------------------------------------------

describe("getStep and getSteps", () => {
  it("read steps strongly consistently, by id; an unknown id, or one no key could hold, is simply not there", async () => {
    const [a, b] = [uid("step_get"), uid("step_get")];
    await stepsOn().apply(snapshot({ id: a }, { receivedAt: 1_764_000_100 }));
    await stepsOn().apply(snapshot({ id: b, status: "expired" }, { receivedAt: 1_764_000_200 }));
    const sent: Sent[] = [];
    const steps = stepsOn(clientWith({ sent }));
    expect(await steps.getStep(a)).toEqual({
      document: makeStep({ id: a }),
      status: "in_progress",
      receivedAt: 1_764_000_100,
      updatedAt: 1_764_000_100,
      conflicts: 0,
      owedSinks: [],
      stalledAtMs: null,
    });
    expect(await steps.getStep(uid("step_unknown"))).toBeNull();
    expect(calls(sent)).toEqual(["GetItem", "GetItem"]);
    expect(sent.map((c) => (c as GetItemCommand).input.ConsistentRead)).toEqual([true, true]);

    sent.length = 0;
    expect(await steps.getStep("x".repeat(3_000))).toBeNull();
    expect(sent).toEqual([]);

    const found = await steps.getSteps([a, uid("step_unknown"), b, "x".repeat(3_000)]);
    expect([...found.keys()].sort()).toEqual([a, b].sort());
    expect(found.get(b)).toMatchObject({
      status: "expired",
      document: makeStep({ id: b, status: "expired" }),
    });
    expect(calls(sent)).toEqual(["BatchGetItem"]);
    const batch = (sent[0] as BatchGetItemCommand).input.RequestItems?.[store.tableName];
    expect(batch?.ConsistentRead).toBe(true);
    expect(await steps.getSteps([])).toEqual(new Map());
  });
});

describe("listRunSteps: a run's steps in created_at order", () => {
  it("pages through them by created_at, then id, each once", async () => {
    const run = uid("run_list");
    const created = [300, 100, 200, 100, 400];
    const ids = created.map((_, i) => `${run}_step${i}`);
    await Promise.all(
      ids.map((id, i) => stepsOn().apply(snapshot({ id, run_id: run, created_at: created[i] }))),
    );
    // A step of another run is not listed.
    await stepsOn().apply(snapshot({ id: uid("step_other"), run_id: uid("run_other"), created_at: 150 }));
    const expected = [ids[1], ids[3], ids[2], ids[0], ids[4]];
    const steps = stepsOn();
    expect((await steps.listRunSteps(run, 10, null)).items.map(idOf)).toEqual(expected);
    const paged: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const got: { items: readonly StoredStep[]; nextCursor: string | null } = await steps.listRunSteps(
        run,
        2,
        cursor,
      );
      paged.push(...got.items.map(idOf));
      cursor = got.nextCursor;
      if (!cursor) break;
    }
    expect(paged).toEqual(expected);
    expect(cursor).toBeNull();
    expect(await steps.listRunSteps(uid("run_none"), 10, null)).toEqual({ items: [], nextCursor: null });
  });

  it("a cursor continues only the run it came from, and only as it was handed out", async () => {
    const run = uid("run_cursor");
    await Promise.all(
      [1, 2, 3].map((i) => stepsOn().apply(snapshot({ id: `${run}_s${i}`, run_id: run, created_at: i }))),
    );
    const { nextCursor } = await stepsOn().listRunSteps(run, 1, null);
    const cursor = nextCursor as string;
    const refused = async (runId: string, bad: string, message: string) => {
      const listing = stepsOn().listRunSteps(runId, 1, bad);
      await expect(listing).rejects.toThrow(InvalidCursorError);
      await expect(listing).rejects.toThrow(message);
    };
    await refused(uid("run_else"), cursor, "cursor belongs to another run");
    const notOurs = "cursor is not one this API returned";
    const position = decodeCursor(cursor) as [string, string, string];
    expect(position[0]).toBe(run);
    await refused(run, "bm90LWEtY3Vyc29y", notOurs);
    await refused(run, encodeCursor({ before: position[1] }), notOurs);
    await refused(run, encodeCursor(position.slice(0, 2)), notOurs);
    await refused(run, encodeCursor([...position, "more"]), notOurs);
    await refused(run, encodeCursor([7, position[1], position[2]]), notOurs);
    await refused(run, encodeCursor([run, 7, position[2]]), notOurs);
    await refused(run, encodeCursor([run, position[1], null]), notOurs);
    await refused(run, encodeCursor([run, "x".repeat(1_100), position[2]]), notOurs);
    await refused(run, encodeCursor([run, position[1], "x".repeat(2_100)]), notOurs);
    const longRun = "r".repeat(2_100);
    await refused(longRun, encodeCursor([longRun, position[1], position[2]]), notOurs);
    // The cursor as handed out still works.
    expect((await stepsOn().listRunSteps(run, 5, cursor)).items.map(idOf)).toEqual([
      `${run}_s2`,
      `${run}_s3`,
    ]);
  });
});

describe("reads of what the index lists but the table no longer holds", () => {
  it("a step deleted (its retention over) between the index read and the documents' read is left out", async () => {
    const run = uid("run_gone");
    const ids = [1, 2, 3].map((i) => `${run}_s${i}`);
    const atMs = watchTime();
    await Promise.all(
      ids.map((id, i) =>
        stepsOn(store.client, { nowMs: () => atMs + i }).apply(
          snapshot({ id, run_id: run, created_at: i, status: "expired", assistant_id: run }),
        ),
      ),
    );
    const deleting = (stepId: string) =>
      clientWith({
        before: async (command) => {
          if (!(command instanceof BatchGetItemCommand)) return;
          await store.client.send(
            new DeleteItemCommand({ TableName: store.tableName, Key: { pk: { S: `S#${stepId}` } } }),
          );
        },
      });
    const listed = await stepsOn(deleting(ids[1] as string)).listRunSteps(run, 10, null);
    expect(listed.items.map(idOf)).toEqual([ids[0], ids[2]]);
    const terminal = await stepsOn(deleting(ids[2] as string)).listTerminal({
      statuses: ["expired"],
      sinceMs: atMs,
      untilMs: atMs + 10,
      assistantId: run,
      limit: 10,
      cursor: null,
    });
    expect(terminal.items.map(idOf)).toEqual([ids[0]]);
  });
});

describe("getRunRollup: SPEC §4's rollup, each step counted once", () => {
  const usage = (p: number, c: number) => ({ prompt_tokens: p, completion_tokens: c, total_tokens: p + c });
  let seeded: Promise<string> | undefined;
  // One run: five steps, delivered more than once, two of them created in the same second.
  const aRun = () => {
    seeded ??= (async () => {
      const run = uid("run_rollup");
      const steps = stepsOn();
      const apply = (fields: Record<string, unknown>, receivedAt: number, sentAt = 1) =>
        steps.apply(snapshot({ run_id: run, ...fields }, { receivedAt, sentAt }));
      const first = { id: `${run}_a`, created_at: 50, thread_id: "thread_first", assistant_id: "asst_first" };
      const tied = { id: `${run}_b`, created_at: 50, thread_id: "thread_tie", assistant_id: "asst_tie" };
      await apply({ ...first, status: "failed", usage: usage(10, 20) }, 1_010);
      await apply({ ...first, status: "failed", usage: usage(10, 20) }, 1_011);
      await apply(tied, 990);
      await apply(tied, 991);
      await apply({ id: `${run}_c`, created_at: 100, thread_id: "thread_later" }, 1_000);
      const completedC = {
        id: `${run}_c`,
        created_at: 100,
        thread_id: "thread_later",
        status: "completed",
        usage: usage(1, 2),
      };
      await apply(completedC, 1_030);
      // The same completion again (a duplicate): counted once.
      await apply(completedC, 1_040);
      await apply({ id: `${run}_d`, created_at: 200, status: "cancelled", usage: null }, 1_020);
      await apply({ id: `${run}_e`, created_at: 300, status: "expired", usage: usage(100, 0) }, 1_025);
      return run;
    })();
    return seeded;
  };
  const expected = (run: string) => ({
    runId: run,
    threadId: "thread_first",
    assistantId: "asst_first",
    steps: { total: 5, in_progress: 1, completed: 1, failed: 1, cancelled: 1, expired: 1 },
    usage: { prompt_tokens: 111, completion_tokens: 22, total_tokens: 133 },
    firstCreatedAt: 50,
    lastUpdatedAt: 1_030,
  });

  it("counts by status, sums the tokens, and names the thread and assistant of the run's first step", async () => {
    const run = await aRun();
    expect(await stepsOn().getRunRollup(run)).toEqual(expected(run));
    expect(await stepsOn().getRunRollup(uid("run_unknown"))).toBeNull();
  });

  it("reads every page of the index: a run larger than one page still counts whole", async () => {
    const run = await aRun();
    // DynamoDB ends a page after 1 MB (some 10,000 steps here): pages of two stand for that.
    let queries = 0;
    const paging = overriding(store.client, {
      send: (async (command: Sent) => {
        if (!(command instanceof QueryCommand)) throw new Error("the rollup only queries");
        if (++queries > 10) throw new Error("still reading after ten pages");
        return store.client.send(new QueryCommand({ ...command.input, Limit: 2 }));
      }) as DynamoDBClient["send"],
    });
    expect(await stepsOn(paging).getRunRollup(run)).toEqual(expected(run));
    expect(queries).toBe(3);
  });
});

/** Applies a terminal snapshot at the given Unix ms. */
const terminalAt = (atMs: number, id: string, fields: Record<string, unknown> = {}) =>
  stepsOn(store.client, { nowMs: () => atMs }).apply(snapshot({ id, status: "cancelled", ...fields }));

// --- an unreachable store ----------------------------------------------------------------------

describe("an unreachable store", () => {
  const unavailable = (operation: string) =>
    expect.objectContaining({
      name: "StoreUnavailableError",
      message: expect.stringMatching(new RegExp(`^DynamoDB ${operation} failed: `)),
    });
  const failing = (Command: new (...args: never[]) => unknown, expression?: RegExp) =>
    stepsOn(
      clientWith({
        failing: (command) =>
          command instanceof Command &&
          (expression === undefined ||
            expression.test(String((command as UpdateItemCommand).input.UpdateExpression))),
      }),
    );

  it("is reported as StoreUnavailableError naming the call that failed, for every write", async () => {
    const id = uid("step_down");
    await expect(failing(UpdateItemCommand).apply(snapshot({ id }))).rejects.toEqual(unavailable("apply"));
    expect(await stepsOn().getStep(id)).toBeNull();
    await stepsOn().apply(snapshot({ id, status: "completed" }));
    // A refused terminal apply reads the stored status, then counts a conflict.
    await expect(failing(GetItemCommand).apply(snapshot({ id, status: "completed" }))).rejects.toEqual(
      unavailable("readStatus"),
    );
    await expect(
      failing(UpdateItemCommand, /^ADD /).apply(snapshot({ id, status: "failed" })),
    ).rejects.toEqual(unavailable("countConflict"));
    expect((await stepsOn().getStep(id))?.conflicts).toBe(0);

    const open = uid("step_down");
    await stepsOn().apply(snapshot({ id: open }));
    await expect(failing(UpdateItemCommand).markStalled(open, 1_000)).rejects.toEqual(
      unavailable("markStalled"),
    );
    expect((await stepsOn().getStep(open))?.stalledAtMs).toBeNull();
    await expect(failing(UpdateItemCommand).advanceWatermark(13, 0, 1)).rejects.toEqual(
      unavailable("advanceWatchWatermark"),
    );
    expect(await stepsOn().watermark(13)).toBe(0);
  });

  it("is reported as StoreUnavailableError naming the call that failed, for every read", async () => {
    const t0 = watchTime();
    const run = uid("run_down");
    const id = `${run}_s`;
    await terminalAt(t0, id, { run_id: run, assistant_id: run });
    const listing = { statuses: ["cancelled"], sinceMs: t0, untilMs: t0, limit: 5, cursor: null } as const;
    // A listing reads its index, then the documents: either failing fails it. (All at once: each
    // waits out the client's retry.)
    const reads: [Promise<unknown>, string][] = [
      [failing(GetItemCommand).getStep(id), "getStep"],
      [failing(BatchGetItemCommand).getSteps([id]), "getSteps"],
      [failing(QueryCommand).listRunSteps(run, 5, null), "listRunSteps"],
      [failing(BatchGetItemCommand).listRunSteps(run, 5, null), "listRunSteps"],
      [failing(QueryCommand).getRunRollup(run), "getRunRollup"],
      [failing(QueryCommand).listTerminal(listing), "listTerminal"],
      [failing(BatchGetItemCommand).listTerminal(listing), "listTerminal"],
      [failing(QueryCommand).dueForWatch(0, 0, 1, 5, null), "dueForWatch"],
      [failing(GetItemCommand).watermark(0), "readWatchWatermark"],
      [failing(DescribeTableCommand).ping(), "ping"],
    ];
    await Promise.all(reads.map(([read, operation]) => expect(read).rejects.toEqual(unavailable(operation))));
    // Reachable again: every read answers.
    await stepsOn().ping();
    expect((await stepsOn().listTerminal(listing)).items.map(idOf)).toEqual([id]);
  });
});
