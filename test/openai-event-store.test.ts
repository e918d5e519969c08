import { type DynamoDBClient, GetItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newEventRecord, type OpenAiEventRecord } from "../src/domain/openai/openai-event-record.js";
import { createLogger } from "../src/observability/logger.js";
import { ensureTable } from "../src/store/ensure-table.js";
import { decodeDocument, keyOf, shardOf } from "../src/store/item-codec.js";
import {
  eventKey,
  hydrationLeaseKey,
  hydrationPartition,
  OpenAiEventStore,
} from "../src/store/openai-event-store.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { overriding } from "./support/overriding.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// The OpenAI event store on its own against real dynalite (SPEC §9): an event recorded once by its
// id, changed only by the writer that read its version, in the sparse `queue` index while its
// hydration is pending, its session snapshot kept beside it.

const A = TABLE_SCHEMA.attributes;
const SHARDS = TABLE_SCHEMA.hydrationShards;
const T = 1_764_000_000_000;
let store: TestStore;
let seq = 0;
const uid = (prefix: string) => `${prefix}_${seq++}`;

beforeAll(async () => {
  store = await startTestStore("openai-events");
});
afterAll(() => store.close());

/** A store on a table of its own (the backlog and the index are the table's). */
async function freshStore(retentionDays = 0) {
  const tableName = `events-${seq++}`;
  await ensureTable(store.client, tableName, { retentionDays: 0, logger: createLogger("error") });
  return { tableName, events: new OpenAiEventStore({ client: store.client, tableName, retentionDays }) };
}
const shared = (retentionDays = 0) =>
  new OpenAiEventStore({ client: store.client, tableName: store.tableName, retentionDays });

const event = (id: string, receivedAtMs = T, extra: Partial<OpenAiEventRecord> = {}): OpenAiEventRecord => ({
  ...newEventRecord(
    { id, type: "response.completed", kind: "response", subjectId: `resp_of_${id}`, createdAt: 1_764_000 },
    receivedAtMs,
  ),
  ...extra,
});

/** `count` event ids in hydration shard `shard`. */
function idsIn(prefix: string, shard: number, count: number): string[] {
  const ids: string[] = [];
  for (let i = 0; ids.length < count; i++) {
    if (i > count * SHARDS * 50) throw new Error("not enough ids in that shard");
    if (shardOf(`${prefix}_${i}`, SHARDS) === shard) ids.push(`${prefix}_${i}`);
  }
  return ids;
}

async function rawItem(id: string, tableName = store.tableName) {
  const { Item } = await store.client.send(
    new GetItemCommand({ TableName: tableName, Key: keyOf(eventKey(id)), ConsistentRead: true }),
  );
  return Item;
}

describe("keys", () => {
  it("names events, hydration partitions and leases apart from every other item", () => {
    expect(eventKey("evt_1")).toBe("V#evt_1");
    expect(hydrationPartition(3)).toBe("H#3");
    expect(hydrationLeaseKey(5)).toBe("M#lease#~hydrate#5");
  });
});

describe("record", () => {
  it("the first record wins; a redelivery is false and changes nothing", async () => {
    const events = shared();
    const id = uid("evt_first");
    const first = event(id);
    expect(await events.record(first)).toBe(true);
    expect(await events.record({ ...first, type: "response.failed", receivedAtMs: T + 5 })).toBe(false);
    expect(await events.get(id)).toEqual(first);
  });

  it("concurrent records of one id: exactly one is true", async () => {
    const events = shared();
    const id = uid("evt_race");
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => events.record(event(id, T + i))));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it("a pending event's item: every field, in the queue index under its shard due when received, no snapshot, no TTL without retention", async () => {
    const events = shared();
    const id = uid("evt_item");
    await events.record(event(id, T + 7));
    expect(await rawItem(id)).toEqual({
      [A.key]: { S: `V#${id}` },
      [A.eventType]: { S: "response.completed" },
      [A.subjectKind]: { S: "response" },
      [A.stepId]: { S: `resp_of_${id}` },
      [A.createdAt]: { N: "1764000" },
      [A.createdAtMs]: { N: String(T + 7) },
      [A.hydration]: { S: "pending" },
      [A.attempts]: { N: "0" },
      [A.version]: { N: "1" },
      [A.queue]: { S: `H#${shardOf(id, SHARDS)}` },
      [A.queueAt]: { N: String(T + 7) },
    });
  });

  it("a pending event without a next attempt time is due when received", async () => {
    const events = shared();
    const id = uid("evt_no_next");
    await events.record(event(id, T + 3, { nextAttemptMs: null }));
    expect((await rawItem(id))?.[A.queueAt]).toEqual({ N: String(T + 3) });
    expect((await events.get(id))?.nextAttemptMs).toBe(T + 3);
  });

  it("with a retention, the item expires that many days after it was received (whole seconds)", async () => {
    const events = shared(3);
    const id = uid("evt_ttl");
    await events.record(event(id, T + 999));
    expect((await rawItem(id))?.[A.ttl]).toEqual({ N: String(Math.floor((T + 999) / 1000) + 3 * 86_400) });
  });
});

