import {
  BatchGetItemCommand,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type QueryCommandInput,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Delivery, newDelivery, refOf, STALLED_EVENT } from "../src/domain/delivery.js";
import { RunStepSchema, type TerminalStatus } from "../src/domain/run-step-schema.js";
import { createLogger } from "../src/observability/logger.js";
import { DynamoDeliveryStore } from "../src/store/dynamo-delivery-store.js";
import { DynamoStepStore } from "../src/store/dynamo-step-store.js";
import { ensureTable } from "../src/store/ensure-table.js";
import {
  deliveryKey,
  encodeCursor,
  keyOf,
  outboxSortKey,
  shardLeaseKey,
  shardOf,
  stepKey,
  watermarkKey,
} from "../src/store/item-codec.js";
import { InvalidCursorError } from "../src/store/store-errors.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { makeStep } from "./support/run-steps.js";
import {
  type ClientOptions,
  itemReads,
  type Sent,
  type StoreWithOutage,
  startStoreWithOutage,
} from "./support/store-with-outage.js";
import type { TestStore } from "./support/test-store.js";

// The delivery store on its own against real dynalite: what src/store/delivery-store.ts promises
// each caller (the notifier's sweeps and probes, the operator API, /metrics), at its bounds, under
// concurrent writers and when the store is unreachable. SPEC §6 (durable delivery, sweepers fenced
// by conditional leases) and README's "Delivery" and "Operator actions" are what it serves.

const A = TABLE_SCHEMA.attributes;
const SHARDS = TABLE_SCHEMA.queueShards;
const T = 1_764_000_000_000;

let store: TestStore;
// It and a stopped twin: calls sent to the twin meet a real refused connection.
let stores: StoreWithOutage;
let seq = 0;
const sinkName = (what: string) => `${what}_${seq++}`;

beforeAll(async () => {
  stores = await startStoreWithOutage("delivery-store");
  store = stores.store;
});
afterAll(() => stores.close());

/** A real client that notes every call, may hold one (`before`), or send it to the stopped store. */
const clientWith = (options: ClientOptions = {}) => stores.clientWith(options);

const deliveriesOn = (
  client: DynamoDBClient = store.client,
  options: { tableName?: string; nowMs?: () => number; random?: () => number } = {},
) =>
  new DynamoDeliveryStore({
    client,
    tableName: options.tableName ?? store.tableName,
    retentionDays: 0,
    ...(options.nowMs ? { nowMs: options.nowMs } : {}),
    ...(options.random ? { random: options.random } : {}),
  });

/** `count` step ids whose deliveries land in queue shard `shard`. */
function idsIn(prefix: string, shard: number, count: number, shards: number = SHARDS): string[] {
  const ids: string[] = [];
  for (let i = 0; ids.length < count; i++) {
    if (i > count * shards * 50) throw new Error("not enough ids in that shard");
    if (shardOf(`${prefix}_${i}`, shards) === shard) ids.push(`${prefix}_${i}`);
  }
  return ids;
}

const pending = (sink: string, stepId: string, dueMs: number, extra: Partial<Delivery> = {}): Delivery => ({
  ...newDelivery(
    { sink, event: "run_step.completed" },
    { kind: "run_step", id: stepId, runId: "run_store" },
    dueMs,
  ),
  ...extra,
});
const stallNotice = (sink: string, stepId: string, dueMs: number): Delivery =>
  newDelivery({ sink, event: STALLED_EVENT }, { kind: "run_step", id: stepId, runId: "run_store" }, dueMs);
const dead = (sink: string, stepId: string, diedMs: number): Delivery => ({
  ...pending(sink, stepId, diedMs - 1_000),
  state: "dead",
  attempts: 1,
  lastError: "HTTP 400",
  nextAttemptMs: null,
  log: [{ attempt: 1, at: diedMs, status: 400, latencyMs: 12, error: "HTTP 400" }],
});
const delivered = (sink: string, stepId: string, atMs: number): Delivery => ({
  ...pending(sink, stepId, atMs),
  state: "delivered",
  attempts: 1,
  nextAttemptMs: null,
  log: [{ attempt: 1, at: atMs, status: 200, latencyMs: 5, error: null }],
});

async function created(...deliveries: Delivery[]): Promise<void> {
  const results = await Promise.all(deliveries.map((d) => deliveriesOn().create(d)));
  if (!results.every(Boolean)) throw new Error("a delivery already existed");
}

const ref = (d: Delivery) => refOf(d);
const queries = (sent: readonly Sent[]): QueryCommandInput[] =>
  sent.flatMap((c) => (c instanceof QueryCommand ? [c.input as QueryCommandInput] : []));
const partitionsOf = (inputs: readonly QueryCommandInput[]) =>
  inputs.map((input) => input.ExpressionAttributeValues?.[":q"]?.S);

const unavailable = (operation: string) =>
  expect.objectContaining({
    name: "StoreUnavailableError",
    message: expect.stringMatching(new RegExp(`^DynamoDB ${operation} failed: `)),
  });
const is =
  (...Commands: Array<new (...args: never[]) => unknown>) =>
  (command: Sent) =>
    Commands.some((Command) => command instanceof Command);

