import { type DynamoDBClient, QueryCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TerminalStatus } from "../src/domain/run-step-schema.js";
import { DynamoStepStore, type DynamoStepStoreOptions } from "../src/store/dynamo-step-store.js";
import { decodeCursor, encodeCursor } from "../src/store/item-codec.js";
import type { StoredStep, TerminalStepQuery } from "../src/store/step-store.js";
import { InvalidCursorError } from "../src/store/store-errors.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { overriding } from "./support/overriding.js";
import { idInShard, idOf, snapshot } from "./support/step-snapshots.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// The step store's listing of terminal steps across runs (`GET /v1/run-steps`), on its own against
// real dynalite: newest first by when the terminal status was applied, both ends of the window
// included, every step exactly once page after page however sparse the assistant filter, in
// DynamoDB's order of keys, and cursors that continue only the listing they came from. Each
// listing reads all 16 outbox partitions of each status, so these tests keep their listings few.

type Sent = Parameters<DynamoDBClient["send"]>[0];

let store: TestStore;
let seq = 0;
const uid = (what: string) => `${what}_${Date.now().toString(36)}_${seq++}`;

beforeAll(async () => {
  store = await startTestStore("step-store-listing");
});
afterAll(() => store.close());

// A real client that runs something just before each call.
const clientWith = (before: (command: Sent) => Promise<void>) =>
  overriding(store.client, {
    send: (async (command: Sent) => {
      await before(command);
      return store.client.send(command as never);
    }) as DynamoDBClient["send"],
  });

const stepsOn = (client: DynamoDBClient = store.client, options: Partial<DynamoStepStoreOptions> = {}) =>
  new DynamoStepStore({ client, tableName: store.tableName, retentionDays: 0, ...options });

// Each listing test has a window of apply times of its own, and its own assistants.
let listClock = 2_000_000_000_000;
const listWindow = () => {
  listClock += 1_000_000_000;
  return listClock;
};
const OUTBOX_SHARDS = TABLE_SCHEMA.outboxShards;

/** Applies a terminal snapshot at the given Unix ms. */
const terminalAt = (atMs: number, id: string, fields: Record<string, unknown> = {}) =>
  stepsOn(store.client, { nowMs: () => atMs }).apply(snapshot({ id, status: "cancelled", ...fields }));

type Listing = Omit<TerminalStepQuery, "cursor">;

/** Every page of a listing, following its cursor; the ids in the order listed. */
async function everyPage(listing: Listing, steps = stepsOn()): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 40; page++) {
    const got: { items: readonly StoredStep[]; nextCursor: string | null } = await steps.listTerminal({
      ...listing,
      cursor,
    });
    ids.push(...got.items.map(idOf));
    cursor = got.nextCursor;
    if (!cursor) return ids;
  }
  throw new Error("the listing never ended");
}

describe("listTerminal: terminal steps across runs, newest first", () => {
  it("lists newest first by when the terminal status was applied, both ends of the window included whatever the step ids", async () => {
    const t0 = listWindow();
    const assistant = uid("asst_window");
    const at = (ms: number, id: string, status: TerminalStatus = "cancelled") =>
      terminalAt(t0 + ms, id, { assistant_id: assistant, status });
    // DynamoDB orders keys by their UTF-8 bytes: a character above U+FFFF comes after every other
    // there, while its UTF-16 form (a surrogate pair, D800–DFFF) sorts before U+E000–U+FFFF. At
    // each end of the window, ids sorting first and last; just outside, ids sorting first.
    const first = `\u0001_${uid("step")}`;
    const last = `\u{10ffff}_${uid("step")}`;
    const lastButOne = `\u{1f600}_${uid("step")}`;
    // Several applied in one millisecond, told apart by a character of each kind.
    const prefix = uid("step");
    const sameMs = ["\u{ff01}", "\u{1f600}", "\u{e000}", "\u{10fffd}", "a"].map((c) => `${prefix}_${c}`);
    await Promise.all([
      at(99, `\u{1f600}_${uid("step")}`),
      at(100, first),
      at(150, `A_${uid("step")}`, "failed"),
      ...sameMs.map((id) => at(200, id)),
      at(300, last),
      at(300, lastButOne),
      at(301, `\u0001_${uid("step")}`),
    ]);
    await stepsOn().apply(snapshot({ id: uid("step_open"), assistant_id: assistant }));
    // Not the failed one (not asked for), nor the one in progress (not terminal).
    const byBytesNewestFirst = [...sameMs].sort((a, b) => Buffer.compare(Buffer.from(b), Buffer.from(a)));
    const listing = {
      sinceMs: t0 + 100,
      untilMs: t0 + 300,
      assistantId: assistant,
      statuses: ["cancelled"],
    } as const;
    expect(await everyPage({ ...listing, limit: 4 })).toEqual([
      last,
      lastButOne,
      ...byBytesNewestFirst,
      first,
    ]);
  });

  it("a page holding the last of the listing says so (no cursor), even when it is full", async () => {
    const t0 = listWindow();
    const assistant = uid("asst_full");
    const prefix = uid("step_full");
    // Both in one outbox partition: it holds exactly one page.
    const ids = [0, 1].map((i) => idInShard(`${prefix}${i}`, 4, OUTBOX_SHARDS));
    await Promise.all(ids.map((id, i) => terminalAt(t0 + i, id, { assistant_id: assistant })));
    const page = await stepsOn().listTerminal({
      statuses: ["cancelled"],
      sinceMs: t0,
      untilMs: t0 + 10,
      assistantId: assistant,
      limit: 2,
      cursor: null,
    });
    expect(page.items.map(idOf)).toEqual([ids[1], ids[0]]);
    expect(page.nextCursor).toBeNull();
  });
});

