import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { StallWatchdog, type StallWatchdogOptions } from "../src/notify/stall-watchdog.js";
import { createLogger } from "../src/observability/logger.js";
import { shardOf } from "../src/store/item-codec.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { mapConcurrent } from "./support/concurrency.js";
import { type TestClock, testClock, webhookSink } from "./support/deliveries.js";
import { overriding } from "./support/overriding.js";
import { makeStep } from "./support/run-steps.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// One run of the watchdog at a time, on a table of its own (the watermarks are the table's): what a
// run reports and logs, where it stops, and how it shares work with a rival sweeper. The steps are
// sent through the app; the watchdog is the real one on the app's real stores.

const STALL_AFTER_MS = 600_000;
let store: TestStore;
let sink: SinkServer;
let clock: TestClock;
let app: TestApp;
let seq = 0;
const uid = (prefix: string) => `${prefix}_${seq++}`;

beforeAll(async () => {
  [store, sink] = await Promise.all([startTestStore("stepwatch-watch-runs"), startSinkServer()]);
  clock = testClock();
  app = await createTestApp(
    store,
    {
      NOTIFY_SINKS: JSON.stringify([
        { ...webhookSink("one", `${sink.url}/one`, generateWebhookSecret()), on: ["stalled"] },
        { ...webhookSink("two", `${sink.url}/two`, generateWebhookSecret()), on: ["failed", "stalled"] },
        webhookSink("plain", `${sink.url}/plain`, generateWebhookSecret()),
      ]),
      // The app's own sweeps never run here: only the watchdogs these tests make.
      STALL_AFTER_S: "600",
    },
    { nowMs: () => clock.now },
  );
});
afterAll(async () => {
  await app?.drain();
  await Promise.all([store?.close(), sink?.close()]);
});

function watchdog(lines: string[] = [], overrides: Partial<StallWatchdogOptions> = {}): StallWatchdog {
  return new StallWatchdog({
    steps: app.store,
    deliveries: app.deliveries,
    sinkConfigs: app.config.NOTIFY_SINKS,
    stallAfterS: 600,
    logger: createLogger("info", (line) => lines.push(line)),
    nowMs: () => clock.now,
    ...overrides,
  });
}

async function send(overrides: Record<string, unknown>) {
  const response = await app.send(makeStep(overrides), { timestamp: Math.floor(clock.now / 1000) });
  expect(response.status).toBe(200);
  await app.drain();
}

async function inProgress(
  count: number,
  prefix: string,
  ids = Array.from({ length: count }, () => uid(prefix)),
) {
  await mapConcurrent(ids, 16, (id) => send({ id }));
  return ids;
}

/** `count` new step ids that are all watched in one shard, so that shard has pages to go through. */
function idsInWatchShard(prefix: string, count: number): string[] {
  const ids: string[] = [];
  while (ids.length < count) {
    const id = uid(prefix);
    if (shardOf(id, TABLE_SCHEMA.watchShards) === 5) ids.push(id);
  }
  return ids;
}

const logged = (lines: string[]) => lines.map((line) => JSON.parse(line) as Record<string, unknown>);