describe("create and get: one delivery per (step, sink, kind)", () => {
  it("create writes a delivery that does not exist yet, and it reads back whole; a second create is refused and changes nothing", async () => {
    const sink = sinkName("create");
    const first: Delivery = {
      ...pending(sink, "step_create", T + 5_000, { createdAtMs: T }),
      attempts: 2,
      scheduleBase: 1,
      lastError: "HTTP 503",
      log: [
        { attempt: 1, at: T, status: null, latencyMs: 1_000, error: "timed out" },
        { attempt: 2, at: T + 2_000, status: 503, latencyMs: 40, error: "HTTP 503" },
      ],
      version: 3,
    };
    expect(await deliveriesOn().create(first)).toBe(true);
    expect(await deliveriesOn().get(ref(first))).toEqual(first);
    expect(await deliveriesOn().create({ ...first, state: "dead", nextAttemptMs: null })).toBe(false);
    expect(await deliveriesOn().get(ref(first))).toEqual(first);
  });

  it("replace needs a stored delivery at next.version − 1: nothing stored, nothing replaced", async () => {
    const sink = sinkName("replace");
    const next = { ...delivered(sink, "step_never", T), version: 1 };
    expect(await deliveriesOn().replace(next)).toBe(false);
    expect(await deliveriesOn().get(ref(next))).toBeNull();
    await created(pending(sink, "step_never", T));
    expect(await deliveriesOn().replace(next)).toBe(true);
    expect(await deliveriesOn().get(ref(next))).toEqual(next);
  });

  it("a step's stall notice and its terminal notification to one sink are two deliveries", async () => {
    const sink = sinkName("kinds");
    const notice = stallNotice(sink, "step_kinds", T);
    await created(notice);
    expect(await deliveriesOn().get({ kind: "run_step" as const, subjectId: "step_kinds", sink })).toBeNull();
    expect(
      await deliveriesOn().get({ kind: "run_step" as const, subjectId: "step_kinds", sink, stalled: true }),
    ).toEqual(notice);
    const terminal = pending(sink, "step_kinds", T + 1);
    await created(terminal);
    expect(await deliveriesOn().get({ kind: "run_step" as const, subjectId: "step_kinds", sink })).toEqual(
      terminal,
    );
  });

  it("getMany: in the order asked, the missing ones left out", async () => {
    const sink = sinkName("many");
    const a = pending(sink, "step_many_a", T);
    const b = dead(sink, "step_many_b", T);
    const notice = stallNotice(sink, "step_many_a", T);
    await created(a, b, notice);
    const found = await deliveriesOn().getMany([
      ref(b),
      { kind: "run_step" as const, subjectId: "step_many_missing", sink },
      ref(notice),
      ref(a),
    ]);
    expect(found).toEqual([b, notice, a]);
    expect(await deliveriesOn().getMany([])).toEqual([]);
  });

  it("a key DynamoDB could never hold (a step id past its 2048 bytes) was never stored: not found, without asking", async () => {
    const sink = sinkName("long");
    const kept = pending(sink, "step_short", T);
    await created(kept);
    const longId = `step_${"ü".repeat(1_100)}`;
    const sent: Sent[] = [];
    const deliveries = deliveriesOn(clientWith({ sent }));
    expect(await deliveries.get({ kind: "run_step" as const, subjectId: longId, sink })).toBeNull();
    expect(sent).toEqual([]);
    expect(
      await deliveries.getMany([{ kind: "run_step" as const, subjectId: longId, sink }, ref(kept)]),
    ).toEqual([kept]);
    // Only the key that could be stored is asked for.
    const [batch] = sent as [BatchGetItemCommand];
    expect(batch.input.RequestItems?.[store.tableName]?.Keys).toEqual([
      keyOf(deliveryKey({ kind: "run_step", sink: sink, subjectId: "step_short" })),
    ]);
  });

  it("reads deliveries and documents strongly consistently, so what another instance just wrote is what it reads", async () => {
    const sink = sinkName("consistent");
    const kept = dead(sink, "step_consistent", T);
    await created(kept);
    const sent: Sent[] = [];
    const deliveries = deliveriesOn(clientWith({ sent }));
    await deliveries.get(ref(kept));
    await deliveries.getMany([ref(kept)]);
    await deliveries.subjects([{ kind: "run_step", subjectId: "step_consistent" }]);
    await deliveries.deadBetween(sink, T, T, 10);
    expect(itemReads(sent, store.tableName)).toEqual([
      { name: "GetItemCommand", consistent: true },
      { name: "BatchGetItemCommand", consistent: true },
      { name: "BatchGetItemCommand", consistent: true },
      { name: "BatchGetItemCommand", consistent: true },
    ]);
  });
});

describe("documents: what a notification is rendered from", () => {
  const steps = () =>
    new DynamoStepStore({ client: store.client, tableName: store.tableName, retentionDays: 0 });
  const apply = (document: Record<string, unknown>) =>
    steps().apply({
      step: v.parse(RunStepSchema, document),
      document,
      sentAt: 1_764_000_100,
      receivedAt: 1_764_000_100,
      intents: [],
    });

  it("each stored step's document as applied, and when it was found stalled (null if never); unknown steps absent", async () => {
    const done = makeStep({ id: "step_doc_done", status: "completed", metadata: { k: "ü ✓" } });
    const slow = makeStep({ id: "step_doc_slow" });
    await apply(done);
    await apply(slow);
    expect(await steps().markStalled("step_doc_slow", T + 7)).toBe(true);
    const refs = ["step_doc_slow", "step_doc_unknown", "step_doc_done"].map((subjectId) => ({
      kind: "run_step" as const,
      subjectId,
    }));
    const documents = await deliveriesOn().subjects(refs);
    expect([...documents.keys()].sort()).toEqual(["run_step:step_doc_done", "run_step:step_doc_slow"]);
    expect(documents.get("run_step:step_doc_done")).toEqual({ document: done, stalledAtMs: null });
    expect(documents.get("run_step:step_doc_slow")).toEqual({ document: slow, stalledAtMs: T + 7 });
    expect(await deliveriesOn().subjects([])).toEqual(new Map());
    // Another kind's subject is read from its own item: a step of the same id is not it.
    expect(await deliveriesOn().subjects([{ kind: "response", subjectId: "step_doc_done" }])).toEqual(
      new Map(),
    );
  });
});

