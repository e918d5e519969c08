import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import {
  api,
  countsByStep,
  type DeliveryJson,
  deliver,
  deliveryOf,
  seedDead,
  signatureHeaders,
  stepIdOf,
  testClock,
  webhookSink,
} from "./support/deliveries.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
let sink: SinkServer;
let app: TestApp;
const secret = generateWebhookSecret();
const extraApps: TestApp[] = [];

beforeAll(async () => {
  [store, sink] = await Promise.all([startTestStore(), startSinkServer()]);
  app = await createTestApp(store, {
    NOTIFY_SINKS: JSON.stringify([webhookSink("hook", `${sink.url}/in`, secret)]),
    NOTIFY_TIMEOUT_MS: "2000",
    NOTIFY_RETRY_SCHEDULE: "0",
  });
});
afterAll(async () => {
  await Promise.all([app, ...extraApps].map((a) => a.drain()));
  await Promise.all([store.close(), sink.close()]);
});

const requestsFor = (id: string) => sink.received.filter((r) => stepIdOf(r) === id);

async function action(target: TestApp, path: string, body?: unknown) {
  const response = await api(target, "POST", path, body);
  return { status: response.status, body: (await response.json()) as DeliveryJson & Record<string, unknown> };
}

describe("attempt log (SPEC §5: every delivery shows its recent attempts)", () => {
  it("shows attempt number, time, status, latency and error of the last 10 attempts", async () => {
    const before = Math.floor(Date.now() / 1000);
    // 1: 503 (retried), 2: slow 400 (dead), 3..11: 400 by hand, 12: 200 by hand.
    sink.script(
      { status: 503, body: "busy" },
      { status: 400, body: "nope 2", delayMs: 120 },
      ...Array.from({ length: 9 }, (_, i) => ({ status: 400, body: `nope ${i + 3}` })),
    );
    await deliver(app, "log_1");
    expect(await deliveryOf(app, "log_1", "hook")).toMatchObject({ state: "pending", attempts: 1 });
    await app.sweep();
    const dead = await deliveryOf(app, "log_1", "hook");
    expect(dead).toMatchObject({ state: "dead", attempts: 2, last_error: "HTTP 400: nope 2" });
    expect(dead.recent_attempts).toEqual([
      {
        attempt: 1,
        at: expect.any(Number),
        status: 503,
        latency_ms: expect.any(Number),
        error: "HTTP 503: busy",
      },
      {
        attempt: 2,
        at: expect.any(Number),
        status: 400,
        latency_ms: expect.any(Number),
        error: "HTTP 400: nope 2",
      },
    ]);
    const [first, second] = dead.recent_attempts;
    expect(first?.at).toBeGreaterThanOrEqual(before);
    expect(second?.at).toBeGreaterThanOrEqual(first?.at ?? 0);
    expect(second?.latency_ms).toBeGreaterThanOrEqual(100);
    expect(second?.latency_ms).toBeLessThan(2_000);

    for (let n = 3; n <= 12; n++) {
      const retried = await action(app, "/v1/deliveries/log_1:hook/retry");
      expect(retried.status).toBe(200);
      expect(retried.body.attempts).toBe(n);
    }
    const done = await deliveryOf(app, "log_1", "hook");
    expect(done).toMatchObject({ state: "delivered", attempts: 12, last_error: null });
    expect(done.recent_attempts.map((a) => a.attempt)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(done.recent_attempts.map((a) => a.error)).toEqual([
      ...Array.from({ length: 9 }, (_, i) => `HTTP 400: nope ${i + 3}`),
      null,
    ]);
    expect(done.recent_attempts.map((a) => a.status)).toEqual([...Array(9).fill(400), 200]);
    for (const a of done.recent_attempts) expect(a.latency_ms).toBeGreaterThanOrEqual(0);
  });

  it("a network error has no status", async () => {
    const closed = await startSinkServer();
    await closed.close();
    const broken = await createTestApp(store, {
      NOTIFY_SINKS: JSON.stringify([webhookSink("nowhere", `${closed.url}/in`, secret)]),
      NOTIFY_RETRY_SCHEDULE: "60",
    });
    extraApps.push(broken);
    await deliver(broken, "log_net");
    const d = await deliveryOf(broken, "log_net", "nowhere");
    expect(d).toMatchObject({ state: "pending", attempts: 1, last_error: "network error (ECONNREFUSED)" });
    expect(d.recent_attempts).toMatchObject([
      { attempt: 1, status: null, error: "network error (ECONNREFUSED)" },
    ]);
  });
});

describe("resend (SPEC §5: a delivered notification again, same webhook-id)", () => {
  it("sends it again with the same webhook-id, signed; it stays delivered and the attempt is logged", async () => {
    await deliver(app, "resend_1");
    const response = await action(app, "/v1/deliveries/resend_1:hook/resend");
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ id: "resend_1:hook", state: "delivered", attempts: 2 });
    const [original, again] = requestsFor("resend_1");
    if (!original || !again) throw new Error("expected two requests");
    expect(again.headers["webhook-id"]).toBe(original.headers["webhook-id"]);
    expect(again.headers["webhook-id"]).toBe("msg_resend_1_completed_hook");
    expect(again.body).toBe(original.body);
    const verifier = new Webhook(secret);
    expect(verifier.verify(again.body, signatureHeaders(again))).toEqual(JSON.parse(original.body));
    const stored = await deliveryOf(app, "resend_1", "hook");
    expect(stored).toMatchObject({ state: "delivered", attempts: 2, last_error: null });
    expect(stored.recent_attempts.map((a) => [a.attempt, a.status])).toEqual([
      [1, 200],
      [2, 200],
    ]);
  });

  it("a failed resend is logged but the delivery stays delivered", async () => {
    await deliver(app, "resend_2");
    sink.script({ status: 500, body: "oops" });
    const response = await action(app, "/v1/deliveries/resend_2:hook/resend");
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ state: "delivered", attempts: 2, last_error: null });
    expect(response.body.recent_attempts.at(-1)).toMatchObject({
      attempt: 2,
      status: 500,
      error: "HTTP 500: oops",
    });
    expect(await app.sweep()).toMatchObject({ attempts: 0 });
    expect(requestsFor("resend_2")).toHaveLength(2);
  });

  it("409 for a delivery that is not delivered; 404 for an unknown one", async () => {
    sink.script({ status: 400 });
    await deliver(app, "resend_dead");
    const conflict = await action(app, "/v1/deliveries/resend_dead:hook/resend");
    expect(conflict.status).toBe(409);
    expect(conflict.body).toMatchObject({ error: { code: "invalid_state" } });
    expect(requestsFor("resend_dead")).toHaveLength(1);
    for (const id of ["nope:hook", "resend_1:nosink", "no-colon"]) {
      expect((await action(app, `/v1/deliveries/${id}/resend`)).status).toBe(404);
    }
  });
});

