import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import {
  applyWithoutNotifier,
  countsByStep,
  deliveryOf,
  testClock,
  webhookSink,
} from "./support/deliveries.js";
import { makeStep } from "./support/run-steps.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// SPEC §6: the intent to notify is written with the terminal transition, so a transition whose
// instance died before it recorded any delivery is still notified: a sweeper records it pending
// once the applying instance's prompt lease (2 × NOTIFY_TIMEOUT_MS + 5 s) plus 60 s of clock skew
// has passed, then delivers it.
const TIMEOUT_MS = 1_000;
const RECOVERY_AFTER_MS = 2 * TIMEOUT_MS + 5_000 + 60_000;

let store: TestStore;
let hook: SinkServer;
let audit: SinkServer;
let first: TestApp;
let second: TestApp;
const clock = testClock();
const secret = generateWebhookSecret();

beforeAll(async () => {
  [store, hook, audit] = await Promise.all([startTestStore(), startSinkServer(), startSinkServer()]);
  const env = {
    NOTIFY_SINKS: JSON.stringify([
      webhookSink("hook", `${hook.url}/in`, secret),
      webhookSink("audit", `${audit.url}/in`, secret),
    ]),
    NOTIFY_TIMEOUT_MS: String(TIMEOUT_MS),
  };
  first = await createTestApp(store, env, { nowMs: clock.nowMs });
  second = await createTestApp(store, { ...env, WEBHOOK_SECRET: first.secret }, { nowMs: clock.nowMs });
});
afterAll(async () => {
  await Promise.all([first.drain(), second.drain()]);
  await Promise.all([store.close(), hook.close(), audit.close()]);
});

describe("outbox recovery", () => {
  it("records a transition nobody recorded once past the prompt lease + 60 s, then delivers it; not before, not twice", async () => {
    const appliedAt = clock.now;
    await applyWithoutNotifier(first, ["orphan_1"], ["hook", "audit"], Math.floor(appliedAt / 1000));
    // A transition whose instance lived: delivered promptly, never recovered.
    await first.send(makeStep({ id: "lived_1", status: "completed" }), {
      timestamp: Math.floor(appliedAt / 1000),
    });
    await first.drain();
    expect(hook.received).toHaveLength(1);
    expect(
      await first.deliveries.get({ kind: "run_step" as const, subjectId: "orphan_1", sink: "hook" }),
    ).toBeNull();
    // Shown as pending with no attempt while unrecorded.
    expect(await deliveryOf(first, "orphan_1", "hook")).toMatchObject({ state: "pending", attempts: 0 });

    clock.now = appliedAt + RECOVERY_AFTER_MS - 1;
    expect(await first.sweep()).toMatchObject({ recovered: 0, attempts: 0 });
    expect(
      await first.deliveries.get({ kind: "run_step" as const, subjectId: "orphan_1", sink: "hook" }),
    ).toBeNull();
    expect(hook.received).toHaveLength(1);
    expect(audit.received).toHaveLength(1);

    clock.now = appliedAt + RECOVERY_AFTER_MS;
    const report = await first.sweep();
    expect(report).toMatchObject({ recovered: 2, delivered: 2 });
    expect(countsByStep(hook.received)).toEqual(
      new Map([
        ["lived_1", 1],
        ["orphan_1", 1],
      ]),
    );
    expect(countsByStep(audit.received)).toEqual(
      new Map([
        ["lived_1", 1],
        ["orphan_1", 1],
      ]),
    );
    for (const sink of ["hook", "audit"]) {
      expect(await deliveryOf(first, "orphan_1", sink)).toMatchObject({ state: "delivered", attempts: 1 });
    }

    clock.advance(60_000);
    expect(await first.sweep()).toMatchObject({ recovered: 0, attempts: 0 });
    expect(hook.received).toHaveLength(2);
  });

  it("two sweepers recovering the same transitions at once: each delivery recorded and sent exactly once", async () => {
    clock.advance(1_000);
    const ids = Array.from({ length: 40 }, (_, i) => `orphan_many_${i}`);
    await applyWithoutNotifier(first, ids, ["hook", "audit"], Math.floor(clock.now / 1000));
    const hookBefore = hook.received.length;
    const auditBefore = audit.received.length;
    clock.advance(RECOVERY_AFTER_MS);

    const [a, b] = await Promise.all([first.sweep(), second.sweep()]);

    expect(a.recovered + b.recovered).toBe(ids.length * 2);
    for (const [server, before] of [
      [hook, hookBefore],
      [audit, auditBefore],
    ] as const) {
      const counts = countsByStep(server.received.slice(before));
      expect(counts.size).toBe(ids.length);
      expect([...counts.entries()].filter(([, n]) => n !== 1)).toEqual([]);
    }
    expect(
      await first.deliveries.get({ kind: "run_step" as const, subjectId: ids[7] as string, sink: "audit" }),
    ).toMatchObject({
      state: "delivered",
      attempts: 1,
    });
  });
});