describe("findDue: what a sweeper works through", () => {
  it("a sink's pending deliveries of one shard due at nowMs (due exactly then included), oldest due first, stall notices told apart", async () => {
    const sink = sinkName("due");
    const [a, b, c, d] = idsIn("due", 5, 4) as [string, string, string, string];
    const [elsewhere] = idsIn("due_x", 2, 1) as [string];
    await created(
      pending(sink, a, T - 10),
      pending(sink, b, T),
      pending(sink, c, T + 1),
      stallNotice(sink, d, T - 5),
      dead(sink, d, T - 50),
      pending(sink, elsewhere, T - 20),
      pending(sinkName("other"), a, T - 30),
    );
    expect(await deliveriesOn().findDue(sink, 5, T, 100)).toEqual([
      { kind: "run_step" as const, subjectId: a, sink, stalled: false, dueMs: T - 10 },
      { kind: "run_step" as const, subjectId: d, sink, stalled: true, dueMs: T - 5 },
      { kind: "run_step" as const, subjectId: b, sink, stalled: false, dueMs: T },
    ]);
    expect(await deliveriesOn().findDue(sink, 2, T, 100)).toEqual([
      { kind: "run_step" as const, subjectId: elsewhere, sink, stalled: false, dueMs: T - 20 },
    ]);
    expect(await deliveriesOn().findDue(sink, 5, T - 11, 100)).toEqual([]);
  });

  it("pages of at most `limit`, each going on right after the last one of the previous, however many share a due time", async () => {
    const sink = sinkName("pages");
    const ids = idsIn("pages", 3, 4);
    // Seven deliveries, six of them due at the same moment: a page can end anywhere among them.
    const all = [
      ...ids.map((id) => pending(sink, id, T)),
      ...ids.slice(0, 2).map((id) => stallNotice(sink, id, T)),
    ];
    await created(...all, pending(sink, idsIn("pages_late", 3, 1)[0] as string, T - 1));
    const everything = await deliveriesOn().findDue(sink, 3, T, 100);
    expect(everything).toHaveLength(7);
    const pages: number[] = [];
    const seen: unknown[] = [];
    let after: (typeof everything)[number] | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await deliveriesOn().findDue(sink, 3, T, 2, after);
      if (page.length === 0) break;
      pages.push(page.length);
      seen.push(...page);
      after = page.at(-1);
    }
    expect(pages).toEqual([2, 2, 2, 1]);
    expect(seen).toEqual(everything);
  });
});

describe("leases: one holder at a time", () => {
  it("a lease's version is one more at each taking; it is held through untilMs itself and free after, or once given back", async () => {
    const key = shardLeaseKey(sinkName("lease"), 4);
    const deliveries = deliveriesOn();
    // Given back before it was ever taken: nothing to do, and no error.
    await deliveries.releaseLease(key, 1);
    expect(await deliveries.acquireLease(key, T + 1_000, T)).toBe(1);
    expect(await deliveries.acquireLease(key, T + 2_000, T + 1_000)).toBeNull();
    expect(await deliveries.acquireLease(key, T + 2_000, T + 1_001)).toBe(2);
    await deliveries.releaseLease(key, 2);
    expect(await deliveries.acquireLease(key, T + 9_000, T + 1_002)).toBe(3);
    expect(await deliveries.acquireLease(key, T + 9_000, T + 1_003)).toBeNull();
  });
});