describe("retry (SPEC §6: dead deliveries are retryable by hand)", () => {
  it("attempts a dead delivery at once: the sink has it before the answer; a fresh schedule", async () => {
    sink.script({ status: 422, body: "bad" });
    await deliver(app, "retry_1");
    expect(await deliveryOf(app, "retry_1", "hook")).toMatchObject({ state: "dead", attempts: 1 });
    const count = requestsFor("retry_1").length;
    sink.script({ status: 503, body: "later" });
    const response = await action(app, "/v1/deliveries/retry_1:hook/retry");
    expect(requestsFor("retry_1")).toHaveLength(count + 1);
    expect(response.status).toBe(200);
    // A fresh schedule ("0": one retry): the 503 is retried, not given up on.
    expect(response.body).toMatchObject({ state: "pending", attempts: 2, last_error: "HTTP 503: later" });
    await app.sweep();
    expect(await deliveryOf(app, "retry_1", "hook")).toMatchObject({ state: "delivered", attempts: 3 });
  });

  it("409 unless dead (pending, delivered); 404 for unknown deliveries", async () => {
    await deliver(app, "retry_ok");
    expect((await action(app, "/v1/deliveries/retry_ok:hook/retry")).status).toBe(409);
    const slow = await createTestApp(store, {
      NOTIFY_SINKS: JSON.stringify([webhookSink("hook", `${sink.url}/in`, secret)]),
      NOTIFY_RETRY_SCHEDULE: "600",
    });
    extraApps.push(slow);
    sink.script({ status: 503 });
    await deliver(slow, "retry_pending");
    expect(await deliveryOf(slow, "retry_pending", "hook")).toMatchObject({ state: "pending" });
    const before = sink.received.length;
    expect((await action(slow, "/v1/deliveries/retry_pending:hook/retry")).status).toBe(409);
    expect(sink.received).toHaveLength(before);
    expect((await action(app, "/v1/deliveries/nope:hook/retry")).status).toBe(404);
    expect((await action(app, "/v1/deliveries/retry_ok:other/retry")).status).toBe(404);
  });
});

