import { deflateRawSync, inflateRawSync } from "node:zlib";
import { GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Delivery, type DeliveryAttempt, STALLED_EVENT } from "../src/domain/delivery.js";
import {
  alias,
  deadPartition,
  decodeCursor,
  decodeDelivery,
  decodeDocument,
  decodeSinkHealth,
  deliveryKey,
  deliveryRefOfKey,
  encodeCursor,
  encodeDelivery,
  encodeDocument,
  fitsKey,
  type Item,
  isIndexPosition,
  isKeyPart,
  keyOf,
  namesFor,
  num,
  numOrNull,
  outboxPartition,
  outboxSortKey,
  pendingPartition,
  probeLeaseKey,
  runSortKey,
  shardLeaseKey,
  shardOf,
  sinkKey,
  stepIdOfKey,
  stepKey,
  subjectItemKey,
  toStoredStep,
  watchPartition,
  watchWatermarkKey,
  watermarkKey,
} from "../src/store/item-codec.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// The codec is the table's layout (TABLE_SCHEMA's documentation) in code: what it writes is read
// back by every later version and by other runtimes, so its formats are stated here exactly.

const A = TABLE_SCHEMA.attributes;
const utf8 = (text: string) => new TextEncoder().encode(text).length;

describe("key values: the table layout", () => {
  it("each kind of item has its own prefix, and no prefix starts another", () => {
    expect(stepKey("step_1")).toBe("S#step_1");
    expect(deliveryKey({ kind: "run_step", sink: "hook", subjectId: "step_1" })).toBe("D#hook#step_1");
    expect(sinkKey("hook")).toBe("K#hook");
    expect(keyOf("S#step_1")).toEqual({ pk: { S: "S#step_1" } });
    const prefixes = Object.values(TABLE_SCHEMA.prefixes);
    for (const a of prefixes) for (const b of prefixes) if (a !== b) expect(b.startsWith(a)).toBe(false);
  });

  it("a delivery's key names its sink and step; a stall notice's carries the stalled mark", () => {
    expect(deliveryKey({ kind: "run_step", sink: "hook", subjectId: "step_1", stalled: false })).toBe(
      "D#hook#step_1",
    );
    expect(deliveryKey({ kind: "run_step", sink: "hook", subjectId: "step_1", stalled: true })).toBe(
      "D#hook~stalled#step_1",
    );
  });

  it("sweepers' bookkeeping lives under M#, queue partitions under P#/X#/W#, outbox ones under O#", () => {
    expect(watermarkKey("completed", 3)).toBe("M#outbox#completed#3");
    expect(shardLeaseKey("hook", 7)).toBe("M#lease#hook#7");
    expect(probeLeaseKey("hook")).toBe("M#probe#hook");
    expect(watchWatermarkKey(15)).toBe("M#watch#15");
    expect(watchPartition(15)).toBe("W#15");
    expect(pendingPartition("hook", 2)).toBe("P#hook#2");
    expect(deadPartition("hook", 2)).toBe("X#hook#2");
    expect(outboxPartition("failed", 11)).toBe("O#failed#11");
  });

  it("stepIdOfKey gives back the step id of any step key", () => {
    expect(stepIdOfKey("S#step_1")).toBe("step_1");
    expect(stepIdOfKey("S#")).toBe("");
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (id) => stepIdOfKey(stepKey(id)) === id),
      { numRuns: 200 },
    );
  });

  it("outbox sort key: the apply time in 13 digits, then the step id", () => {
    expect(outboxSortKey(1_700_000_000_123, "step_1")).toBe("1700000000123#step_1");
    expect(outboxSortKey(5, "step_1")).toBe("0000000000005#step_1");
    // Whole milliseconds, never below 0: the key stays 13 digits.
    expect(outboxSortKey(5.9, "s")).toBe("0000000000005#s");
    expect(outboxSortKey(-20, "s")).toBe("0000000000000#s");
  });

  it("outbox sort keys sort as their times do, ties by step id; the empty id is a time's lower bound", () => {
    const time = fc.integer({ min: 0, max: 9_999_999_999_999 });
    const id = fc.string({ minLength: 1 });
    fc.assert(
      fc.property(time, time, id, id, (a, b, x, y) => {
        const [ka, kb] = [outboxSortKey(a, x), outboxSortKey(b, y)];
        if (a !== b) return a < b === ka < kb;
        return outboxSortKey(a, "") < ka && x < y === ka < kb;
      }),
      { numRuns: 300 },
    );
  });

  it("run sort key: created_at in 11 digits, then the step id; string order is creation order", () => {
    expect(runSortKey(1_700_000_000, "step_1")).toBe("01700000000#step_1");
    expect(runSortKey(7, "step_1")).toBe("00000000007#step_1");
    const time = fc.integer({ min: 0, max: 99_999_999_999 });
    fc.assert(
      fc.property(time, time, fc.string(), fc.string(), (a, b, x, y) => {
        if (a === b) return true;
        return a < b === runSortKey(a, x) < runSortKey(b, y);
      }),
      { numRuns: 300 },
    );
  });
});