describe("list: pending or dead deliveries, page by page", () => {
  it("sink after sink, each sink's shards in turn (due order within one), only the state asked for", async () => {
    const [one, two] = [sinkName("list_one"), sinkName("list_two")];
    const [a1, a2] = idsIn("list_a", 6, 2) as [string, string];
    const [b] = idsIn("list_b", 0, 1) as [string];
    const [c] = idsIn("list_c", 7, 1) as [string];
    const rows = {
      twoB: pending(two, b, T + 3),
      oneA2: pending(one, a2, T + 1),
      oneA1: pending(one, a1, T + 2),
      oneC: pending(one, c, T),
      oneDeadB: dead(one, b, T),
      twoDeadC: dead(two, c, T + 9),
    };
    await created(...Object.values(rows), delivered(one, idsIn("list_d", 6, 1)[0] as string, T));
    const sent: Sent[] = [];
    const page = await deliveriesOn(clientWith({ sent })).list("pending", [one, two], 100, null);
    expect(page).toEqual({ items: [rows.oneA2, rows.oneA1, rows.oneC, rows.twoB], nextCursor: null });
    // Every shard of each sink, once, in order: nothing past the last shard or the last sink.
    expect(partitionsOf(queries(sent))).toEqual(
      [one, two].flatMap((sink) => Array.from({ length: SHARDS }, (_, shard) => `P#${sink}#${shard}`)),
    );
    expect(await deliveriesOn().list("dead", [two, one], 100, null)).toEqual({
      items: [rows.twoDeadC, rows.oneDeadB],
      nextCursor: null,
    });
    expect(await deliveriesOn().list("pending", [], 100, null)).toEqual({ items: [], nextCursor: null });
  });

  it("a page holds at most `limit`, and its cursor goes on where it ended, across shards and sinks, until a null cursor", async () => {
    const [one, two] = [sinkName("paged_one"), sinkName("paged_two")];
    const listed = [
      ...idsIn("paged_a", 1, 3).map((id, i) => pending(one, id, T + i)),
      ...idsIn("paged_b", 4, 1).map((id) => pending(one, id, T)),
      ...idsIn("paged_c", 0, 2).map((id, i) => pending(two, id, T + i)),
    ];
    await created(...listed);
    const sent: Sent[] = [];
    const pages: Array<readonly Delivery[]> = [];
    let cursor: string | null = null;
    for (let i = 0; i < 10; i++) {
      const page = await deliveriesOn(clientWith({ sent })).list("pending", [one, two], 2, cursor);
      pages.push(page.items);
      cursor = page.nextCursor;
      if (cursor === null) break;
    }
    // Pages end within a shard, across shards, at a sink's end; the page after the last full one is empty.
    expect(pages.map((page) => page.length)).toEqual([2, 2, 2, 0]);
    expect(pages.flat()).toEqual(listed);
    // Each query asks only for what its page still lacks.
    expect(queries(sent).every((input) => input.Limit === 1 || input.Limit === 2)).toBe(true);
    expect(queries(sent).some((input) => input.Limit === 1)).toBe(true);
  });

  it("a page full within a shard says so in its cursor; one that fills at a shard's end goes on from the next shard", async () => {
    const sink = sinkName("cursor");
    const [a, b] = idsIn("cursor_a", 2, 2) as [string, string];
    const [c] = idsIn("cursor_c", 5, 1) as [string];
    await created(pending(sink, a, T), pending(sink, b, T + 1), pending(sink, c, T));
    const first = await deliveriesOn().list("pending", [sink], 1, null);
    expect(first.items.map((d) => d.subjectId)).toEqual([a]);
    const second = await deliveriesOn().list("pending", [sink], 1, first.nextCursor);
    expect(second.items.map((d) => d.subjectId)).toEqual([b]);
    const sent: Sent[] = [];
    const third = await deliveriesOn(clientWith({ sent })).list("pending", [sink], 1, second.nextCursor);
    expect(third.items).toEqual([
      await deliveriesOn().get({ kind: "run_step" as const, subjectId: c, sink }),
    ]);
    expect(partitionsOf(queries(sent))).toEqual([2, 3, 4, 5].map((shard) => `P#${sink}#${shard}`));
    // DynamoDB cannot tell a full page from the last one: the page after is empty, and the end.
    expect(await deliveriesOn().list("pending", [sink], 1, third.nextCursor)).toEqual({
      items: [],
      nextCursor: null,
    });
  });

  it("what left the state between the index read and the item read (the index lags the table) is not listed", async () => {
    const sink = sinkName("lag");
    const [a, b, c] = idsIn("lag", 1, 3) as [string, string, string];
    await created(pending(sink, a, T), pending(sink, b, T + 1), pending(sink, c, T + 2));
    const retried = await deliveriesOn().get({ kind: "run_step" as const, subjectId: a, sink });
    let moved = false;
    const before = async (command: Sent) => {
      if (!(command instanceof BatchGetItemCommand) || moved) return;
      moved = true;
      // Meanwhile: one delivered, one gone (its retention ran out).
      await deliveriesOn().replace({ ...delivered(sink, a, T + 5), version: (retried?.version ?? 0) + 1 });
      await store.client.send(
        new DeleteItemCommand({
          TableName: store.tableName,
          Key: keyOf(deliveryKey({ kind: "run_step", sink: sink, subjectId: b })),
        }),
      );
    };
    const page = await deliveriesOn(clientWith({ before })).list("pending", [sink], 10, null);
    expect(moved).toBe(true);
    expect(page).toEqual({
      items: [await deliveriesOn().get({ kind: "run_step" as const, subjectId: c, sink })],
      nextCursor: null,
    });
  });

  it("refuses a cursor it did not hand out for this state and these sinks, with the message the API answers 400 with", async () => {
    const sink = sinkName("refused");
    const position = (overrides: Record<string, unknown>) =>
      encodeCursor({ state: "pending", sink, shard: 3, ...overrides });
    const key = {
      pk: { S: deliveryKey({ kind: "run_step", sink: sink, subjectId: "step_1" }) },
      q: { S: `P#${sink}#0` },
      qt: { N: "1" },
    };
    // A cursor at the start of a shard, and one within it, are good.
    expect(await deliveriesOn().list("pending", [sink], 5, position({ shard: 7 }))).toEqual({
      items: [],
      nextCursor: null,
    });
    await expect(deliveriesOn().list("pending", [sink], 5, position({ shard: 0, key }))).resolves.toEqual({
      items: [],
      nextCursor: null,
    });
    for (const cursor of [
      position({ state: "dead" }),
      position({ sink: "someone_else" }),
      position({ sink: 3 }),
      position({ shard: -1 }),
      position({ shard: SHARDS }),
      position({ shard: 1.5 }),
      position({ shard: "1" }),
      position({ key: { pk: { S: "S#step_1" } } }),
      encodeCursor({ pk: { S: "S#step_1" }, q: { S: "P#hook#0" }, qt: { N: "1" } }),
      "not a cursor",
    ]) {
      const listing = deliveriesOn().list("pending", [sink], 5, cursor);
      await expect(listing).rejects.toThrow(InvalidCursorError);
      await expect(listing).rejects.toThrow("cursor is not one this API returned for this state");
    }
  });
});

