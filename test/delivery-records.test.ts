import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { notificationMessageId } from "../src/domain/notification-payloads.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { deliveryKey, stepKey } from "../src/store/item-codec.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import {
  api,
  deliver,
  deliveryOf,
  rawItem,
  signatureHeaders,
  stepIdOf,
  testClock,
  webhookSink,
} from "./support/deliveries.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

const DAY_S = 86_400;
const TTL = TABLE_SCHEMA.attributes.ttl;

let store: TestStore;
let sink: SinkServer;
const secret = generateWebhookSecret();
const apps: TestApp[] = [];

beforeAll(async () => {
  [store, sink] = await Promise.all([startTestStore(), startSinkServer()]);
});
afterAll(async () => {
  await Promise.all(apps.map((app) => app.drain()));
  await Promise.all([store.close(), sink.close()]);
});

// Each test has its own sink name, so one test's sweeps never see another's deliveries.
async function appWith(
  name: string,
  env: Record<string, string>,
  options: Parameters<typeof createTestApp>[2] = {},
): Promise<TestApp> {
  const app = await createTestApp(
    store,
    { NOTIFY_SINKS: JSON.stringify([webhookSink(name, `${sink.url}/in`, secret)]), ...env },
    options,
  );
  apps.push(app);
  return app;
}

const ttlOf = async (key: string) => {
  const item = await rawItem(store, key);
  if (!item) throw new Error(`no item ${key}`);
  return item[TTL]?.N === undefined ? undefined : Number(item[TTL]?.N);
};

describe("RETENTION_DAYS", () => {
  it("0 (the default): steps and deliveries are kept forever, no ttl attribute", async () => {
    const app = await appWith("keep", { RETENTION_DAYS: "0" });
    sink.script({ status: 503 });
    await deliver(app, "keep_pending");
    await deliver(app, "keep_done");
    expect(await ttlOf(stepKey("keep_done"))).toBeUndefined();
    expect(
      await ttlOf(deliveryKey({ kind: "run_step", sink: "keep", subjectId: "keep_done" })),
    ).toBeUndefined();
    expect(
      await ttlOf(deliveryKey({ kind: "run_step", sink: "keep", subjectId: "keep_pending" })),
    ).toBeUndefined();
  });

  it("N > 0: ttl = now + N days on the step and on every write of a delivery", async () => {
    const clock = testClock();
    const app = await appWith(
      "expire",
      { RETENTION_DAYS: "7", NOTIFY_RETRY_SCHEDULE: "60" },
      {
        nowMs: clock.nowMs,
      },
    );
    const nowS = () => Math.floor(clock.now / 1000);
    const appliedS = nowS();
    sink.script({ status: 503 });
    await deliver(app, "expire_1", appliedS);
    expect(await ttlOf(stepKey("expire_1"))).toBe(appliedS + 7 * DAY_S);
    expect(await ttlOf(deliveryKey({ kind: "run_step", sink: "expire", subjectId: "expire_1" }))).toBe(
      appliedS + 7 * DAY_S,
    );

    // The retry a day later writes the delivery again: kept 7 days from then.
    clock.advance(DAY_S * 1000);
    expect((await app.sweep()).delivered).toBe(1);
    expect(await ttlOf(deliveryKey({ kind: "run_step", sink: "expire", subjectId: "expire_1" }))).toBe(
      nowS() + 7 * DAY_S,
    );
    expect(await ttlOf(stepKey("expire_1"))).toBe(appliedS + 7 * DAY_S);
  });
});

describe("webhook-id for odd step ids (stable per step, status and sink; a valid header)", () => {
  it("non-Latin-1, control characters, header injection and the longest id (512 bytes): delivered, verifiable, stable on resend", async () => {
    const app = await appWith("hook", {});
    const odd = [
      "step_ünïcødé_✓_🚀",
      "step_ctl_\u0001\u001f\u007f",
      "step_crlf\r\nX-Injected: yes",
      `step_${"x".repeat(507)}`,
    ];
    expect(odd.at(-1)).toHaveLength(512);
    const verifier = new Webhook(secret);
    const seen = new Set<string>();
    for (const id of odd) {
      const before = sink.received.length;
      await deliver(app, id);
      const requests = sink.received.slice(before);
      expect(requests).toHaveLength(1);
      const [request] = requests;
      if (!request) throw new Error("no request");
      expect(stepIdOf(request)).toBe(id);
      expect(request.headers["x-injected"]).toBeUndefined();
      const header = String(request.headers["webhook-id"]);
      expect(header).toMatch(/^msg_h_[A-Za-z0-9_-]{43}$/);
      expect(header).toBe(await notificationMessageId(id, "run_step.completed", "hook"));
      expect(
        (verifier.verify(request.body, signatureHeaders(request)) as { data: { id: string } }).data.id,
      ).toBe(id);
      seen.add(header);
      expect(await deliveryOf(app, id, "hook")).toMatchObject({ state: "delivered", attempts: 1 });

      const resent = await api(app, "POST", `/v1/deliveries/${encodeURIComponent(`${id}:hook`)}/resend`);
      expect(resent.status).toBe(200);
      const again = sink.received.at(-1);
      expect(again && stepIdOf(again)).toBe(id);
      expect(again?.headers["webhook-id"]).toBe(header);
    }
    expect(seen.size).toBe(odd.length);
  });
});

describe("retry timing through a real sink (SPEC §6: Retry-After honoured, within the schedule)", () => {
  it("next_attempt_at follows the schedule, Retry-After in seconds or as a date, capped at the longest delay", async () => {
    // A whole second, so HTTP dates (second precision) are exact.
    const clock = testClock(Math.floor(Date.now() / 1000) * 1000);
    const app = await appWith(
      "timing",
      { NOTIFY_RETRY_SCHEDULE: "10,30" },
      { nowMs: clock.nowMs, random: () => 0.5 },
    );
    const at = Math.floor(clock.now / 1000);
    const cases: Array<[string, Parameters<SinkServer["script"]>[0], number]> = [
      ["ra_none", { status: 503 }, 10],
      ["ra_seconds", { status: 503, headers: { "retry-after": "20" } }, 20],
      [
        "ra_date",
        { status: 429, headers: { "retry-after": new Date(clock.now + 25_000).toUTCString() } },
        25,
      ],
      ["ra_capped", { status: 503, headers: { "retry-after": "86400" } }, 30],
      ["ra_shorter", { status: 429, headers: { "retry-after": "2" } }, 10],
    ];
    for (const [id, reply, waitS] of cases) {
      sink.script(reply);
      await deliver(app, id, at);
      expect(await deliveryOf(app, id, "timing"), id).toMatchObject({
        state: "pending",
        attempts: 1,
        next_attempt_at: at + waitS,
      });
    }
  });

  it("a request that cannot be built (credentials in the sink URL) is dead at once with its reason; nothing is sent", async () => {
    const app = await createTestApp(store, {
      NOTIFY_SINKS: JSON.stringify([
        webhookSink("creds", `http://user:PASSWORD@127.0.0.1:${sink.port}/in`, secret),
      ]),
    });
    apps.push(app);
    const before = sink.received.length;
    await deliver(app, "creds_1");
    const dead = await deliveryOf(app, "creds_1", "creds");
    expect(dead).toMatchObject({
      state: "dead",
      attempts: 1,
      last_error: "request could not be built: TypeError",
      next_attempt_at: null,
    });
    expect(dead.recent_attempts).toMatchObject([{ attempt: 1, status: null }]);
    expect(JSON.stringify(dead)).not.toContain("PASSWORD");
    expect(sink.received).toHaveLength(before);
  });
});