describe("shardOf: a stable spread of step ids over index partitions", () => {
  // Java's String.hashCode over UTF-16 units (sum of unit × 31^position, as a 32-bit signed
  // integer), its magnitude modulo the shards: the same answer on every runtime and version.
  const reference = (id: string, shards: number) => {
    let sum = 0n;
    for (let i = 0; i < id.length; i++) sum += BigInt(id.charCodeAt(i)) * 31n ** BigInt(id.length - 1 - i);
    const hash = BigInt.asIntN(32, sum);
    return Number((hash < 0n ? -hash : hash) % BigInt(shards));
  };

  it("is the 31-polynomial hash of the id, modulo the shards", () => {
    expect(shardOf("", 8)).toBe(0);
    expect(shardOf("ab", 8)).toBe((97 * 31 + 98) % 8);
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.integer({ min: 1, max: 64 }), (id, shards) => {
        const shard = shardOf(id, shards);
        return shard === reference(id, shards) && shard >= 0 && shard < shards;
      }),
      { numRuns: 300 },
    );
  });

  it("every character counts: ids differing only in their first character spread over the shards", () => {
    const suffix = "_0123456789abcdefghijklmnop";
    const shards = new Set("abcdefghijklmnop".split("").map((c) => shardOf(`${c}${suffix}`, 8)));
    expect(shards.size).toBeGreaterThan(4);
  });
});