describe("replace", () => {
  it("is conditional on the version its writer read: the stale writer is false and changes nothing", async () => {
    const events = shared();
    const id = uid("evt_replace");
    const first = event(id);
    await events.record(first);
    const retry: OpenAiEventRecord = {
      ...first,
      attempts: 1,
      lastError: "HTTP 503",
      nextAttemptMs: T + 1_000,
      version: 2,
    };
    expect(await events.replace(retry)).toBe(true);
    expect(await events.get(id)).toEqual(retry);
    // Another writer that read version 1 too.
    expect(await events.replace({ ...first, hydration: "not_found", version: 2 })).toBe(false);
    // One that skipped a version.
    expect(await events.replace({ ...retry, attempts: 9, version: 4 })).toBe(false);
    expect(await events.get(id)).toEqual(retry);
    const hydrated: OpenAiEventRecord = {
      ...retry,
      attempts: 2,
      hydration: "hydrated",
      lastError: null,
      nextAttemptMs: null,
      hydratedAtMs: T + 2_000,
      version: 3,
    };
    expect(await events.replace(hydrated)).toBe(true);
    expect(await events.get(id)).toEqual(hydrated);
  });

  it("never creates an event that was not recorded", async () => {
    const events = shared();
    const id = uid("evt_never");
    expect(await events.replace(event(id, T, { version: 2 }))).toBe(false);
    expect(await events.get(id)).toBeNull();
  });

  it("a hydrated item leaves the queue index, keeps its hydration time and the snapshot it was given", async () => {
    const events = shared();
    const id = uid("evt_hydrated");
    const first = event(id, T, { kind: "agent_session", type: "agent.session.idle", subjectId: "sess_1" });
    await events.record(first);
    const snapshot = { id: "sess_1", object: "agent.session", status: "idle", deep: { a: [1, "é", null] } };
    const hydrated: OpenAiEventRecord = {
      ...first,
      attempts: 1,
      hydration: "hydrated",
      nextAttemptMs: null,
      hydratedAtMs: T + 50,
      version: 2,
    };
    expect(await events.replace(hydrated, snapshot)).toBe(true);
    const item = await rawItem(id);
    expect(item).toEqual({
      [A.key]: { S: `V#${id}` },
      [A.eventType]: { S: "agent.session.idle" },
      [A.subjectKind]: { S: "agent_session" },
      [A.stepId]: { S: "sess_1" },
      [A.createdAt]: { N: "1764000" },
      [A.createdAtMs]: { N: String(T) },
      [A.hydration]: { S: "hydrated" },
      [A.attempts]: { N: "1" },
      [A.version]: { N: "2" },
      [A.hydratedAt]: { N: String(T + 50) },
      [A.document]: { S: JSON.stringify(snapshot) },
    });
    expect(decodeDocument(item ?? {})).toEqual(snapshot);
    expect(await events.get(id)).toEqual(hydrated);
    expect(await events.snapshot(id)).toEqual(snapshot);
  });

  it("an error is kept as text; a final state (not_found) leaves the index", async () => {
    const events = shared();
    const id = uid("evt_gone");
    const first = event(id);
    await events.record(first);
    const gone: OpenAiEventRecord = {
      ...first,
      attempts: 1,
      hydration: "not_found",
      lastError: "HTTP 404: No response found",
      nextAttemptMs: null,
      version: 2,
    };
    await events.replace(gone);
    const item = await rawItem(id);
    expect(item?.[A.lastError]).toEqual({ S: "HTTP 404: No response found" });
    expect(item?.[A.queue]).toBeUndefined();
    expect(item?.[A.queueAt]).toBeUndefined();
    expect(await events.get(id)).toEqual(gone);
  });
});

describe("get / getMany / snapshot", () => {
  it("unknown and oversize ids are null or left out, never an error; getMany keeps the order asked", async () => {
    const events = shared();
    const [a, b, c] = [uid("evt_m"), uid("evt_m"), uid("evt_m")] as [string, string, string];
    const records = [event(a, T + 1), event(b, T + 2), event(c, T + 3)];
    await Promise.all(records.map((r) => events.record(r)));
    const huge = "x".repeat(3_000);
    expect(await events.get(uid("evt_unknown"))).toBeNull();
    expect(await events.get(huge)).toBeNull();
    expect(await events.getMany([c, huge, uid("evt_unknown"), a, b])).toEqual([
      records[2],
      records[0],
      records[1],
    ]);
    expect(await events.getMany([])).toEqual([]);
  });

  it("reading an event never reads its snapshot; an event without one, or unknown, has a null snapshot", async () => {
    const events = shared();
    const id = uid("evt_plain");
    await events.record(event(id));
    expect(await events.snapshot(id)).toBeNull();
    expect(await events.snapshot(uid("evt_unknown"))).toBeNull();
    const big = { id: "sess_big", items: Array.from({ length: 200 }, (_, i) => ({ i, text: `item ${i}` })) };
    await events.replace({ ...event(id), hydration: "hydrated", hydratedAtMs: T, version: 2 }, big);
    // Deflated in the store (it is over 1 KB), read back exactly.
    expect((await rawItem(id))?.[A.document]?.B).toBeInstanceOf(Uint8Array);
    expect(await events.snapshot(id)).toEqual(big);
    expect(Object.keys((await events.get(id)) ?? {})).not.toContain("document");
  });

  it("reads back both kinds and every state (next attempt time only while pending)", async () => {
    const events = shared();
    for (const hydration of ["pending", "hydrated", "not_found", "invalid"] as const) {
      const id = uid(`evt_${hydration}`);
      const record = event(id, T, {
        kind: "agent_session",
        hydration,
        nextAttemptMs: hydration === "pending" ? T + 9 : null,
        version: 1,
      });
      await events.record(record);
      expect(await events.get(id)).toEqual(record);
    }
  });
});

