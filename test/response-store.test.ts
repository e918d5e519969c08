import { randomBytes } from "node:crypto";
import { type DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newDelivery } from "../src/domain/delivery.js";
import {
  minimalResponse,
  TRUNCATION_MARK,
  truncatedResponse,
} from "../src/domain/openai/fit-response-document.js";
import {
  RESPONSE_TERMINAL_STATUSES,
  ResponseObjectSchema,
  type ResponseStatus,
} from "../src/domain/openai/response-object.js";
import { TERMINAL_STATUSES } from "../src/domain/run-step-schema.js";
import type { ApplyOutcome } from "../src/domain/state-rules.js";
import { createLogger } from "../src/observability/logger.js";
import { DynamoDeliveryStore } from "../src/store/dynamo-delivery-store.js";
import { ensureTable } from "../src/store/ensure-table.js";
import { encodeDocument, keyOf, outboxSortKey, shardOf, watermarkKey } from "../src/store/item-codec.js";
import { MAX_ITEM_BYTES, valueSize } from "../src/store/item-size.js";
import {
  decodeResponse,
  ResponseStore,
  type ResponseToApply,
  responseKey,
  responseOutboxWord,
} from "../src/store/response-store.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { completedResponse } from "./fixtures/openai-objects.js";
import { overriding } from "./support/overriding.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// The response store on its own against real dynalite: SPEC §9's state rules as one conditional
// write (queued → in_progress → one terminal status, never back, never between terminals), the
// outbox entry and owed sinks written with the terminal apply, and a document that always fits.

const A = TABLE_SCHEMA.attributes;
const T = 1_764_000_000_000;
let store: TestStore;
let seq = 0;
const uid = (prefix: string) => `${prefix}_${seq++}`;
const clock = { now: T };

beforeAll(async () => {
  store = await startTestStore("responses");
});
afterAll(() => store.close());

const responses = (retentionDays = 0, tableName = store.tableName) =>
  new ResponseStore({ client: store.client, tableName, retentionDays, nowMs: () => clock.now });

/** A response document: the base fields every response has, this status, these extras. */
function doc(id: string, status: ResponseStatus, extra: Record<string, unknown> = {}) {
  return {
    id,
    object: "response",
    created_at: 1_741_476_542,
    status,
    model: "gpt-4.1-2025-04-14",
    output: [],
    error: null,
    incomplete_details: null,
    usage: null,
    metadata: {},
    background: true,
    ...extra,
  };
}

/** What a hydration hands the store. */
function toApply(
  document: Record<string, unknown>,
  hydratedAtMs: number,
  options: { eventId?: string; sinks?: readonly string[] } = {},
): ResponseToApply {
  const response = v.parse(ResponseObjectSchema, document);
  const status = String(document.status);
  return {
    response,
    document,
    eventId: options.eventId ?? uid("evt"),
    hydratedAtMs,
    intents: (options.sinks ?? []).map((sink) => ({ sink, event: `response.${status}` })),
  };
}

async function rawItem(id: string, tableName = store.tableName) {
  const { Item } = await store.client.send(
    new GetItemCommand({ TableName: tableName, Key: keyOf(responseKey(id)), ConsistentRead: true }),
  );
  return Item;
}

/** A `random` under which `shuffled` reverses a list of `n`: a swap of i with n-1-i, then none. */
function reversing(n: number): () => number {
  let i = n - 1;
  return () => {
    const j = Math.min(n - 1 - i, i);
    const r = (j + 0.5) / (i + 1);
    i = i === 1 ? n - 1 : i - 1;
    return r;
  };
}

/** Text deflate cannot shrink: random bytes as base64 (about 6 bits of entropy a character). */
const noise = (chars: number) =>
  randomBytes(Math.ceil((chars * 3) / 4))
    .toString("base64")
    .slice(0, chars);

describe("keys", () => {
  it("a response's item and its outbox word never meet a run step's", () => {
    expect(responseKey("resp_1")).toBe("R#resp_1");
    expect(responseOutboxWord("failed")).toBe("response.failed");
  });
});