describe("fitsKey and isIndexPosition: what a key or a cursor's position may hold", () => {
  it("partition keys up to 2048 UTF-8 bytes, sort keys up to 1024", () => {
    expect(fitsKey("😀".repeat(512))).toBe(true);
    expect(fitsKey("😀".repeat(513))).toBe(false);
    expect(fitsKey("€".repeat(341), "sort")).toBe(true);
    expect(fitsKey("€".repeat(342), "sort")).toBe(false);
    expect(fitsKey("a".repeat(1024), "sort")).toBe(true);
    expect(fitsKey("a".repeat(1025), "sort")).toBe(false);
    expect(fitsKey("a".repeat(100_000))).toBe(false);
  });

  const queue = [A.key, A.queue, A.queueAt];
  const position = { pk: { S: "D#hook#step_1" }, q: { S: "P#hook#0" }, qt: { N: "1700000000000" } };

  it("a position of the queue index: its key, partition and time", () => {
    expect(isIndexPosition(position, queue)).toBe(true);
    expect(isIndexPosition({ ...position, qt: { N: "9".repeat(16) } }, queue)).toBe(true);
    expect(isIndexPosition({ ...position, qt: { N: "0" } }, queue)).toBe(true);
  });

  it("anything but an object of exactly the index's attributes is refused", () => {
    for (const key of [null, undefined, "x", 5, true]) expect(isIndexPosition(key, queue)).toBe(false);
    const { qt: _qt, ...missing } = position;
    expect(isIndexPosition(missing, queue)).toBe(false);
    expect(isIndexPosition({ ...position, st: { S: "completed" } }, queue)).toBe(false);
    expect(isIndexPosition({ ...missing, st: { N: "1" } }, queue)).toBe(false);
  });

  it("an attribute value must be a string or a whole number in DynamoDB's form", () => {
    for (const qt of [
      null,
      undefined,
      "1",
      1,
      { N: 1 },
      { N: ["1"] },
      { N: "" },
      { N: "-1" },
      { N: "1.5" },
    ]) {
      expect(isIndexPosition({ ...position, qt }, queue)).toBe(false);
    }
    expect(isIndexPosition({ ...position, qt: { N: "1e3" } }, queue)).toBe(false);
    expect(isIndexPosition({ ...position, qt: { N: "1".repeat(17) } }, queue)).toBe(false);
    expect(isIndexPosition({ ...position, q: { B: new Uint8Array(1) } }, queue)).toBe(false);
    expect(isIndexPosition({ ...position, q: { S: 5 } }, queue)).toBe(false);
  });

  it("the table's key may be a partition key's length, the index's sort key only a sort key's", () => {
    const outbox = [A.key, A.outboxShard, A.appliedAtMs];
    const at = { pk: { S: "S#step_1" }, ob: { S: "O#completed#0" }, obt: { S: "1700000000000#step_1" } };
    expect(isIndexPosition(at, outbox)).toBe(true);
    expect(isIndexPosition({ ...at, pk: { S: `S#${"a".repeat(2046)}` } }, outbox)).toBe(true);
    expect(isIndexPosition({ ...at, pk: { S: `S#${"a".repeat(2047)}` } }, outbox)).toBe(false);
    expect(isIndexPosition({ ...at, obt: { S: "1".repeat(1024) } }, outbox)).toBe(true);
    expect(isIndexPosition({ ...at, obt: { S: "1".repeat(1500) } }, outbox)).toBe(false);
  });

  it("each attribute holds one value of its key schema's type, a string never empty nor ill-formed", () => {
    expect(isIndexPosition({ ...position, qt: { S: "1" } }, queue)).toBe(false);
    expect(isIndexPosition({ ...position, pk: { N: "1" } }, queue)).toBe(false);
    expect(isIndexPosition({ ...position, q: { N: "1" } }, queue)).toBe(false);
    expect(isIndexPosition({ ...position, pk: { S: "D#hook#s", N: "1" } }, queue)).toBe(false);
    expect(isIndexPosition({ ...position, qt: { N: "1", S: "1" } }, queue)).toBe(false);
    expect(isIndexPosition({ ...position, pk: { S: "" } }, queue)).toBe(false);
    expect(isIndexPosition({ ...position, q: { S: "" } }, queue)).toBe(false);
    expect(isIndexPosition({ ...position, pk: { S: "D#\ud800" } }, queue)).toBe(false);
    expect(isIndexPosition({ ...position, pk: { S: "D#\ud83d\ude00" } }, queue)).toBe(true);
    expect(isIndexPosition([position.pk, position.q, position.qt], ["0", "1", "2"])).toBe(false);
    // An attribute that is no key of the table or an index, even when the caller names it.
    expect(isIndexPosition({ pk: position.pk, st: { S: "completed" } }, [A.key, A.status])).toBe(false);
    // An index's partition key may be a partition key's length.
    expect(isIndexPosition({ ...position, q: { S: "q".repeat(2048) } }, queue)).toBe(true);
    expect(isIndexPosition({ ...position, q: { S: "q".repeat(2049) } }, queue)).toBe(false);
  });

  it("isKeyPart: a non-empty, well-formed string within the kind's limit", () => {
    for (const value of [undefined, null, 5, ["a"], { S: "a" }, "", "\udc00", "a\ud800b"]) {
      expect(isKeyPart(value)).toBe(false);
    }
    expect(isKeyPart("a")).toBe(true);
    expect(isKeyPart("a".repeat(2048))).toBe(true);
    expect(isKeyPart("a".repeat(2049))).toBe(false);
    expect(isKeyPart("a".repeat(1024), "sort")).toBe(true);
    expect(isKeyPart("a".repeat(1025), "sort")).toBe(false);
  });
});

describe("expression attribute names", () => {
  it("every alias the expressions use, and no other", () => {
    expect(alias(A.ttl)).toBe("#ttl");
    expect(namesFor("SET #ver = #ver + :one", "attribute_exists(#pk) AND #ttl > :now")).toEqual({
      "#ver": "ver",
      "#pk": "pk",
      "#ttl": "ttl",
    });
    expect(namesFor("SET x = :x")).toEqual({});
  });

  it("each set of expressions is read once: later calls answer the same map", () => {
    const first = namesFor("SET #lu = :until", "#lu < :now");
    expect(namesFor("SET #lu = :until", "#lu < :now")).toBe(first);
  });
});