describe("deadBetween: what a bulk retry takes", () => {
  it("a sink's dead deliveries that died within [sinceMs, untilMs], both ends included, from every shard", async () => {
    const sink = sinkName("between");
    const ids = Array.from(
      { length: SHARDS },
      (_, shard) => idsIn(`between_${shard}`, shard, 1)[0] as string,
    );
    const [early, atSince, inside, atUntil, late, stillPending, otherSink] = ids as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const want = [dead(sink, atSince, T), dead(sink, inside, T + 500), dead(sink, atUntil, T + 1_000)];
    await created(
      ...want,
      dead(sink, early, T - 1),
      dead(sink, late, T + 1_001),
      pending(sink, stillPending, T + 500),
      dead(sinkName("between_other"), otherSink, T + 500),
    );
    expect(await deliveriesOn().deadBetween(sink, T, T + 1_000, 100)).toEqual(want);
  });

  it("at most `limit`, however the shards divide them, each query asking only for what is still wanted", async () => {
    const sink = sinkName("dead_limit");
    // Two in shard 0, two in shard 2, each shard's in the order they died.
    const all = [
      ...idsIn("dead_limit_a", 0, 2).map((id, i) => dead(sink, id, T + i)),
      ...idsIn("dead_limit_b", 2, 2).map((id, i) => dead(sink, id, T + i)),
    ];
    await created(...all);
    for (const limit of [1, 2, 3]) {
      const sent: Sent[] = [];
      expect(await deliveriesOn(clientWith({ sent })).deadBetween(sink, T, T + 1, limit)).toEqual(
        all.slice(0, limit),
      );
      const asked = queries(sent);
      expect(asked.every((input) => (input.Limit ?? 0) >= 1 && (input.Limit ?? 0) <= limit)).toBe(true);
      // The shards after the one that filled the limit are not read.
      expect(partitionsOf(asked).at(-1)).toBe(`X#${sink}#${limit <= 2 ? 0 : 2}`);
    }
  });

  it("goes on from where DynamoDB ended a page (its 1 MB), and stops at the limit there too", async () => {
    const sink = sinkName("dead_pages");
    const three = idsIn("dead_pages", 6, 3).map((id, i) => dead(sink, id, T + i));
    await created(...three);
    expect(await deliveriesOn(clientWith({ perPage: 1 })).deadBetween(sink, T, T + 10, 100)).toEqual(three);
    expect(await deliveriesOn(clientWith({ perPage: 1 })).deadBetween(sink, T, T + 10, 2)).toEqual(
      three.slice(0, 2),
    );
  });

  it("leaves out what is no longer dead by the time it is read (retried meanwhile)", async () => {
    const sink = sinkName("dead_lag");
    const [a, b] = idsIn("dead_lag", 4, 2) as [string, string];
    const both = [dead(sink, a, T), dead(sink, b, T + 1)];
    await created(...both);
    let retried = false;
    const before = async (command: Sent) => {
      if (!(command instanceof BatchGetItemCommand) || retried) return;
      retried = true;
      await deliveriesOn().replace({ ...pending(sink, a, T + 9), attempts: 1, version: 1 });
    };
    expect(await deliveriesOn(clientWith({ before })).deadBetween(sink, T, T + 1, 10)).toEqual([both[1]]);
    expect(retried).toBe(true);
  });
});

describe("backlog: the /metrics gauges and GET /v1/sinks", () => {
  it("pending and dead counted over every shard, with the oldest pending creation time; nothing → zeros and null", async () => {
    const sink = sinkName("backlog");
    const id = (shard: number, n = 1) => idsIn(`backlog_${shard}`, shard, n);
    await created(
      pending(sink, id(0)[0] as string, T + 50, { createdAtMs: T + 5 }),
      ...id(3, 2).map((stepId, i) => pending(sink, stepId, T, { createdAtMs: T + 2 - i })),
      pending(sink, id(7)[0] as string, T - 50, { createdAtMs: T + 3 }),
      dead(sink, id(1)[0] as string, T),
      dead(sink, id(7, 2)[1] as string, T),
      delivered(sink, id(5)[0] as string, T),
      pending(sinkName("backlog_other"), id(2)[0] as string, T, { createdAtMs: T - 100 }),
    );
    const sent: Sent[] = [];
    expect(await deliveriesOn(clientWith({ sent })).backlog(sink)).toEqual({
      pending: 4,
      dead: 2,
      oldestPendingCreatedMs: T + 1,
    });
    // Two queries a shard: pending deliveries' creation times only, dead ones only counted.
    expect(queries(sent).map((input) => [input.ProjectionExpression, input.Select])).toEqual(
      Array.from({ length: SHARDS }, () => [
        ["#cms", undefined],
        [undefined, "COUNT"],
      ]).flat(),
    );
    expect(await deliveriesOn().backlog(sinkName("backlog_none"))).toEqual({
      pending: 0,
      dead: 0,
      oldestPendingCreatedMs: null,
    });
  });

  it("reads a partition page after page, at most 20 pages: a scrape stays cheap however long the backlog", async () => {
    const sink = sinkName("backlog_pages");
    const ids = idsIn("backlog_pages", 2, 21);
    await created(
      ...ids.map((id, i) => pending(sink, id, T + i, { createdAtMs: T + 100 - i })),
      ...idsIn("backlog_dead", 5, 3).map((id) => dead(sink, id, T)),
    );
    const sent: Sent[] = [];
    // Pages of one: 21 pending deliveries take 21 pages, 3 dead ones 3.
    const backlog = await deliveriesOn(clientWith({ sent, perPage: 1 })).backlog(sink);
    // Pages are read in queue order (oldest due first): the 20 read are the first 20 by due time.
    expect(backlog).toEqual({ pending: 20, dead: 3, oldestPendingCreatedMs: T + 100 - 19 });
    expect(partitionsOf(queries(sent)).filter((q) => q === `P#${sink}#2`)).toHaveLength(20);
  });
});

