import { describe, expect, it } from "vitest";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { shardLeaseKey } from "../src/store/item-codec.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import {
  countsByStep,
  deliveryFixture,
  deliveryOf,
  idsInShard,
  queueShardOf,
  seedPending,
  sinkOf,
  sleep,
  testClock,
  webhookSink,
} from "./support/deliveries.js";
import { makeStep } from "./support/run-steps.js";
import { eventually } from "./support/sink-server.js";
import type { createTestApp, TestApp } from "./support/test-app.js";

const fixture = deliveryFixture();
const secret = generateWebhookSecret();
const sinkServer = () => fixture.sink();

function appFor(
  sinks: Array<{ name: string; url: string }>,
  env: Record<string, string> = {},
  options: Parameters<typeof createTestApp>[2] = {},
): Promise<TestApp> {
  return fixture.app(
    {
      NOTIFY_SINKS: JSON.stringify(sinks.map((s) => webhookSink(s.name, s.url, secret))),
      NOTIFY_TIMEOUT_MS: "2000",
      ...env,
    },
    options,
  );
}

describe("a backlog drains in one sweep (SPEC §6: a sweep keeps draining until nothing is due)", () => {
  it("360 due deliveries of one sink, 240 of them in one queue shard (three pages), all sent in one sweep; NOTIFY_CONCURRENCY bounds requests in flight", async () => {
    const sink = await sinkServer();
    sink.fallback = { status: 200, delayMs: 4 };
    const app = await appFor([{ name: "bulk", url: `${sink.url}/in` }], { NOTIFY_CONCURRENCY: "4" });
    const concentrated = idsInShard("bulk_c", 5, 240);
    const spread = Array.from({ length: 120 }, (_, i) => `bulk_s_${i}`);
    expect(new Set(spread.map(queueShardOf)).size).toBe(TABLE_SCHEMA.queueShards);
    const all = [...concentrated, ...spread];
    await seedPending(app, all, "bulk");

    const report = await app.sweep();

    expect(report).toMatchObject({ attempts: all.length, delivered: all.length, retrying: 0, dead: 0 });
    const counts = countsByStep(sink.received);
    expect(counts.size).toBe(all.length);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(all.every((id) => counts.has(id))).toBe(true);
    // Never more than NOTIFY_CONCURRENCY at once, and the lane is actually used in parallel.
    expect(sink.maxInFlight).toBe(4);
    expect((await sinkOf(app, "bulk")).pending).toBe(0);
    const second = await app.sweep();
    expect(second.attempts).toBe(0);
    expect(sink.received).toHaveLength(all.length);
  });

  it("two sweepers sweeping the same backlog at once send every delivery exactly once", async () => {
    const sink = await sinkServer();
    sink.fallback = { status: 200, delayMs: 15 };
    const env = { NOTIFY_CONCURRENCY: "4" };
    const first = await appFor([{ name: "pair", url: `${sink.url}/in` }], env);
    const second = await appFor([{ name: "pair", url: `${sink.url}/in` }], env);
    const ids = [...idsInShard("pair_c", 2, 60), ...Array.from({ length: 40 }, (_, i) => `pair_s_${i}`)];
    await seedPending(first, ids, "pair");

    const [a, b] = await Promise.all([first.sweep(), second.sweep()]);

    const counts = countsByStep(sink.received);
    expect(counts.size).toBe(ids.length);
    expect([...counts.entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect(sink.received).toHaveLength(ids.length);
    expect(a.attempts + b.attempts).toBe(ids.length);
    expect(a.delivered + b.delivered).toBe(ids.length);
    for (const id of [ids[0], ids.at(-1)] as string[]) {
      expect(await deliveryOf(first, id, "pair")).toMatchObject({ state: "delivered", attempts: 1 });
    }
  });
});

describe("a hanging sink never delays another sink (SPEC §6)", () => {
  it("within one sweep: the healthy sink's due deliveries are sent while the other sink hangs", async () => {
    const [slow, fast] = [await sinkServer(), await sinkServer()];
    slow.fallback = { status: 200, hang: true };
    const app = await appFor(
      [
        { name: "slow", url: `${slow.url}/in` },
        { name: "fast", url: `${fast.url}/in` },
      ],
      { NOTIFY_TIMEOUT_MS: "3000", NOTIFY_CONCURRENCY: "2" },
    );
    // In one queue shard, so one page fills the lane.
    const hanging = idsInShard("hang_s", 4, 3);
    await seedPending(app, hanging, "slow");
    await seedPending(app, ["hang_f1", "hang_f2"], "fast");

    const started = Date.now();
    const sweeping = app.sweep();
    await fast.waitFor(2, 2_500);
    expect(Math.max(...fast.received.map((r) => r.at)) - started).toBeLessThan(1_500);
    expect(slow.inFlight).toBe(2);
    // Ends the hanging requests now rather than after the 3 s time-out.
    await slow.close();
    const report = await sweeping;
    expect(report.delivered).toBe(2);
    expect((await deliveryOf(app, "hang_f1", "fast")).state).toBe("delivered");
    expect((await deliveryOf(app, hanging[0] as string, "slow")).state).toBe("pending");
  });

  it("per-sink sweeper lanes: prompt deliveries and retries of the healthy sink go out while the other hangs", async () => {
    const [slow, fast] = [await sinkServer(), await sinkServer()];
    slow.fallback = { status: 200, hang: true };
    const app = await appFor(
      [
        { name: "slow", url: `${slow.url}/in` },
        { name: "fast", url: `${fast.url}/in` },
      ],
      { NOTIFY_TIMEOUT_MS: "3000", NOTIFY_CONCURRENCY: "2", NOTIFY_RETRY_SCHEDULE: "0.3" },
    );
    await seedPending(app, idsInShard("lane_s", 7, 2), "slow");
    const stop = app.startSweeper(100);
    try {
      // The slow sink's lane is full of hanging attempts.
      for (let i = 0; i < 40 && slow.inFlight < 2; i++) await sleep(25);
      expect(slow.inFlight).toBe(2);

      // A step owed to both: the fast sink answers 503 first, then 200.
      fast.script({ status: 503, body: "warming up" });
      const sent = Date.now();
      const response = await app.send(makeStep({ id: "lane_both", status: "completed" }));
      expect(response.status).toBe(200);
      expect(Date.now() - sent).toBeLessThan(1_000);
      await fast.waitFor(2, 2_500);
      const [first, retry] = fast.received;
      expect((first?.at ?? Infinity) - sent).toBeLessThan(1_000);
      // Due 0.3 s (±10 %) after the first attempt; the sweeper ticks every 100 ms.
      expect((retry?.at ?? Infinity) - (first?.at ?? 0)).toBeLessThan(1_500);
      expect(slow.inFlight).toBe(2);
      // Its outcome is written just after the sink answered.
      const delivered = await eventually(async () => {
        const d = await deliveryOf(app, "lane_both", "fast");
        return d.state === "delivered" ? d : undefined;
      }, 2_000);
      expect(delivered.attempts).toBe(2);
      expect((await deliveryOf(app, "lane_both", "slow")).state).toBe("pending");
    } finally {
      stop();
      await slow.close();
      await app.drain();
    }
  });
});

describe("leases fence concurrent sweepers", () => {
  it("a shard lease held by one sweeper keeps another off that shard until it expires", async () => {
    const sink = await sinkServer();
    const clock = testClock();
    const app = await appFor([{ name: "lease", url: `${sink.url}/in` }], {}, { nowMs: clock.nowMs });
    const held = idsInShard("lease_h", 3, 3);
    const free = idsInShard("lease_f", 6, 2);
    await seedPending(app, [...held, ...free], "lease", clock.now);
    // Another sweeper holds shard 3 for 10 s.
    const version = await app.deliveries.acquireLease(
      shardLeaseKey("lease", 3),
      clock.now + 10_000,
      clock.now,
    );
    expect(version).not.toBeNull();

    await app.sweep();
    expect([...countsByStep(sink.received).keys()].sort()).toEqual([...free].sort());
    expect((await deliveryOf(app, held[0] as string, "lease")).state).toBe("pending");

    clock.advance(9_000);
    await app.sweep();
    expect(sink.received).toHaveLength(2);

    clock.advance(1_001);
    await app.sweep();
    expect([...countsByStep(sink.received).keys()].sort()).toEqual([...free, ...held].sort());
  });

  it("... or until it is released", async () => {
    const sink = await sinkServer();
    const app = await appFor([{ name: "release", url: `${sink.url}/in` }]);
    const held = idsInShard("release_h", 1, 2);
    await seedPending(app, held, "release");
    const key = shardLeaseKey("release", 1);
    const version = await app.deliveries.acquireLease(key, Date.now() + 60_000, Date.now());
    expect(version).not.toBeNull();
    await app.sweep();
    expect(sink.received).toHaveLength(0);
    await app.deliveries.releaseLease(key, version as number);
    await app.sweep();
    expect(countsByStep(sink.received)).toEqual(new Map(held.map((id) => [id, 1])));
  });

  it("lease primitives: one holder at a time; a stale holder's release does not free a successor's lease", async () => {
    const app = await appFor([{ name: "prim", url: "http://127.0.0.1:9/in" }]);
    const now = Date.now();
    const key = shardLeaseKey("prim", 0);
    const mine = await app.deliveries.acquireLease(key, now + 1_000, now);
    expect(mine).not.toBeNull();
    expect(await app.deliveries.acquireLease(key, now + 5_000, now + 500)).toBeNull();
    // Expired: someone else takes it over; my late release must not free theirs.
    const theirs = await app.deliveries.acquireLease(key, now + 60_000, now + 1_001);
    expect(theirs).not.toBeNull();
    await app.deliveries.releaseLease(key, mine as number);
    expect(await app.deliveries.acquireLease(key, now + 5_000, now + 2_000)).toBeNull();
    await app.deliveries.releaseLease(key, theirs as number);
    expect(await app.deliveries.acquireLease(key, now + 5_000, now + 2_000)).not.toBeNull();
  });

  it("replace is fenced by version: a writer that read an older version changes nothing", async () => {
    const app = await appFor([{ name: "fence", url: "http://127.0.0.1:9/in" }]);
    await seedPending(app, ["fence_1"], "fence");
    const read = await app.deliveries.get({ kind: "run_step" as const, subjectId: "fence_1", sink: "fence" });
    if (!read) throw new Error("not seeded");
    const winner = { ...read, state: "dead" as const, lastError: "someone else", nextAttemptMs: null };
    expect(await app.deliveries.replace({ ...winner, version: read.version + 1 })).toBe(true);
    const late = { ...read, state: "delivered" as const, attempts: 1, nextAttemptMs: null };
    expect(await app.deliveries.replace({ ...late, version: read.version + 1 })).toBe(false);
    expect(
      await app.deliveries.get({ kind: "run_step" as const, subjectId: "fence_1", sink: "fence" }),
    ).toMatchObject({
      state: "dead",
      lastError: "someone else",
      version: read.version + 1,
    });
    // A second create of the same delivery is refused too.
    expect(await app.deliveries.create({ ...read, version: 0 })).toBe(false);
  });

  it("an attempt that outlives its lease does not overwrite what was written meanwhile", async () => {
    const sink = await sinkServer();
    sink.fallback = { status: 200, delayMs: 400 };
    const lines: string[] = [];
    const app = await appFor([{ name: "outlive", url: `${sink.url}/in` }], {}, { logLines: lines });
    await seedPending(app, ["outlive_1"], "outlive");

    const sweeping = app.sweep();
    await sink.waitFor(1, 2_000);
    // While the attempt is in flight, another writer (a sweeper that took the expired lease, an
    // operator) records its own outcome.
    const read = await app.deliveries.get({
      kind: "run_step" as const,
      subjectId: "outlive_1",
      sink: "outlive",
    });
    if (!read) throw new Error("not seeded");
    const theirs = { ...read, state: "dead" as const, attempts: 7, lastError: "theirs", nextAttemptMs: null };
    expect(await app.deliveries.replace({ ...theirs, version: read.version + 1 })).toBe(true);
    await sweeping;

    expect(
      await app.deliveries.get({ kind: "run_step" as const, subjectId: "outlive_1", sink: "outlive" }),
    ).toMatchObject({
      state: "dead",
      attempts: 7,
      lastError: "theirs",
      version: read.version + 1,
    });
    expect(lines.some((l) => l.includes("delivery changed while it was attempted"))).toBe(true);
  });
});