describe("numbers", () => {
  it("num reads 0 and numOrNull null where there is no number", () => {
    expect(num({ N: "42" })).toBe(42);
    expect(num(undefined)).toBe(0);
    expect(num({ NULL: true })).toBe(0);
    expect(numOrNull({ N: "0" })).toBe(0);
    expect(numOrNull(undefined)).toBe(null);
    expect(numOrNull({ NULL: true })).toBe(null);
  });
});

// A fixed pseudo-random sequence, so the documents below are the same on every run.
function randomInts(seed: number): (below: number) => number {
  let state = seed;
  return (below) => {
    state = (state * 1_103_515_245 + 12_345) & 0x7fffffff;
    return Math.floor((state / 0x80000000) * below);
  };
}

// A document no deflate can shrink: characters whose UTF-8 bytes spread over nearly every byte value.
function incompressibleText(chars: number): string {
  const int = randomInts(7);
  let text = "";
  while (text.length < chars) {
    const r = int(93 + 51);
    if (r < 93) {
      const c = 32 + int(95);
      if (c !== 34 && c !== 92) text += String.fromCharCode(c);
      continue;
    }
    const lead = 0xc2 + (r - 93);
    const cp =
      lead <= 0xdf
        ? ((lead & 0x1f) << 6) | int(64)
        : lead <= 0xef
          ? ((lead & 0x0f) << 12) | int(4096)
          : ((lead & 0x07) << 18) | int(1 << 18);
    if ((cp >= 0x80 && cp < 0xd800) || (cp > 0xdfff && cp <= 0x10ffff)) text += String.fromCodePoint(cp);
  }
  return text;
}

// Text deflate shrinks to about half its UTF-8 bytes, but not below its UTF-16 length: random
// characters among 256 CJK ones (3 bytes each in UTF-8, 8 bits of information).
function cjkText(chars: number): string {
  const int = randomInts(11);
  let text = "";
  for (let i = 0; i < chars; i++) text += String.fromCharCode(0x4e00 + int(256));
  return text;
}