describe("an unreachable store", () => {
  it("is reported as StoreUnavailableError naming the call, never as an answer of its own", async () => {
    const sink = sinkName("outage");
    const kept = pending(sink, "step_outage", T);
    await created(kept);
    const all = deliveriesOn(clientWith({ failing: () => true }));
    // Each call on its own, all at once.
    const failures: Array<[Promise<unknown>, string]> = [
      [all.create(pending(sink, "step_outage_new", T)), "writeDelivery"],
      [all.replace({ ...kept, version: 1 }), "writeDelivery"],
      [all.get(ref(kept)), "getDelivery"],
      [all.getMany([ref(kept)]), "getDeliveries"],
      [all.subjects([{ kind: "run_step", subjectId: "step_outage" }]), "readDocuments"],
      [all.findDue(sink, 0, T, 10), "findDue"],
      [all.acquireLease(shardLeaseKey(sink, 0), T + 1, T), "acquireLease"],
      [all.releaseLease(shardLeaseKey(sink, 0), 1), "releaseLease"],
      [all.list("pending", [sink], 10, null), "listDeliveries"],
      [all.deadBetween(sink, T, T, 10), "deadBetween"],
      [all.backlog(sink), "backlog"],
    ];
    await Promise.all(
      failures.map(([call, operation]) => expect(call).rejects.toEqual(unavailable(operation))),
    );
    expect(await deliveriesOn().get(ref(kept))).toEqual(kept);
    expect(
      await deliveriesOn().get({ kind: "run_step" as const, subjectId: "step_outage_new", sink }),
    ).toBeNull();
  });

  it("fails a listing or a bulk retry's read whichever of its calls fails", async () => {
    const sink = sinkName("outage_reads");
    await created(pending(sink, "step_reads", T), dead(sink, "step_reads_dead", T));
    const reading = deliveriesOn(clientWith({ failing: is(BatchGetItemCommand) }));
    await expect(reading.list("pending", [sink], 10, null)).rejects.toEqual(unavailable("listDeliveries"));
    await expect(reading.deadBetween(sink, T, T, 10)).rejects.toEqual(unavailable("deadBetween"));
  });
});