describe("listTerminal with a rare assistant: every step once, newest first, page after page", () => {
  // One page of 2 reads at most five pages of 3 of each outbox partition. Partitions whose newest
  // entries are another assistant's stop reading before they find 2 of the rare one's, each at its
  // own place: the page must go no lower than the highest of those places, or what lies just below
  // it in that partition would be skipped.
  const LIMIT = 2;
  interface Scenario {
    readonly listing: Listing;
    /** The rare assistant's steps, newest first. */
    readonly expected: readonly string[];
    /** The outbox partitions the steps are in, by name. */
    readonly shards: Record<string, number>;
  }

  async function seed(layout: Record<string, { shard: number; other: number[]; rare: number[] }>) {
    const t0 = listWindow();
    const rare = uid("asst_rare");
    const other = uid("asst_other");
    const prefix = uid("step_rare");
    const applies: Promise<unknown>[] = [];
    const expected: { id: string; at: number }[] = [];
    const shards: Record<string, number> = {};
    let n = 0;
    for (const [name, { shard, other: others, rare: rares }] of Object.entries(layout)) {
      shards[name] = shard;
      for (const at of others) {
        applies.push(
          terminalAt(t0 + at, idInShard(`${prefix}_${n++}`, shard, OUTBOX_SHARDS), { assistant_id: other }),
        );
      }
      for (const at of rares) {
        const id = idInShard(`${prefix}_${n++}`, shard, OUTBOX_SHARDS);
        expected.push({ id, at });
        applies.push(terminalAt(t0 + at, id, { assistant_id: rare }));
      }
    }
    await Promise.all(applies);
    return {
      listing: {
        statuses: ["cancelled"],
        sinceMs: t0,
        // Up to the partition of rare steps only, not including it.
        untilMs: t0 + 1_050,
        assistantId: rare,
        limit: LIMIT,
      },
      expected: expected.sort((a, b) => b.at - a.at).map((e) => e.id),
      shards,
    } satisfies Scenario;
  }
  const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from - i);

  // Three partitions stop short, at 986 (its last entry read is the rare one's), 970 and 955, read
  // in the order 970, 986, 955; each has a rare step just below where it stopped.
  // Below them, one that has 2 within its first page, and one that needs two pages for 2. Above
  // them all, a partition of rare steps only, listed only when the window reaches that high.
  let sparse: Promise<Scenario> | undefined;
  const sparseScenario = () => {
    sparse ??= seed({
      stopsMid: { shard: 3, other: range(984, 15), rare: [962] },
      stopsHigh: { shard: 6, other: range(1_000, 14), rare: [986, 980] },
      stopsLow: { shard: 9, other: range(969, 15), rare: [940] },
      dense: { shard: 12, other: [550], rare: [700, 600, 500] },
      tail: { shard: 13, other: [390, 380], rare: [400, 370, 360] },
      above: { shard: 1, other: [], rare: [1_100, 1_090, 1_080] },
    });
    return sparse;
  };

  it("partitions that stop short at different places: none of their rare steps is skipped", async () => {
    const { listing, expected } = await sparseScenario();
    const below = expected.slice(3);
    expect(below).toHaveLength(10);
    expect(await everyPage(listing)).toEqual(below);
  });

  it("a full page above where a partition stopped ends at its last step, not where that partition stopped", async () => {
    const { listing, expected } = await sparseScenario();
    const steps = stepsOn();
    const whole = { ...listing, untilMs: listing.untilMs + 1_000 };
    const first = await steps.listTerminal({ ...whole, cursor: null });
    expect(first.items.map(idOf)).toEqual(expected.slice(0, 2));
    // The next page goes on right after it.
    const second = await steps.listTerminal({ ...whole, cursor: first.nextCursor });
    expect(second.items.map(idOf)[0]).toBe(expected[2]);
  });

  it("reads at most five pages of a partition, and no more of one than it needs", async () => {
    const { listing, shards } = await sparseScenario();
    const queries = new Map<string, number>();
    const counting = clientWith(async (command) => {
      if (!(command instanceof QueryCommand)) return;
      const partition = command.input.ExpressionAttributeValues?.[":ob"]?.S ?? "";
      queries.set(partition, (queries.get(partition) ?? 0) + 1);
    });
    await stepsOn(counting).listTerminal({ ...listing, cursor: null });
    const perShard = Array.from({ length: OUTBOX_SHARDS }, (_, shard) => queries.get(`O#cancelled#${shard}`));
    const expected = Array.from({ length: OUTBOX_SHARDS }, () => 1);
    for (const shard of [shards.stopsMid, shards.stopsHigh, shards.stopsLow]) {
      expected[shard as number] = 5;
    }
    expected[shards.tail as number] = 2;
    expect(perShard).toEqual(expected);
    expect(queries.size).toBe(OUTBOX_SHARDS);
  });
});