describe("step documents", () => {
  const padded = (bytes: number) => ({ x: "a".repeat(bytes - 8) }); // {"x":"…"} is 8 bytes of JSON

  it("a document under 1 KiB of JSON is kept as its text", () => {
    expect(utf8(JSON.stringify(padded(1023)))).toBe(1023);
    expect(encodeDocument(padded(1023))).toEqual({ S: JSON.stringify(padded(1023)) });
    expect(encodeDocument({ id: "step_1", n: null })).toEqual({ S: '{"id":"step_1","n":null}' });
  });

  it("from 1 KiB on it is stored raw-deflated, which anything with zlib reads back", () => {
    const stored = encodeDocument(padded(1024));
    expect(stored.S).toBeUndefined();
    expect(stored.B?.byteLength).toBeLessThan(100);
    expect(inflateRawSync(stored.B as Uint8Array).toString("utf8")).toBe(JSON.stringify(padded(1024)));
  });

  it("non-ASCII documents are measured in the bytes they cost: deflated when that is fewer bytes", () => {
    for (const chars of [400, 1100]) {
      const document = { text: cjkText(chars) };
      const bytes = utf8(JSON.stringify(document));
      const stored = encodeDocument(document);
      expect(stored.B?.byteLength).toBeLessThan(bytes);
      expect(stored.B?.byteLength).toBeGreaterThan(JSON.stringify(document).length);
      expect(decodeDocument({ [A.document]: stored })).toEqual(document);
    }
  });

  it("a document deflate cannot shrink stays text", () => {
    const document = { x: incompressibleText(700) };
    const text = JSON.stringify(document);
    expect(utf8(text)).toBeGreaterThanOrEqual(1024);
    expect(deflateRawSync(text, { level: 9 }).byteLength).toBeGreaterThanOrEqual(utf8(text));
    expect(encodeDocument(document)).toEqual({ S: text });
  });

  it("both forms read back as the same document; an item without one reads as {}", () => {
    const documents = [
      { id: "step_1", usage: null, n: 1.5, list: [1, "two", { three: 3 }] },
      padded(5000),
      { text: cjkText(3000), deep: JSON.parse(`${"[".repeat(60)}${"]".repeat(60)}`) },
      { x: incompressibleText(700), emoji: "😀", lone: "\ud800" },
    ];
    for (const document of documents)
      expect(decodeDocument({ [A.document]: encodeDocument(document) })).toEqual(document);
    expect(decodeDocument({ [A.document]: { S: '{"a":1}' } })).toEqual({ a: 1 });
    expect(decodeDocument({})).toEqual({});
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 })), (document) => {
        const json = JSON.parse(JSON.stringify(document));
        expect(decodeDocument({ [A.document]: encodeDocument(json) })).toEqual(json);
      }),
      { numRuns: 100 },
    );
  });

  it("a step item reads as its stored step: sinks sorted, absent numbers 0, no stall mark null", () => {
    const item: Item = {
      [A.key]: { S: "S#step_1" },
      [A.document]: encodeDocument({ id: "step_1" }),
      [A.status]: { S: "completed" },
      [A.receivedAt]: { N: "100" },
      [A.updatedAt]: { N: "200" },
      [A.owedSinks]: { SS: ["slack", "hook", "pager"] },
    };
    expect(toStoredStep(item)).toEqual({
      stalledAtMs: null,
      document: { id: "step_1" },
      status: "completed",
      receivedAt: 100,
      updatedAt: 200,
      conflicts: 0,
      owedSinks: ["hook", "pager", "slack"],
    });
    const stalled = toStoredStep({ ...item, [A.stalledAt]: { N: "150" }, [A.conflicts]: { N: "2" } });
    expect(stalled).toMatchObject({ stalledAtMs: 150, conflicts: 2 });
    expect(toStoredStep({ ...item, [A.owedSinks]: { SS: [] } }).owedSinks).toEqual([]);
    expect(toStoredStep({ [A.key]: { S: "S#x" } }).owedSinks).toEqual([]);
  });
});

const T0 = 1_700_000_000_000;
const attempt = (n: number, over: Partial<DeliveryAttempt> = {}): DeliveryAttempt => ({
  attempt: n,
  at: T0 + n * 1000,
  status: 503,
  latencyMs: 40 + n,
  error: "sink answered HTTP 503",
  ...over,
});
const delivery = (over: Partial<Delivery> = {}): Delivery => ({
  kind: "run_step",
  subjectId: "step_1",
  runId: "run_1",
  sink: "hook",
  event: "run_step.completed",
  state: "pending",
  attempts: 0,
  scheduleBase: 0,
  lastError: null,
  nextAttemptMs: T0 + 500,
  createdAtMs: T0,
  log: [],
  version: 0,
  ...over,
});
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

const DELIVERIES: Record<string, Delivery> = {
  new: delivery(),
  retrying: delivery({
    attempts: 2,
    scheduleBase: 1,
    lastError: "timed out after 10000 ms",
    nextAttemptMs: T0 + 60_000,
    log: [attempt(1), attempt(2, { status: null, error: "timed out after 10000 ms" })],
    version: 3,
  }),
  delivered: delivery({
    state: "delivered",
    attempts: 1,
    nextAttemptMs: null,
    log: [attempt(1, { status: 200, error: null })],
    version: 1,
  }),
  dead: delivery({
    state: "dead",
    attempts: 12,
    lastError: "sink answered HTTP 500",
    nextAttemptMs: null,
    log: range(3, 12).map((n) => attempt(n, { status: 500, error: "sink answered HTTP 500" })),
    version: 12,
  }),
  stalled: delivery({ event: STALLED_EVENT, sink: "pager", subjectId: "step_😀", version: 2 }),
};