describe("recoverOutbox: transitions whose instance died before recording their deliveries", () => {
  // Each test has a table of its own: the outbox watermarks are the table's.
  const tables: string[] = [];
  beforeAll(async () => {
    const names = Array.from({ length: 8 }, (_, i) => `outbox-${i}`);
    await Promise.all(
      names.map((name) =>
        ensureTable(store.client, name, { retentionDays: 0, logger: createLogger("error") }),
      ),
    );
    tables.push(...names);
  });

  // Sweeps here walk the outbox partitions in their listed order (completed#0, completed#1, …,
  // failed#0, …), a test's entries sitting in the first ones; a sweep's clock reaches its deadline
  // as it reads the watermark of `stopAt`, so it need not read all 64 partitions.
  const IN_ORDER = () => 0.999_999;
  const OB_SHARDS = TABLE_SCHEMA.outboxShards;
  type ClientOptions = Parameters<typeof clientWith>[0];

  /** A fresh table, a step store applying terminal snapshots to it, and sweeps of its outbox. */
  const outbox = () => {
    const tableName = tables.shift();
    if (!tableName) throw new Error("no table left");
    const applied = { now: T };
    const steps = new DynamoStepStore({
      client: store.client,
      tableName,
      retentionDays: 0,
      nowMs: () => applied.now,
    });
    const deliveries = (client: DynamoDBClient = store.client, nowMs?: () => number) =>
      deliveriesOn(client, { tableName, random: IN_ORDER, ...(nowMs ? { nowMs } : {}) });
    return {
      tableName,
      deliveries,
      /** Applies a terminal snapshot owing `sinks` at `atMs`, as the ingest path does. */
      async apply(id: string, atMs: number, sinks: readonly string[], status: TerminalStatus = "completed") {
        applied.now = atMs;
        const document = makeStep({ id, status, run_id: `run_of_${id}` });
        const event = `run_step.${status}` as const;
        const result = await steps.apply({
          step: v.parse(RunStepSchema, document),
          document,
          sentAt: 1_764_000_100,
          receivedAt: 1_764_000_100,
          intents: sinks.map((sink) => ({ sink, event })),
        });
        if (result.outcome !== "created") throw new Error(`apply ${id}: ${result.outcome}`);
      },
      /** A sweep at `nowMs` up to `upToMs`, through the partitions before `stopAt`. */
      sweep(upToMs: number, nowMs: number, options: ClientOptions & { stopAt?: string } = {}) {
        const clock = { now: nowMs };
        const deadline = nowMs + 1;
        const stopAt = options.stopAt ?? watermarkKey("completed", 1);
        const client = clientWith({
          ...options,
          before: async (command) => {
            if (command instanceof GetItemCommand && command.input.Key?.[A.key]?.S === stopAt)
              clock.now = deadline;
            await options.before?.(command);
          },
        });
        return deliveries(client, () => clock.now).recoverOutbox(upToMs, nowMs, deadline);
      },
      recovered: (stepId: string, sink: string, status: TerminalStatus, nowMs: number): Delivery =>
        newDelivery(
          { sink, event: `run_step.${status}` },
          { kind: "run_step", id: stepId, runId: `run_of_${stepId}` },
          nowMs,
        ),
      async watermark(status: TerminalStatus, shard: number) {
        const { Item } = await store.client.send(
          new GetItemCommand({
            TableName: tableName,
            Key: keyOf(watermarkKey(status, shard)),
            ConsistentRead: true,
          }),
        );
        return Item && { mark: Item[A.watermark]?.S, version: Item[A.version]?.N };
      },
    };
  };

  it("writes what each transition applied up to upToMs (included) owes, pending and due at nowMs; one applied a ms later waits for the next sweep, which goes on from the watermark", async () => {
    const o = outbox();
    const [done, owesNone] = idsIn("rec_done", 0, 2, OB_SHARDS) as [string, string];
    const [later] = idsIn("rec_later", 1, 1, OB_SHARDS) as [string];
    const [failed] = idsIn("rec_failed", 0, 1, OB_SHARDS) as [string];
    await o.apply(done, T, ["hook", "audit"]);
    await o.apply(owesNone, T, []);
    await o.apply(failed, T - 60_000, ["hook"], "failed");
    await o.apply(later, T + 1, ["hook"]);
    const now = T + 70_000;
    expect(await o.sweep(T, now, { stopAt: watermarkKey("failed", 1) })).toEqual({
      checked: 3,
      recovered: 3,
    });
    const got = await o.deliveries().getMany([
      { kind: "run_step" as const, subjectId: done, sink: "hook" },
      { kind: "run_step" as const, subjectId: done, sink: "audit" },
      { kind: "run_step" as const, subjectId: failed, sink: "hook" },
      { kind: "run_step" as const, subjectId: later, sink: "hook" },
    ]);
    expect(got).toEqual([
      o.recovered(done, "hook", "completed", now),
      o.recovered(done, "audit", "completed", now),
      o.recovered(failed, "hook", "failed", now),
    ]);
    // The watermark is the sort key of the last entry made sure of.
    expect(await o.watermark("completed", 0)).toEqual({
      mark: outboxSortKey(T, [done, owesNone].sort().at(-1) as string),
      version: "1",
    });
    expect(await o.watermark("failed", 0)).toEqual({ mark: outboxSortKey(T - 60_000, failed), version: "1" });

    // Only what is past the watermarks is looked at.
    expect(await o.sweep(T + 1, now + 1, { stopAt: watermarkKey("completed", 2) })).toEqual({
      checked: 1,
      recovered: 1,
    });
    expect(await o.deliveries().get({ kind: "run_step" as const, subjectId: later, sink: "hook" })).toEqual(
      o.recovered(later, "hook", "completed", now + 1),
    );
  });

  it("writes nothing for deliveries already recorded and leaves them as they are; reads consistently what it checks", async () => {
    const o = outbox();
    const [id] = idsIn("rec_lived", 0, 1, OB_SHARDS) as [string];
    await o.apply(id, T, ["hook", "audit"]);
    const settled = { ...delivered("hook", id, T + 10), runId: `run_of_${id}` };
    expect(await o.deliveries().create(settled)).toBe(true);
    const sent: Sent[] = [];
    expect(await o.sweep(T, T + 70_000, { sent })).toEqual({ checked: 1, recovered: 1 });
    expect(sent.filter((c) => c instanceof PutItemCommand)).toHaveLength(1);
    // Pages of 100 entries: the work between two looks at the deadline stays bounded.
    expect(queries(sent).map((input) => input.Limit)).toEqual([100, 100]);
    expect(await o.deliveries().get({ kind: "run_step" as const, subjectId: id, sink: "hook" })).toEqual(
      settled,
    );
    expect(await o.deliveries().get({ kind: "run_step" as const, subjectId: id, sink: "audit" })).toEqual(
      o.recovered(id, "audit", "completed", T + 70_000),
    );
    // Its reads: the watermarks, and the deliveries owed.
    expect(itemReads(sent, o.tableName)).toEqual([
      { name: "GetItemCommand", consistent: true },
      { name: "BatchGetItemCommand", consistent: true },
      { name: "GetItemCommand", consistent: true },
    ]);
  });

  it("a delivery another instance writes between the check and the write is that instance's: not counted, not overwritten", async () => {
    const o = outbox();
    const [id] = idsIn("rec_race", 0, 1, OB_SHARDS) as [string];
    await o.apply(id, T, ["hook"]);
    const theirs = { ...delivered("hook", id, T + 1), runId: `run_of_${id}` };
    const before = async (command: Sent) => {
      if (command instanceof PutItemCommand) await o.deliveries().create(theirs);
    };
    expect(await o.sweep(T, T + 70_000, { before })).toEqual({ checked: 1, recovered: 0 });
    expect(await o.deliveries().get({ kind: "run_step" as const, subjectId: id, sink: "hook" })).toEqual(
      theirs,
    );
  });

  it("follows pages DynamoDB ends early, moving the watermark after each", async () => {
    const o = outbox();
    const ids = idsIn("rec_page", 0, 5, OB_SHARDS);
    for (const [i, id] of ids.entries()) await o.apply(id, T + i, ["hook"]);
    const marks: Array<string | undefined> = [];
    const before = async (command: Sent) => {
      if (command instanceof UpdateItemCommand)
        marks.push(command.input.ExpressionAttributeValues?.[":mark"]?.S);
    };
    const sent: Sent[] = [];
    expect(await o.sweep(T + 10, T + 70_000, { perPage: 2, before, sent })).toEqual({
      checked: 5,
      recovered: 5,
    });
    expect(marks).toEqual([1, 3, 4].map((i) => outboxSortKey(T + i, ids[i] as string)));
    // Each page starts right after the entry the watermark names: its full key in the index.
    const at = (i: number) => ({
      [A.outboxShard]: { S: "O#completed#0" },
      [A.appliedAtMs]: { S: outboxSortKey(T + i, ids[i] as string) },
      [A.key]: { S: stepKey(ids[i] as string) },
    });
    const starts = queries(sent)
      .filter((input) => input.ExpressionAttributeValues?.[":ob"]?.S === "O#completed#0")
      .map((input) => input.ExclusiveStartKey);
    expect(starts).toEqual([undefined, at(1), at(3)]);
    expect(await o.watermark("completed", 0)).toEqual({
      mark: outboxSortKey(T + 4, ids[4] as string),
      version: "3",
    });
    const written = await o
      .deliveries()
      .getMany(ids.map((stepId) => ({ kind: "run_step" as const, subjectId: stepId, sink: "hook" })));
    expect(written.map((d) => d.subjectId)).toEqual(ids);
  });

  it("leaves a partition to another sweeper that moved its watermark meanwhile", async () => {
    const o = outbox();
    const ids = idsIn("rec_two", 0, 4, OB_SHARDS);
    for (const [i, id] of ids.entries()) await o.apply(id, T + i, ["hook"]);
    let other: Promise<unknown> | undefined;
    const before = async (command: Sent) => {
      // The other sweeper runs whole while this one is about to move the watermark past its first page.
      if (command instanceof UpdateItemCommand && !other) {
        other = o.sweep(T + 10, T + 70_000);
        await other;
      }
    };
    const sent: Sent[] = [];
    expect(await o.sweep(T + 10, T + 70_000, { perPage: 1, before, sent })).toEqual({
      checked: 1,
      recovered: 1,
    });
    expect(await other).toEqual({ checked: 4, recovered: 3 });
    expect(await o.watermark("completed", 0)).toEqual({
      mark: outboxSortKey(T + 3, ids[3] as string),
      version: "1",
    });
    const inThatPartition = queries(sent).filter(
      (input) => input.ExpressionAttributeValues?.[":ob"]?.S === "O#completed#0",
    );
    expect(inThatPartition).toHaveLength(1);
  });

  it("a sweep whose upToMs is behind a partition's watermark (another's clock ran ahead) checks nothing there, and fails nothing", async () => {
    const o = outbox();
    const [id] = idsIn("rec_ahead", 0, 1, OB_SHARDS) as [string];
    await o.apply(id, T + 10, ["hook"]);
    expect(await o.sweep(T + 10, T + 70_000)).toEqual({ checked: 1, recovered: 1 });
    expect(await o.sweep(T + 5, T + 70_000)).toEqual({ checked: 0, recovered: 0 });
  });

  it("stops once its clock reaches deadlineMs, reporting what it did so far", async () => {
    const o = outbox();
    const [id] = idsIn("rec_deadline", 0, 1, OB_SHARDS) as [string];
    await o.apply(id, T, ["hook"]);
    const now = T + 70_000;
    // At the deadline already: nothing is read.
    const sent: Sent[] = [];
    expect(await o.deliveries(clientWith({ sent }), () => now).recoverOutbox(T, now, now)).toEqual({
      checked: 0,
      recovered: 0,
    });
    expect(sent).toEqual([]);
    // Reached while it writes: that page is finished, and nothing more is read.
    const clock = { now };
    let readAfter = 0;
    const before = async (command: Sent) => {
      if (command instanceof PutItemCommand) clock.now = now + 1;
      else if (clock.now === now + 1 && !(command instanceof UpdateItemCommand)) readAfter++;
    };
    const report = await o.deliveries(clientWith({ before }), () => clock.now).recoverOutbox(T, now, now + 1);
    expect(report).toEqual({ checked: 1, recovered: 1 });
    expect(readAfter).toBe(0);
    expect(await o.watermark("completed", 0)).toEqual({ mark: outboxSortKey(T, id), version: "1" });
  });

  it("is reported as StoreUnavailableError naming the call, whichever fails", async () => {
    const o = outbox();
    const [id] = idsIn("rec_outage", 0, 1, OB_SHARDS) as [string];
    await o.apply(id, T, ["hook"]);
    const failing = (pick: (command: Sent) => boolean) => o.sweep(T, T + 1, { failing: pick });
    await expect(failing(is(GetItemCommand))).rejects.toEqual(unavailable("readWatermark"));
    await expect(failing(is(QueryCommand))).rejects.toEqual(unavailable("recoverOutbox"));
    await expect(failing(is(BatchGetItemCommand))).rejects.toEqual(unavailable("recoverOutbox"));
    await expect(failing(is(PutItemCommand))).rejects.toEqual(unavailable("writeDelivery"));
    await expect(failing(is(UpdateItemCommand))).rejects.toEqual(unavailable("writeWatermark"));
    // The delivery was written before the watermark failed to move: the next sweep checks it again.
    expect(await o.sweep(T, T + 2)).toEqual({ checked: 1, recovered: 0 });
  });
});