describe("a watchdog run", () => {
  it("reports what it checked, stalled and recorded, logs it once, and moves on: the next run finds nothing", async () => {
    const [stuck] = await inProgress(1, "stuck");
    const ended = uid("ended");
    await send({ id: ended });
    clock.advance(60_000);
    await send({ id: ended, status: "completed" });
    clock.advance(STALL_AFTER_MS);

    const lines: string[] = [];
    // Two sinks subscribe to `stalled`: two notices for the stalled step, none for the one that ended.
    expect(await watchdog(lines).run()).toEqual({ checked: 2, stalled: 1, notices: 2 });
    expect(logged(lines)).toEqual([
      expect.objectContaining({ level: "info", msg: "stalled steps", checked: 2, stalled: 1, notices: 2 }),
    ]);
    expect((await app.store.getStep(String(stuck)))?.stalledAtMs).toBe(clock.now);

    const quiet: string[] = [];
    expect(await watchdog(quiet).run()).toEqual({ checked: 0, stalled: 0, notices: 0 });
    expect(quiet).toEqual([]);
  });

  it("a step an earlier run marked but died before recording its notices: this run records them, without marking it again", async () => {
    const [id] = await inProgress(1, "half");
    clock.advance(STALL_AFTER_MS + 1_000);
    const markedAt = clock.now - 500;
    expect(await app.store.markStalled(String(id), markedAt)).toBe(true);
    const lines: string[] = [];
    expect(await watchdog(lines).run()).toEqual({ checked: 1, stalled: 0, notices: 2 });
    // Notices recorded, nothing newly stalled: still worth a line.
    expect(logged(lines)).toEqual([
      expect.objectContaining({ msg: "stalled steps", stalled: 0, notices: 2 }),
    ]);
    expect((await app.store.getStep(String(id)))?.stalledAtMs).toBe(markedAt);
  });

  it("losing the mark to a rival sweeper: the rival's time stands and the notices are still recorded once", async () => {
    const [id] = await inProgress(1, "rival");
    clock.advance(STALL_AFTER_MS + 1_000);
    const rivalAt = clock.now - 250;
    const steps = overriding(app.store, {
      async markStalled(stepId: string, atMs: number) {
        expect(await app.store.markStalled(stepId, rivalAt)).toBe(true);
        return app.store.markStalled(stepId, atMs);
      },
    });
    expect(await watchdog([], { steps }).run()).toEqual({ checked: 1, stalled: 0, notices: 2 });
    expect((await app.store.getStep(String(id)))?.stalledAtMs).toBe(rivalAt);
    // A second run: nothing left to record.
    expect(await watchdog().run()).toEqual({ checked: 0, stalled: 0, notices: 0 });
  });

  it("a stored snapshot today's schema would refuse is checked, marked, and its notices recorded all the same", async () => {
    const [id] = await inProgress(1, "odd");
    clock.advance(STALL_AFTER_MS + 1_000);
    const steps = overriding(app.store, {
      async getSteps(stepIds: readonly string[]) {
        const stored = await app.store.getSteps(stepIds);
        for (const [id, step] of stored)
          stored.set(id, { ...step, document: { ...step.document, run_id: 42 } });
        return stored;
      },
    });
    const lines: string[] = [];
    // Read leniently, as a delivery is: a schema tightened since it was stored silences nobody.
    expect(await watchdog(lines, { steps }).run()).toEqual({ checked: 1, stalled: 1, notices: 2 });
    expect(logged(lines)).toEqual([
      expect.objectContaining({ msg: "stalled steps", stalled: 1, notices: 2 }),
    ]);
    expect((await app.store.getStep(String(id)))?.stalledAtMs).toBe(clock.now);
  });

  it("exactly a page due: the run ends on an empty page and the next run has nothing to re-read", async () => {
    await inProgress(0, "exact", idsInWatchShard("exact", 100));
    clock.advance(STALL_AFTER_MS + 1_000);
    expect(await watchdog([], { sinkConfigs: [] }).run()).toEqual({ checked: 100, stalled: 100, notices: 0 });
    expect(await watchdog([], { sinkConfigs: [] }).run()).toEqual({ checked: 0, stalled: 0, notices: 0 });
  });

  it("another sweeper moving a shard's watermark first: this run leaves the rest of that shard to it", async () => {
    await inProgress(0, "shared", idsInWatchShard("shared", 130));
    clock.advance(STALL_AFTER_MS + 1_000);
    const steps = overriding(app.store, {
      async advanceWatermark(shard: number, from: number, to: number) {
        // The rival moved it first; this one's conditional move then fails.
        expect(await app.store.advanceWatermark(shard, from, to)).toBe(true);
        return app.store.advanceWatermark(shard, from, to);
      },
    });
    expect(await watchdog([], { steps, sinkConfigs: [] }).run()).toEqual({
      checked: 100,
      stalled: 100,
      notices: 0,
    });
    // The rival's watermark stands, just below the due time the 130 share (the first page may have
    // ended among them): the next run reads them all again and marks the 30 left.
    expect(await watchdog([], { sinkConfigs: [] }).run()).toEqual({ checked: 130, stalled: 30, notices: 0 });
    expect(await watchdog([], { sinkConfigs: [] }).run()).toEqual({ checked: 0, stalled: 0, notices: 0 });
  });

  it("costs what it must and no more: per shard one watermark read and one query per page; one watermark write per page that moves it; a mark only for steps still in progress and unmarked", async () => {
    const ids = idsInWatchShard("cost", 203);
    await inProgress(0, "cost", ids);
    const ended = ids.slice(0, 2);
    for (const id of ended) await send({ id, status: "completed" });
    clock.advance(STALL_AFTER_MS + 1_000);
    const calls: Record<string, number> = {};
    const count = (name: string) => {
      calls[name] = (calls[name] ?? 0) + 1;
    };
    const store = app.store;
    const counted =
      <A extends unknown[], R>(name: string, call: (...args: A) => R) =>
      (...args: A): R => {
        count(name);
        return call(...args);
      };
    const steps = overriding(store, {
      watermark: counted("watermark", store.watermark.bind(store)),
      dueForWatch: counted("dueForWatch", store.dueForWatch.bind(store)),
      advanceWatermark: counted("advanceWatermark", store.advanceWatermark.bind(store)),
      markStalled: counted("markStalled", store.markStalled.bind(store)),
      getSteps: counted("getSteps", store.getSteps.bind(store)),
      getStep: counted("getStep", store.getStep.bind(store)),
    });
    // 203 due in one shard, all at one millisecond: pages of 100, 100 and 3. The watermark moves
    // below that millisecond after the first page, stays after the second (no write), and reaches it
    // after the last.
    expect(await watchdog([], { steps, sinkConfigs: [] }).run()).toEqual({
      checked: 203,
      stalled: 201,
      notices: 0,
    });
    expect(calls).toEqual({
      watermark: 16,
      dueForWatch: 15 + 3,
      getSteps: 3,
      advanceWatermark: 2,
      markStalled: 201,
    });
  });

  it("a step gone between the query and the read (its TTL) is skipped", async () => {
    const [gone, kept] = await inProgress(2, "gone");
    clock.advance(STALL_AFTER_MS + 1_000);
    const steps = overriding(app.store, {
      async getSteps(stepIds: readonly string[]) {
        const stored = await app.store.getSteps(stepIds);
        stored.delete(String(gone));
        return stored;
      },
    });
    expect(await watchdog([], { steps, sinkConfigs: [] }).run()).toEqual({
      checked: 1,
      stalled: 1,
      notices: 0,
    });
    expect((await app.store.getStep(String(kept)))?.stalledAtMs).toBe(clock.now);
  });

  it("stops where its deadline passes or it is closed, mid-run: the rest is the next run's", async () => {
    await inProgress(0, "late", idsInWatchShard("late", 120));
    clock.advance(STALL_AFTER_MS + 1_000);
    // Reading a page of due steps takes 10 ms: the first page takes the run past its deadline.
    const slow = overriding(app.store, {
      async dueForWatch(...args: Parameters<typeof app.store.dueForWatch>) {
        const page = await app.store.dueForWatch(...args);
        if (page.length > 0) clock.advance(10);
        return page;
      },
    });
    expect(await watchdog([], { steps: slow, sinkConfigs: [] }).run(clock.now + 5)).toEqual({
      checked: 100,
      stalled: 100,
      notices: 0,
    });
    // Closed while it reads its first page: it finishes that page and stops. (All 120 share one due
    // millisecond, so the watermark stayed just below it and that first page is the same 100.)
    let closing: StallWatchdog | undefined;
    const closes = overriding(app.store, {
      async getSteps(stepIds: readonly string[]) {
        closing?.close();
        return app.store.getSteps(stepIds);
      },
    });
    closing = watchdog([], { steps: closes, sinkConfigs: [] });
    expect(await closing.run()).toEqual({ checked: 100, stalled: 0, notices: 0 });
    // An open run with time to spare reads all of them and marks the other 20.
    expect(await watchdog([], { sinkConfigs: [] }).run()).toEqual({ checked: 120, stalled: 20, notices: 0 });
  });

  it("does nothing when STALL_AFTER_S is 0, past its deadline, or closed", async () => {
    await inProgress(2, "idle");
    clock.advance(STALL_AFTER_MS + 1_000);
    const none = { checked: 0, stalled: 0, notices: 0 };
    expect(await watchdog([], { stallAfterS: 0 }).run()).toEqual(none);
    expect(await watchdog().run(clock.now)).toEqual(none);
    expect(await watchdog().run(clock.now - 1)).toEqual(none);
    const closed = watchdog();
    closed.close();
    expect(await closed.run()).toEqual(none);
    // Still due: the next open run finds both.
    expect(await watchdog([], { sinkConfigs: [] }).run(clock.now + 1)).toEqual({
      checked: 2,
      stalled: 2,
      notices: 0,
    });
  });
});