describe("deliveries of every kind of subject", () => {
  const kinds = [
    ["run_step", "D#hook#step_1", undefined],
    ["response", "D#hook~response#step_1", "response"],
    ["agent_session", "D#hook~agent_session#step_1", "agent_session"],
  ] as const;

  it("a run step's key and item are as before there were kinds; another kind's key and item say which", () => {
    for (const [kind, key, attribute] of kinds) {
      const d = { ...(DELIVERIES.retrying as Delivery), kind };
      const item = encodeDelivery(d, null);
      expect(item[A.key]).toEqual({ S: key });
      expect(item[A.subjectKind]).toEqual(attribute === undefined ? undefined : { S: attribute });
      expect(decodeDelivery(item)).toEqual(d);
      expect(deliveryRefOfKey(key)).toEqual({ kind, subjectId: "step_1", sink: "hook", stalled: false });
    }
    const stall = encodeDelivery(
      { ...(DELIVERIES.retrying as Delivery), kind: "response", event: "response.stalled" },
      null,
    );
    expect(stall[A.key]).toEqual({ S: "D#hook~response~stalled#step_1" });
    expect(deliveryRefOfKey("D#hook~response~stalled#a#b")).toEqual({
      kind: "response",
      subjectId: "a#b",
      sink: "hook",
      stalled: true,
    });
  });

  it("an unknown kind attribute reads as a run step; keys that are not a delivery's read as none", () => {
    const item = { ...encodeDelivery(DELIVERIES.retrying as Delivery, null), [A.subjectKind]: { S: "nope" } };
    expect(decodeDelivery(item).kind).toBe("run_step");
    for (const key of ["S#step_1", "D#", "D##step_1", "D#hook", "D#hook~x#step_1", "D#~response#s"]) {
      expect(deliveryRefOfKey(key), key).toBeNull();
    }
  });

  it("each kind's subject is read from its own item", () => {
    expect(subjectItemKey({ kind: "run_step", subjectId: "x" })).toBe("S#x");
    expect(subjectItemKey({ kind: "response", subjectId: "x" })).toBe("R#x");
    expect(subjectItemKey({ kind: "agent_session", subjectId: "x" })).toBe("V#x");
  });
});