describe("apply: SPEC §9's state rules in one conditional write", () => {
  it("created: every attribute the run projection, the rollup and the routes read; no outbox entry before a terminal status; no TTL without retention", async () => {
    const id = uid("resp_created");
    clock.now = T + 1_500;
    const document = doc(id, "in_progress", {
      usage: { input_tokens: 3, output_tokens: 4, total_tokens: 7 },
      prompt: { id: "pmpt_1", version: "2" },
      conversation: { id: "conv_1" },
    });
    const input = toApply(document, T + 1_000, { eventId: "evt_created", sinks: ["hook"] });
    expect(await responses().apply(input)).toBe("created");
    expect(await rawItem(id)).toEqual({
      [A.key]: { S: `R#${id}` },
      [A.document]: { S: JSON.stringify(document) },
      [A.status]: { S: "in_progress" },
      [A.statusRank]: { N: "1" },
      [A.hydratedAt]: { N: String(T + 1_000) },
      [A.runId]: { S: id },
      [A.threadId]: { S: "conv_1" },
      [A.assistantId]: { S: "pmpt_1" },
      [A.model]: { S: "gpt-4.1-2025-04-14" },
      [A.createdAt]: { N: "1741476542" },
      [A.updatedAt]: { N: String(Math.floor((T + 1_500) / 1000)) },
      [A.receivedAt]: { N: String(Math.floor((T + 1_500) / 1000)) },
      [A.promptId]: { S: "pmpt_1" },
      [A.promptTokens]: { N: "3" },
      [A.completionTokens]: { N: "4" },
      [A.totalTokens]: { N: "7" },
      [A.eventIds]: { SS: ["evt_created"] },
    });
    expect(await responses().get(id)).toEqual({
      document,
      status: "in_progress",
      receivedAt: Math.floor((T + 1_500) / 1000),
      updatedAt: Math.floor((T + 1_500) / 1000),
      hydratedAtMs: T + 1_000,
      eventIds: ["evt_created"],
      owedSinks: [],
      terminalAtMs: null,
    });
  });

  it("without a prompt the model is the assistant and no prompt id is kept; without a conversation the response is its own thread; without usage no tokens", async () => {
    const id = uid("resp_bare");
    expect(await responses().apply(toApply(doc(id, "queued"), T))).toBe("created");
    const item = await rawItem(id);
    expect(item?.[A.threadId]).toEqual({ S: id });
    expect(item?.[A.assistantId]).toEqual({ S: "gpt-4.1-2025-04-14" });
    expect(item?.[A.statusRank]).toEqual({ N: "0" });
    for (const absent of [A.promptId, A.promptTokens, A.completionTokens, A.totalTokens, A.ttl]) {
      expect(item?.[absent]).toBeUndefined();
    }
  });

  it("with a retention, the item expires that many days after its last write", async () => {
    const id = uid("resp_ttl");
    clock.now = T + 2_999;
    await responses(2).apply(toApply(doc(id, "queued"), T));
    expect((await rawItem(id))?.[A.ttl]).toEqual({ N: String(Math.floor((T + 2_999) / 1000) + 2 * 86_400) });
    clock.now = T + 90_000;
    await responses(2).apply(toApply(doc(id, "completed"), T + 1));
    expect((await rawItem(id))?.[A.ttl]).toEqual({ N: String(Math.floor((T + 90_000) / 1000) + 2 * 86_400) });
  });

  it("queued → in_progress → terminal: each updated; the terminal apply writes the owed sinks and the outbox entry; receivedAt stays the first", async () => {
    const id = uid("resp_forward");
    const s = responses();
    clock.now = T;
    expect(await s.apply(toApply(doc(id, "queued"), T, { eventId: "evt_a", sinks: ["ignored"] }))).toBe(
      "created",
    );
    clock.now = T + 10_000;
    expect(await s.apply(toApply(doc(id, "in_progress"), T + 1, { eventId: "evt_b", sinks: ["x"] }))).toBe(
      "updated",
    );
    let item = await rawItem(id);
    for (const absent of [A.owedSinks, A.outboxShard, A.appliedAtMs]) expect(item?.[absent]).toBeUndefined();
    clock.now = T + 20_000;
    const final = doc(id, "failed", { error: { code: "server_error", message: "boom" } });
    expect(await s.apply(toApply(final, T + 2, { eventId: "evt_c", sinks: ["hook", "audit"] }))).toBe(
      "updated",
    );
    item = await rawItem(id);
    expect(item?.[A.outboxShard]).toEqual({
      S: `O#response.failed#${shardOf(id, TABLE_SCHEMA.responseOutboxShards)}`,
    });
    expect(item?.[A.appliedAtMs]).toEqual({ S: outboxSortKey(T + 20_000, id) });
    expect(item?.[A.statusRank]).toEqual({ N: "2" });
    expect(await s.get(id)).toEqual({
      document: final,
      status: "failed",
      receivedAt: Math.floor(T / 1000),
      updatedAt: Math.floor((T + 20_000) / 1000),
      hydratedAtMs: T + 2,
      eventIds: ["evt_a", "evt_b", "evt_c"],
      owedSinks: ["audit", "hook"],
      terminalAtMs: T + 20_000,
    });
  });

  it("a terminal apply owing nothing writes the outbox entry and no owed sinks; created straight at terminal is created", async () => {
    const id = uid("resp_none");
    clock.now = T + 5;
    expect(await responses().apply(toApply(doc(id, "cancelled"), T))).toBe("created");
    const item = await rawItem(id);
    expect(item?.[A.owedSinks]).toBeUndefined();
    expect(item?.[A.outboxShard]?.S).toMatch(/^O#response\.cancelled#[0-3]$/);
    expect((await responses().get(id))?.terminalAtMs).toBe(T + 5);
  });

  it("never back: after a terminal status in_progress and queued are stale; after in_progress queued is stale; the stored response is unchanged", async () => {
    const s = responses();
    const id = uid("resp_back");
    await s.apply(toApply(doc(id, "in_progress"), T + 10, { eventId: "evt_1" }));
    expect(await s.apply(toApply(doc(id, "queued"), T + 20, { eventId: "evt_2" }))).toBe("stale");
    await s.apply(toApply(doc(id, "completed"), T + 30, { eventId: "evt_3", sinks: ["hook"] }));
    const before = await s.get(id);
    clock.now += 60_000;
    expect(await s.apply(toApply(doc(id, "in_progress"), T + 40, { eventId: "evt_4" }))).toBe("stale");
    expect(await s.apply(toApply(doc(id, "queued"), T + 50, { eventId: "evt_5" }))).toBe("stale");
    expect(await s.get(id)).toEqual(before);
    expect(before?.eventIds).toEqual(["evt_1", "evt_3"]);
  });

  it("at the same non-terminal rank the later fetch wins; an earlier or equally old one is stale", async () => {
    const s = responses();
    const id = uid("resp_rank");
    const first = doc(id, "in_progress", {
      output: [{ id: "msg_1", type: "message", status: "in_progress" }],
    });
    const later = doc(id, "in_progress", { output: [{ id: "msg_1", type: "message", status: "completed" }] });
    await s.apply(toApply(first, T + 100));
    expect(await s.apply(toApply(later, T + 101))).toBe("updated");
    expect(await s.apply(toApply(first, T + 100))).toBe("stale");
    expect(await s.apply(toApply(first, T + 101))).toBe("stale");
    expect(await s.get(id)).toMatchObject({ document: later, hydratedAtMs: T + 101 });
    // Queued responses too.
    const q = uid("resp_rank_q");
    await s.apply(toApply(doc(q, "queued"), T + 5));
    expect(await s.apply(toApply(doc(q, "queued", { metadata: { n: "2" } }), T + 6))).toBe("updated");
    expect(await s.apply(toApply(doc(q, "queued"), T + 4))).toBe("stale");
    expect((await s.get(q))?.document.metadata).toEqual({ n: "2" });
  });

  it("a terminal response never changes: the same status again is unchanged (even fetched later), another terminal a conflict", async () => {
    const s = responses();
    const id = uid("resp_final");
    const done = doc(id, "completed");
    await s.apply(toApply(done, T, { eventId: "evt_done", sinks: ["hook"] }));
    const before = await s.get(id);
    clock.now += 1_000;
    expect(
      await s.apply(toApply({ ...done, metadata: { changed: "yes" } }, T + 1_000, { sinks: ["other"] })),
    ).toBe("unchanged");
    for (const other of ["failed", "cancelled", "incomplete"] as const) {
      expect(await s.apply(toApply(doc(id, other), T + 2_000, { sinks: ["other"] }))).toBe("conflict");
    }
    expect(await s.get(id)).toEqual(before);
  });

  it("concurrent applies in any order converge to the same stored response, with exactly one created and one terminal transition", async () => {
    const s = responses();
    const outcomesOf: ApplyOutcome[][] = [];
    const stored = [];
    for (let trial = 0; trial < 6; trial++) {
      const id = `resp_race_${trial}_${seq++}`;
      const final = doc(id, "incomplete", { incomplete_details: { reason: "max_output_tokens" } });
      const inputs = [
        toApply(doc(id, "queued"), T + 1, { eventId: "evt_q" }),
        toApply(doc(id, "in_progress"), T + 2, { eventId: "evt_p1" }),
        toApply(doc(id, "in_progress", { metadata: { later: "yes" } }), T + 3, { eventId: "evt_p2" }),
        toApply(final, T + 4, { eventId: "evt_t1", sinks: ["hook", "chat"] }),
        toApply(final, T + 4, { eventId: "evt_t2", sinks: ["hook", "chat"] }),
        toApply(final, T + 4, { eventId: "evt_t3", sinks: ["hook", "chat"] }),
      ];
      // A different order every trial (rotations and reversals), all at once.
      const order = inputs.map(
        (_, i) => inputs[(i * (trial + 1) + trial) % inputs.length] as ResponseToApply,
      );
      const ordered = trial % 2 === 0 ? [...new Set(order)] : [...new Set(order)].reverse();
      for (const input of inputs) if (!ordered.includes(input)) ordered.push(input);
      const outcomes = await Promise.all(ordered.map((input) => s.apply(input)));
      const byEvent = new Map(ordered.map((input, i) => [input.eventId, outcomes[i] as ApplyOutcome]));
      const terminal = ["evt_t1", "evt_t2", "evt_t3"].map((e) => byEvent.get(e));
      outcomesOf.push(outcomes);
      expect(outcomes.filter((o) => o === "created")).toHaveLength(1);
      expect(terminal.filter((o) => o === "created" || o === "updated")).toHaveLength(1);
      expect(terminal.filter((o) => o === "unchanged")).toHaveLength(2);
      const got = await s.get(id);
      expect(got?.eventIds.filter((e) => e.startsWith("evt_t"))).toHaveLength(1);
      stored.push({
        document: { ...got?.document, id: "same" },
        status: got?.status,
        hydratedAtMs: got?.hydratedAtMs,
        owedSinks: got?.owedSinks,
      });
    }
    expect(outcomesOf).toHaveLength(6);
    for (const one of stored) {
      expect(one).toEqual({
        document: { ...doc("same", "incomplete"), incomplete_details: { reason: "max_output_tokens" } },
        status: "incomplete",
        hydratedAtMs: T + 4,
        owedSinks: ["chat", "hook"],
      });
    }
  });
});

describe("get", () => {
  it("reads OpenAI's completed response (every output item type) back exactly as fetched", async () => {
    const document = { ...completedResponse, id: uid("resp_fixture") } as Record<string, unknown>;
    expect(await responses().apply(toApply(document, T, { eventId: "evt_fx" }))).toBe("created");
    expect(await responses().get(String(document.id))).toMatchObject({
      document,
      status: "completed",
      eventIds: ["evt_fx"],
    });
    expect(await rawItem(String(document.id))).toMatchObject({
      [A.threadId]: { S: completedResponse.conversation?.id },
      [A.assistantId]: { S: "pmpt_abc123" },
      [A.totalTokens]: { N: "123" },
    });
  });

  it("an unknown or oversize id is null", async () => {
    expect(await responses().get(uid("resp_unknown"))).toBeNull();
    expect(await responses().get("r".repeat(3_000))).toBeNull();
  });

  it("decodes an item missing what it would have, as a queued response with nothing owed", () => {
    expect(decodeResponse({ [A.key]: { S: "R#x" } })).toEqual({
      document: {},
      status: "queued",
      receivedAt: 0,
      updatedAt: 0,
      hydratedAtMs: 0,
      eventIds: [],
      owedSinks: [],
      terminalAtMs: null,
    });
  });
});

describe("the stored document always fits its item", () => {
  // Output items carrying `chars` of incompressible text in total.
  const bigOutput = (items: number, chars: number) =>
    Array.from({ length: items }, (_, i) => ({
      id: `msg_${i}`,
      type: "message",
      status: "completed",
      role: "assistant",
      content: [{ type: "output_text", text: noise(Math.ceil(chars / items)), annotations: [] }],
    }));

  it("one that deflates within the limit is kept whole", async () => {
    const id = uid("resp_whole");
    const document = doc(id, "completed", { output: bigOutput(10, 300_000) });
    expect(await responses().apply(toApply(document, T))).toBe("created");
    expect((await responses().get(id))?.document).toEqual(document);
  });

  it("one that deflates over the item limit is stored with its output summarised and stepwatch_truncated", async () => {
    const id = uid("resp_big");
    const document = doc(id, "completed", {
      output: bigOutput(20, 600_000),
      usage: { input_tokens: 1, output_tokens: 2, total_tokens: 3 },
    });
    const bytes = valueSize({ S: JSON.stringify(document) });
    expect(await responses().apply(toApply(document, T, { sinks: ["hook"] }))).toBe("created");
    const got = await responses().get(id);
    expect(got?.document).toEqual(truncatedResponse(document, bytes));
    expect(got?.document[TRUNCATION_MARK]).toMatchObject({ original_bytes: bytes, output_items: 20 });
    expect(got?.owedSinks).toEqual(["hook"]);
    expect(await rawItem(id)).toMatchObject({ [A.totalTokens]: { N: "3" } });
  });

  it("one absurd even summarised is reduced to how it ended; the write does not fail", async () => {
    const id = uid("resp_absurd");
    // Each item's preview alone is 500 characters of noise: 1,500 of them exceed the item summarised.
    const document = doc(id, "failed", {
      error: { code: "server_error", message: "m" },
      output: bigOutput(1_500, 1_500 * 600),
    });
    const bytes = valueSize({ S: JSON.stringify(document) });
    expect(await responses().apply(toApply(document, T))).toBe("created");
    expect((await responses().get(id))?.document).toEqual(minimalResponse(document, bytes));
  });

  it("one just under the old fixed limit, with the longest ids, model and many owed sinks, still fits its item (the write used to fail on size)", async () => {
    const id = `resp_${"i".repeat(250)}`;
    const long = (prefix: string) => `${prefix}${"x".repeat(255 - prefix.length)}`;
    const sinks = Array.from(
      { length: 40 },
      (_, i) => `sink_${String(i).padStart(2, "0")}_${"s".repeat(55)}`,
    );
    const padding = noise(600_000);
    const sized = (chars: number) =>
      doc(id, "completed", {
        model: long("m"),
        prompt: { id: long("pmpt_") },
        conversation: { id: long("conv_") },
        usage: { input_tokens: 1, output_tokens: 2, total_tokens: 3 },
        output: [{ id: "msg_1", type: "message", status: "completed", text: padding.slice(0, chars) }],
      });
    // The largest document the store once kept whole (a fixed 2 KB allowance and the id).
    const oldLimit = MAX_ITEM_BYTES - 2_048 - id.length * 3;
    let lo = 300_000;
    let hi = 600_000;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (valueSize(encodeDocument(sized(mid))) <= oldLimit) lo = mid;
      else hi = mid;
    }
    const document = sized(lo);
    expect(valueSize(encodeDocument(document))).toBeGreaterThan(oldLimit - 100);
    const bytes = valueSize({ S: JSON.stringify(document) });
    expect(await responses().apply(toApply(document, T, { eventId: long("evt_"), sinks }))).toBe("created");
    const got = await responses().get(id);
    expect(got?.owedSinks).toHaveLength(40);
    expect(got?.document).toEqual(truncatedResponse(document, bytes));
    // A smaller one of the same response is kept whole.
    const id2 = `resp_${"j".repeat(250)}`;
    const small = { ...sized(200_000), id: id2 };
    expect(await responses().apply(toApply(small, T, { eventId: long("evt_"), sinks }))).toBe("created");
    expect((await responses().get(id2))?.document).toEqual(small);
  });
});

