import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { rawItem, type TestClock, testClock, webhookSink } from "./support/deliveries.js";
import { makeStep } from "./support/run-steps.js";
import { type ReceivedRequest, type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, TEST_TOKEN, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

const STALL_AFTER_MS = 600_000;
const secret = generateWebhookSecret();
let store: TestStore;
let sink: SinkServer;
let clock: TestClock;
let first: TestApp;
let second: TestApp;
let seq = 0;
const uid = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${seq++}`;

// Two instances on one table, one clock: sinks `watch` (subscribed to stalled) and `plain` (not).
const instance = (env: Record<string, string> = {}) =>
  createTestApp(
    store,
    {
      WEBHOOK_SECRET: secret,
      NOTIFY_SINKS: JSON.stringify([
        {
          ...webhookSink("watch", `${sink.url}/watch`, generateWebhookSecret()),
          on: ["completed", "stalled"],
        },
        webhookSink("plain", `${sink.url}/plain`, generateWebhookSecret()),
      ]),
      ...env,
    },
    { nowMs: () => clock.now },
  );

beforeAll(async () => {
  [store, sink] = await Promise.all([startTestStore("stepwatch-stall"), startSinkServer()]);
  clock = testClock();
  [first, second] = await Promise.all([instance(), instance()]);
});
afterAll(async () => {
  await Promise.all([store?.close(), sink?.close()]);
});
beforeEach(() => sink.reset());

// Sent as a relay would, stamped with the shared clock's time.
async function send(app: TestApp, overrides: Record<string, unknown>) {
  const response = await app.send(makeStep(overrides), { timestamp: Math.floor(clock.now / 1000) });
  expect(response.status).toBe(200);
  await app.drain();
}

const bodies = (path: string, stepId: string) =>
  sink.received
    .filter((r: ReceivedRequest) => r.path === path)
    .map((r) => JSON.parse(r.body) as { type: string; data: { id: string }; stalled_at?: string })
    .filter((b) => b.data.id === stepId);

describe("the stalled-step watchdog", () => {
  it("notifies a step in progress past STALL_AFTER_S once, however many sweepers race, and only its subscribers", async () => {
    const stuck = uid("step_stuck");
    const done = uid("step_done");
    await send(first, { id: stuck });
    await send(first, { id: done });
    clock.advance(60_000);
    await send(second, { id: done, status: "completed" });

    clock.advance(STALL_AFTER_MS - 61_000);
    await first.sweep();
    expect(bodies("/watch", stuck)).toEqual([]);

    clock.advance(2_000);
    const stalledAt = clock.now;
    // Two sweepers race for the same due step; a third sweep delivers whatever a lease held back.
    await Promise.all([first.sweep(), second.sweep()]);
    await first.sweep();
    const notices = bodies("/watch", stuck);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({
      type: "run_step.stalled",
      data: { id: stuck, status: "in_progress" },
    });
    expect(Date.parse(notices[0]?.stalled_at ?? "")).toBe(stalledAt);
    // Not subscribed to stalled: told nothing. A step that ended in time: never stalled.
    expect(bodies("/plain", stuck)).toEqual([]);
    expect(bodies("/watch", done).map((b) => b.type)).toEqual(["run_step.completed"]);

    // The notice is a delivery like any other, under its own id.
    const listed = await first.get(`/v1/deliveries?state=pending&sink=watch`);
    expect(((await listed.json()) as { data: unknown[] }).data).toEqual([]);
    const item = await rawItem(store, `D#watch~stalled#${stuck}`);
    expect(item?.ds?.S).toBe("delivered");

    // Later sweeps say nothing more.
    clock.advance(STALL_AFTER_MS);
    await first.sweep();
    expect(bodies("/watch", stuck)).toHaveLength(1);
  });

  it("a terminal event after the stall notifies as usual, saying the step had stalled", async () => {
    const late = uid("step_late");
    await send(first, { id: late });
    clock.advance(STALL_AFTER_MS + 1_000);
    const stalledAt = clock.now;
    await second.sweep();
    expect(bodies("/watch", late).map((b) => b.type)).toEqual(["run_step.stalled"]);

    clock.advance(30_000);
    sink.reset();
    await send(first, { id: late, status: "completed" });
    const [watch] = bodies("/watch", late);
    const [plain] = bodies("/plain", late);
    expect(watch).toMatchObject({ type: "run_step.completed", data: { status: "completed" } });
    expect(plain).toMatchObject({ type: "run_step.completed" });
    expect(Date.parse(watch?.stalled_at ?? "")).toBe(stalledAt);
    expect(Date.parse(plain?.stalled_at ?? "")).toBe(stalledAt);
  });

  it("watches a step from its first in_progress apply, in the same write, and never moves it", async () => {
    const id = uid("step_watch");
    await send(first, { id });
    const firstSeen = clock.now;
    const watched = await rawItem(store, `S#${id}`);
    expect(watched?.q?.S).toMatch(/^W#\d{1,2}$/);
    expect(Number(watched?.qt?.N)).toBe(firstSeen + STALL_AFTER_MS);
    clock.advance(5_000);
    await send(first, { id, metadata: { progress: "later" } });
    const after = await rawItem(store, `S#${id}`);
    expect(after?.qt?.N).toBe(watched?.qt?.N);
    expect(after?.q?.S).toBe(watched?.q?.S);
    // A completed step's notification, when it never stalled, says nothing of stalls.
    await send(first, { id, status: "completed" });
    expect(bodies("/watch", id)[0]).not.toHaveProperty("stalled_at");
  });

  it("closed for a shutdown, the watchdog starts no more work: the next instance's sweep does it", async () => {
    const closing = await instance();
    const id = uid("step_closing");
    await send(closing, { id });
    clock.advance(STALL_AFTER_MS + 1_000);
    await closing.close();
    await closing.sweep();
    expect((await rawItem(store, `S#${id}`))?.stl).toBeUndefined();
    await first.sweep();
    expect((await rawItem(store, `S#${id}`))?.stl?.N).toBe(String(clock.now));
  });

  it("STALL_AFTER_S=0 watches nothing and notifies nothing", async () => {
    const off = await instance({ STALL_AFTER_S: "0" });
    const id = uid("step_off");
    await send(off, { id });
    const item = await rawItem(store, `S#${id}`);
    expect(item?.q).toBeUndefined();
    expect(item?.qt).toBeUndefined();
    clock.advance(STALL_AFTER_MS * 2);
    await off.sweep();
    expect(bodies("/watch", id)).toEqual([]);
    const response = await off.app.request(`/v1/deliveries/${id}:watch~stalled/retry`, {
      method: "POST",
      headers: { authorization: `Bearer ${TEST_TOKEN}` },
    });
    expect(response.status).toBe(404);
  });
});