describe("deliveries", () => {
  it("every field reads back as written, in every state", () => {
    for (const d of Object.values(DELIVERIES)) {
      expect(decodeDelivery(encodeDelivery(d, null))).toEqual(d);
      expect(decodeDelivery(encodeDelivery(d, 1_800_000_000))).toEqual(d);
    }
  });

  it("the item: its key, its fields, the TTL when there is one", () => {
    const d = DELIVERIES.retrying as Delivery;
    const item = encodeDelivery(d, 1_800_000_000);
    expect(item).toMatchObject({
      pk: { S: "D#hook#step_1" },
      sid: { S: "step_1" },
      run: { S: "run_1" },
      sink: { S: "hook" },
      ev: { S: "run_step.completed" },
      ds: { S: "pending" },
      n: { N: "2" },
      b: { N: "1" },
      err: { S: "timed out after 10000 ms" },
      cms: { N: String(T0) },
      ver: { N: "3" },
      ttl: { N: "1800000000" },
    });
    expect(encodeDelivery(d, null)[A.ttl]).toBeUndefined();
    expect(encodeDelivery(DELIVERIES.new as Delivery, null)[A.lastError]).toEqual({ NULL: true });
    expect(encodeDelivery(DELIVERIES.stalled as Delivery, null)[A.key]).toEqual({
      S: "D#pager~stalled#step_😀",
    });
  });

  it("the attempt log: slot (attempt − 1) mod 10 holds the attempt, null status and error as NULL", () => {
    const log = encodeDelivery(DELIVERIES.retrying as Delivery, null)[A.attemptLog]?.M;
    expect(log).toEqual({
      "0": {
        M: {
          a: { N: "1" },
          t: { N: String(T0 + 1000) },
          s: { N: "503" },
          l: { N: "41" },
          e: { S: "sink answered HTTP 503" },
        },
      },
      "1": {
        M: {
          a: { N: "2" },
          t: { N: String(T0 + 2000) },
          s: { NULL: true },
          l: { N: "42" },
          e: { S: "timed out after 10000 ms" },
        },
      },
    });
    const ring = encodeDelivery(DELIVERIES.dead as Delivery, null)[A.attemptLog]?.M ?? {};
    expect(Object.keys(ring).sort()).toEqual(range(0, 9).map(String));
    expect(ring["0"]?.M?.a).toEqual({ N: "11" });
    expect(ring["2"]?.M?.a).toEqual({ N: "3" });
  });

  it("only pending and dead deliveries are in the queue index: pending by when due, dead by when it died", () => {
    const shard = shardOf("step_1", TABLE_SCHEMA.queueShards);
    const pending = encodeDelivery(DELIVERIES.retrying as Delivery, null);
    expect(pending[A.queue]).toEqual({ S: `P#hook#${shard}` });
    expect(pending[A.queueAt]).toEqual({ N: String(T0 + 60_000) });
    // A pending delivery with no time set is due from its creation.
    const unset = encodeDelivery(delivery({ nextAttemptMs: null }), null);
    expect(unset[A.queueAt]).toEqual({ N: String(T0) });
    expect(decodeDelivery(unset).nextAttemptMs).toBe(T0);

    const dead = encodeDelivery(DELIVERIES.dead as Delivery, null);
    expect(dead[A.queue]).toEqual({ S: `X#hook#${shard}` });
    expect(dead[A.queueAt]).toEqual({ N: String(T0 + 12_000) });
    // Dead without any attempt (never tried): it died when it was created.
    const neverTried = encodeDelivery(delivery({ state: "dead", nextAttemptMs: null }), null);
    expect(neverTried[A.queueAt]).toEqual({ N: String(T0) });

    const delivered = encodeDelivery(DELIVERIES.delivered as Delivery, null);
    expect(delivered[A.queue]).toBeUndefined();
    expect(delivered[A.queueAt]).toBeUndefined();
  });

  it("the log reads oldest first whatever order the slots come in", () => {
    const item = encodeDelivery(DELIVERIES.dead as Delivery, null);
    const slots = Object.entries(item[A.attemptLog]?.M ?? {}).reverse();
    const shuffled = {
      ...item,
      [A.attemptLog]: { M: Object.fromEntries([...slots.slice(4), ...slots.slice(0, 4)]) },
    };
    expect(decodeDelivery(shuffled).log.map((a) => a.attempt)).toEqual(range(3, 12));
  });

  it("an item missing attributes reads with empty values instead of failing", () => {
    expect(
      decodeDelivery({ [A.deliveryState]: { S: "pending" }, [A.event]: { S: "run_step.failed" } }),
    ).toEqual({
      kind: "run_step",
      subjectId: "",
      runId: "",
      sink: "",
      event: "run_step.failed",
      state: "pending",
      attempts: 0,
      scheduleBase: 0,
      lastError: null,
      nextAttemptMs: 0,
      createdAtMs: 0,
      log: [],
      version: 0,
    });
    const slots = { M: { "0": { M: { a: { N: "1" } } }, "1": { S: "not a slot" } } };
    expect(decodeDelivery({ [A.attemptLog]: slots }).log).toEqual([
      { attempt: 0, at: 0, status: null, latencyMs: 0, error: null },
      { attempt: 1, at: 0, status: null, latencyMs: 0, error: null },
    ]);
  });
});

describe("sink health", () => {
  it("a sink with no item is healthy, with nothing recorded", () => {
    expect(decodeSinkHealth("hook", {})).toEqual({
      name: "hook",
      state: "healthy",
      consecutiveFailures: 0,
      lastSuccess: null,
      lastFailure: null,
      nextProbeAtMs: null,
      probeLevel: 0,
      disabledReason: null,
      version: 0,
    });
  });

  it("every field of a failing sink's item", () => {
    const item: Item = {
      [A.health]: { S: "failing" },
      [A.failures]: { N: "4" },
      [A.lastSuccessAt]: { N: "100" },
      [A.lastSuccessStatus]: { N: "204" },
      [A.lastFailureAt]: { N: "200" },
      [A.lastFailureStatus]: { N: "503" },
      [A.lastFailureError]: { S: "sink answered HTTP 503" },
      [A.probeAt]: { N: "300" },
      [A.probeLevel]: { N: "2" },
      [A.version]: { N: "9" },
    };
    expect(decodeSinkHealth("hook", item)).toEqual({
      name: "hook",
      state: "failing",
      consecutiveFailures: 4,
      lastSuccess: { atMs: 100, status: 204 },
      lastFailure: { atMs: 200, status: 503, error: "sink answered HTTP 503" },
      nextProbeAtMs: 300,
      probeLevel: 2,
      disabledReason: null,
      version: 9,
    });
  });

  it("outcomes without an HTTP status or message, and a disabled sink's reason", () => {
    const item: Item = {
      [A.health]: { S: "disabled" },
      [A.lastSuccessAt]: { N: "100" },
      [A.lastSuccessStatus]: { NULL: true },
      [A.lastFailureAt]: { N: "200" },
      [A.lastFailureStatus]: { NULL: true },
      [A.disabledReason]: { S: "operator" },
    };
    expect(decodeSinkHealth("hook", item)).toMatchObject({
      state: "disabled",
      lastSuccess: { atMs: 100, status: null },
      lastFailure: { atMs: 200, status: null, error: "" },
      disabledReason: "operator",
    });
  });
});