describe("listTerminal cursors: only the listing they came from, only as handed out", () => {
  it("a cursor is refused by a listing with other filters, and when it is not one the store handed out", async () => {
    const t0 = listWindow();
    const assistant = uid("asst_cursor");
    await Promise.all(
      [1, 2, 3].map((i) => terminalAt(t0 + i, uid("step_cursor"), { assistant_id: assistant })),
    );
    const listing: TerminalStepQuery = {
      statuses: ["cancelled"],
      sinceMs: t0,
      untilMs: t0 + 10,
      assistantId: assistant,
      limit: 1,
      cursor: null,
    };
    const { nextCursor } = await stepsOn().listTerminal(listing);
    const cursor = nextCursor as string;
    const refused = async (query: Partial<TerminalStepQuery>, message: string) => {
      const listed = stepsOn().listTerminal({ ...listing, cursor, ...query });
      await expect(listed).rejects.toThrow(InvalidCursorError);
      await expect(listed).rejects.toThrow(message);
    };
    const otherFilters = "cursor belongs to a listing with other filters";
    await refused({ assistantId: uid("asst_else") }, otherFilters);
    await refused({ assistantId: undefined }, otherFilters);
    await refused({ statuses: ["failed"] }, otherFilters);
    await refused({ statuses: ["cancelled", "failed"] }, otherFilters);
    await refused({ sinceMs: t0 + 1 }, otherFilters);
    await refused({ untilMs: t0 + 11 }, otherFilters);

    const notOurs = "cursor is not one this API returned";
    const position = decodeCursor(cursor) as Record<string, unknown>;
    const altered = (before: unknown) => encodeCursor({ ...position, before });
    await refused({ cursor: "bm90LWEtY3Vyc29y" }, notOurs);
    await refused({ cursor: encodeCursor(null) }, notOurs);
    await refused({ cursor: altered(undefined) }, notOurs);
    await refused({ cursor: altered(Number(String(position.before).slice(0, 13))) }, notOurs);
    await refused({ cursor: altered([position.before]) }, notOurs);
    await refused({ cursor: altered("not a position") }, notOurs);
    await refused({ cursor: altered(`x${position.before}`) }, notOurs);
    await refused({ cursor: altered(`${String(position.before).slice(1)}`) }, notOurs);
    await refused({ cursor: altered(`${position.before}${"x".repeat(1_100)}`) }, notOurs);
    // The cursor as handed out still works.
    expect((await stepsOn().listTerminal({ ...listing, cursor, limit: 5 })).items).toHaveLength(2);
  });
});