describe("findDue", () => {
  it("answers the pending hydrations of one shard due at now (now included, later not), oldest due first, limited; hydrated ones are not there", async () => {
    const { events } = await freshStore();
    const [due, dueNow, later, hydrated, older] = idsIn("evt_due", 2, 5) as [
      string,
      string,
      string,
      string,
      string,
    ];
    const [otherShard] = idsIn("evt_other", 3, 1) as [string];
    const now = T + 10_000;
    await Promise.all([
      events.record(event(due, T, { nextAttemptMs: now - 5 })),
      events.record(event(dueNow, T, { nextAttemptMs: now })),
      events.record(event(later, T, { nextAttemptMs: now + 1 })),
      events.record(event(hydrated, T, { nextAttemptMs: now - 100 })),
      events.record(event(older, T, { nextAttemptMs: now - 50 })),
      events.record(event(otherShard, T, { nextAttemptMs: now - 10 })),
    ]);
    await events.replace(
      event(hydrated, T, { hydration: "hydrated", nextAttemptMs: null, hydratedAtMs: now, version: 2 }),
    );
    expect(await events.findDue(2, now, 10)).toEqual([
      { id: older, dueMs: now - 50 },
      { id: due, dueMs: now - 5 },
      { id: dueNow, dueMs: now },
    ]);
    expect(await events.findDue(2, now, 1)).toEqual([{ id: older, dueMs: now - 50 }]);
    expect(await events.findDue(2, now - 6, 10)).toEqual([{ id: older, dueMs: now - 50 }]);
    expect(await events.findDue(3, now, 10)).toEqual([{ id: otherShard, dueMs: now - 10 }]);
    expect(await events.findDue(4, now, 10)).toEqual([]);
  });
});

describe("backlog", () => {
  it("counts pending hydrations over every shard and the oldest one's arrival; settled ones are not counted", async () => {
    const { events } = await freshStore();
    expect(events.hydrationShards).toBe(SHARDS);
    expect(await events.backlog()).toEqual({ pending: 0, oldestReceivedMs: null });
    const ids = Array.from({ length: SHARDS }, (_, shard) => idsIn(`evt_bl${shard}`, shard, 2)).flat();
    // Arrival times out of order across shards; the oldest is in the last shard.
    const arrivals = ids.map((_, i) => T + 1_000 - i * 10 + (i % 3) * 25);
    await Promise.all(
      ids.map((id, i) => events.record(event(id, arrivals[i], { nextAttemptMs: T + 5_000 }))),
    );
    expect(await events.backlog()).toEqual({ pending: ids.length, oldestReceivedMs: Math.min(...arrivals) });
    // The oldest hydrated: it leaves the count and the age.
    const oldestAt = arrivals.indexOf(Math.min(...arrivals));
    const oldestId = ids[oldestAt] as string;
    await events.replace(
      event(oldestId, arrivals[oldestAt], {
        hydration: "hydrated",
        nextAttemptMs: null,
        hydratedAtMs: T,
        version: 2,
      }),
    );
    const rest = arrivals.filter((_, i) => i !== oldestAt);
    expect(await events.backlog()).toEqual({ pending: ids.length - 1, oldestReceivedMs: Math.min(...rest) });
  });

  it("reads a shard page by page, at most 10 pages: the count stays bounded", async () => {
    const { tableName, events } = await freshStore();
    const ids = idsIn("evt_pages", 6, 12);
    await Promise.all(ids.map((id, i) => events.record(event(id, T + 100 - i))));
    // Pages of one item each, standing in for DynamoDB's 1 MB pages.
    const paged = (perPage: number) =>
      new OpenAiEventStore({
        client: overriding(store.client, {
          send: ((command: Parameters<DynamoDBClient["send"]>[0]) =>
            store.client.send(
              (command instanceof QueryCommand
                ? new QueryCommand({ ...command.input, Limit: perPage })
                : command) as never,
            )) as DynamoDBClient["send"],
        }),
        tableName,
        retentionDays: 0,
      });
    expect(await paged(5).backlog()).toEqual({ pending: 12, oldestReceivedMs: T + 100 - 11 });
    // Ten pages of one: the ten oldest-due (all due when received, so in arrival order).
    expect(await paged(1).backlog()).toEqual({ pending: 10, oldestReceivedMs: T + 100 - 11 });
  });
});