describe("cursors", () => {
  const urlSafe = /^[A-Za-z0-9_-]*$/;
  const standard = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64");
  // Positions whose standard base64 holds each character a URL would mangle: + / and = padding.
  const positions: unknown[] = [
    { state: "pending", sink: "hook", shard: 3, key: { pk: { S: "D#hook#step_?>" } } },
    ["run_1", "01700000000#step_~~~", "S#step_~~~"],
    ["run_1", "step_???"],
    { before: "1700000000000#step_1", statuses: "completed" },
    "step_😀 ünïcode 字",
    ["\ud800"],
  ];

  it("round trips any position, in URL-safe characters without padding", () => {
    const all = positions.map(standard).join("");
    expect(all).toContain("+");
    expect(all).toContain("/");
    expect(all).toContain("=");
    for (const position of positions) {
      const cursor = encodeCursor(position);
      expect(cursor).toMatch(urlSafe);
      expect(decodeCursor(cursor)).toEqual(position);
    }
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const cursor = encodeCursor(value);
        expect(cursor).toMatch(urlSafe);
        expect(decodeCursor(cursor)).toEqual(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 200 },
    );
  });

  it("a string that is not one of ours decodes to undefined", () => {
    const base64url = (bytes: number[]) =>
      Buffer.from(bytes).toString("base64").replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
    for (const cursor of [
      "",
      "!!!!",
      "a b",
      "%7B%7D",
      base64url([...Buffer.from("not json")]),
      base64url([...Buffer.from('{"a":1')]),
      // A JSON string holding bytes that are not UTF-8: refused, not read as U+FFFD.
      base64url([0x22, 0xff, 0xfe, 0x22]),
    ]) {
      expect(decodeCursor(cursor)).toBeUndefined();
    }
  });

  it("a tampered cursor decodes to something else or nothing, never to the original", () => {
    const position = { state: "pending", sink: "hook", shard: 0 };
    const cursor = encodeCursor(position);
    const tampered = `${cursor.slice(0, 10)}${cursor[10] === "A" ? "B" : "A"}${cursor.slice(11)}`;
    expect(decodeCursor(tampered)).not.toEqual(position);
  });
});

describe("a real round trip through DynamoDB", () => {
  let store: TestStore;
  beforeAll(async () => {
    store = await startTestStore("item-codec-test");
  });
  afterAll(async () => {
    await store?.close();
  });

  const roundTrip = async (item: Item): Promise<Item> => {
    await store.client.send(new PutItemCommand({ TableName: store.tableName, Item: item }));
    const got = await store.client.send(
      new GetItemCommand({
        TableName: store.tableName,
        Key: { pk: item.pk as { S: string } },
        ConsistentRead: true,
      }),
    );
    return got.Item ?? {};
  };

  it("deliveries, as DynamoDB gives them back", async () => {
    for (const d of Object.values(DELIVERIES)) {
      expect(decodeDelivery(await roundTrip(encodeDelivery(d, 1_800_000_000)))).toEqual(d);
    }
  });

  it("step documents in both forms", async () => {
    const documents = [{ id: "step_short" }, { id: "step_long", text: cjkText(2000) }];
    for (const document of documents) {
      const item = await roundTrip({
        [A.key]: { S: stepKey(document.id) },
        [A.document]: encodeDocument(document),
      });
      expect(decodeDocument(item)).toEqual(document);
    }
  });
});