describe("bulk retry of dead deliveries by sink and time range", () => {
  it("revives the dead ones that died in [since, until] (inclusive), reports `queued` and `more`, leaves others alone", async () => {
    // Half a second past a whole second: `until` must cover its whole second.
    const clock = testClock(Math.floor(Date.now() / 1000) * 1000 + 500);
    const timed = await createTestApp(
      store,
      {
        NOTIFY_SINKS: JSON.stringify([webhookSink("bulk", `${sink.url}/bulk`, secret)]),
        NOTIFY_RETRY_SCHEDULE: "60",
      },
      { nowMs: clock.nowMs },
    );
    extraApps.push(timed);
    const at = () => Math.floor(clock.now / 1000);
    const died: Record<string, number> = {};
    for (const [i, id] of ["bulk_a", "bulk_b", "bulk_c", "bulk_d"].entries()) {
      if (i > 0) clock.advance(100_000);
      sink.script({ status: 400, body: "rejected" });
      died[id] = at();
      await deliver(timed, id, at());
      expect(await deliveryOf(timed, id, "bulk")).toMatchObject({ state: "dead" });
    }
    // b and c died in the range, to the second, at both ends.
    const inRange = await action(timed, "/v1/deliveries/retry", {
      sink: "bulk",
      since: died.bulk_b,
      until: died.bulk_c,
    });
    expect(inRange.status).toBe(200);
    expect(inRange.body).toEqual({ queued: 2, more: false });
    for (const id of ["bulk_a", "bulk_d"]) {
      expect(await deliveryOf(timed, id, "bulk")).toMatchObject({ state: "dead", attempts: 1 });
    }
    expect(await deliveryOf(timed, "bulk_b", "bulk")).toMatchObject({ state: "pending", attempts: 1 });

    // The sweep delivers the revived ones, and only those.
    const before = sink.received.length;
    const report = await timed.sweep();
    expect(report.delivered).toBe(2);
    expect([...countsByStep(sink.received.slice(before)).keys()].sort()).toEqual(["bulk_b", "bulk_c"]);

    // A limit: one at a time, and `more` says there are others.
    const limited = await action(timed, "/v1/deliveries/retry", { sink: "bulk", limit: 1 });
    expect(limited.body).toEqual({ queued: 1, more: true });
    // Exactly `limit` left: nothing more.
    const rest = await action(timed, "/v1/deliveries/retry", { sink: "bulk", limit: 1 });
    expect(rest.body).toEqual({ queued: 1, more: false });
    const none = await action(timed, "/v1/deliveries/retry", { sink: "bulk" });
    expect(none.body).toEqual({ queued: 0, more: false });
    await timed.sweep();
    for (const id of ["bulk_a", "bulk_b", "bulk_c", "bulk_d"]) {
      expect((await deliveryOf(timed, id, "bulk")).state).toBe("delivered");
    }

    expect((await action(timed, "/v1/deliveries/retry", { sink: "nope" })).status).toBe(404);
    expect((await action(timed, "/v1/deliveries/retry", { sink: "bulk", since: 20, until: 10 })).status).toBe(
      400,
    );
    expect((await action(timed, "/v1/deliveries/retry", { since: 1 })).status).toBe(400);
  });

  it("paces what it revives at 100 a second, so a recovered sink is not flooded", async () => {
    const clock = testClock();
    const paced = await createTestApp(
      store,
      { NOTIFY_SINKS: JSON.stringify([webhookSink("paced", `${sink.url}/paced`, secret)]) },
      { nowMs: clock.nowMs },
    );
    extraApps.push(paced);
    const ids = Array.from({ length: 150 }, (_, i) => `paced_${i}`);
    await seedDead(paced, ids, "paced", clock.now - 60_000);
    const revived = await action(paced, "/v1/deliveries/retry", { sink: "paced" });
    expect(revived.body).toEqual({ queued: 150, more: false });
    expect((await paced.sweep()).delivered).toBe(100);
    clock.advance(999);
    expect((await paced.sweep()).delivered).toBe(0);
    clock.advance(1);
    expect((await paced.sweep()).delivered).toBe(50);
    expect(countsByStep(sink.received.filter((r) => r.path === "/paced")).size).toBe(150);
  });
});