describe("outbox recovery of responses (SPEC §6 over §9)", () => {
  it("a terminal response applied owing sinks whose deliveries were never recorded is recovered as pending response deliveries; the watermark goes on", async () => {
    const tableName = `responses-outbox-${seq++}`;
    await ensureTable(store.client, tableName, { retentionDays: 0, logger: createLogger("error") });
    const s = responses(0, tableName);
    const sweepClock = { now: T };
    const deadline = T + 200_000;
    // Sweeps walk the session and response partitions first (a reversing shuffle) and end at the
    // first run step's (their deadline reached): they need not read the 64 others.
    const client = overriding(store.client, {
      send: (async (command: Parameters<DynamoDBClient["send"]>[0]) => {
        const key = command instanceof GetItemCommand ? command.input.Key?.[A.key]?.S : undefined;
        const ofOpenAi = key?.startsWith("M#outbox#response.") || key?.startsWith("M#outbox#agent.session.");
        if (key?.startsWith("M#outbox#") && !ofOpenAi) sweepClock.now = deadline;
        return store.client.send(command as never);
      }) as DynamoDBClient["send"],
    });
    const deliveries = new DynamoDeliveryStore({
      client,
      tableName,
      retentionDays: 0,
      nowMs: () => sweepClock.now,
      random: reversing(
        TERMINAL_STATUSES.length * TABLE_SCHEMA.outboxShards +
          RESPONSE_TERMINAL_STATUSES.length * TABLE_SCHEMA.responseOutboxShards +
          3 * TABLE_SCHEMA.responseOutboxShards,
      ),
    });
    const sweep = async (upToMs: number) => {
      sweepClock.now = now;
      return deliveries.recoverOutbox(upToMs, now, deadline);
    };
    const now = T + 100_000;
    const id = uid("resp_orphan");
    const other = uid("resp_lived");
    clock.now = T;
    await s.apply(toApply(doc(id, "in_progress"), T - 10));
    await s.apply(toApply(doc(id, "failed"), T, { sinks: ["hook", "audit"] }));
    await s.apply(toApply(doc(other, "completed"), T, { sinks: ["hook"] }));
    // The other one's instance lived: its delivery is recorded.
    const lived = newDelivery(
      { sink: "hook", event: "response.completed" },
      { kind: "response", id: other, runId: other },
      T,
    );
    expect(await deliveries.create(lived)).toBe(true);
    // Applied a ms after the bound: not this sweep's.
    const late = uid("resp_late");
    clock.now = T + 1;
    await s.apply(toApply(doc(late, "completed"), T, { sinks: ["hook"] }));

    expect(await sweep(T)).toEqual({ checked: 2, recovered: 2 });
    for (const sink of ["hook", "audit"]) {
      expect(await deliveries.get({ kind: "response", subjectId: id, sink })).toEqual(
        newDelivery({ sink, event: "response.failed" }, { kind: "response", id, runId: id }, now),
      );
    }
    expect(await deliveries.get({ kind: "response", subjectId: other, sink: "hook" })).toEqual(lived);
    expect(await deliveries.get({ kind: "response", subjectId: late, sink: "hook" })).toBeNull();
    // A run step's key of the same id is another delivery: nothing was written there.
    expect(await deliveries.get({ kind: "run_step", subjectId: id, sink: "hook" })).toBeNull();

    const shard = shardOf(id, TABLE_SCHEMA.responseOutboxShards);
    const { Item } = await store.client.send(
      new GetItemCommand({
        TableName: tableName,
        Key: keyOf(watermarkKey("response.failed", shard)),
        ConsistentRead: true,
      }),
    );
    expect(Item?.[A.watermark]).toEqual({ S: outboxSortKey(T, id) });

    // The next sweep goes on from the watermarks: the late one, and nothing twice.
    expect(await sweep(T + 1)).toEqual({ checked: 1, recovered: 1 });
    expect(await deliveries.get({ kind: "response", subjectId: late, sink: "hook" })).toMatchObject({
      event: "response.completed",
      state: "pending",
      runId: late,
    });
    expect(await sweep(T + 1)).toEqual({ checked: 0, recovered: 0 });
  });
});
