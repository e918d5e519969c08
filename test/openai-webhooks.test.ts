import OpenAI from "openai";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { shardOf } from "../src/store/item-codec.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import {
  completedResponse,
  failedResponse,
  functionCallSession,
  incompleteResponse,
} from "./fixtures/openai-objects.js";
import { type FakeOpenAi, startFakeOpenAi } from "./support/fake-openai.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, TEST_TOKEN, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// SPEC §9 end to end: a thin OpenAI event, signed as OpenAI signs it, recorded once, hydrated from
// a loopback stand-in of OpenAI's API, stored, projected, and notified once to real loopback sinks.

const API_KEY = "sk-test-0123456789abcdef";
const openAiSecret = generateWebhookSecret();
const hookSecret = generateWebhookSecret();
let store: TestStore;
let api: FakeOpenAi;
let hook: SinkServer;
let slack: SinkServer;
let seq = 0;
const uid = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${seq++}`;

beforeAll(async () => {
  [store, api, hook, slack] = await Promise.all([
    startTestStore(),
    startFakeOpenAi({ apiKey: API_KEY }),
    startSinkServer(),
    startSinkServer(),
  ]);
});
afterAll(async () => {
  await Promise.all([store.stop(), api.close(), hook.close(), slack.close()]);
});
afterEach(() => {
  api.outage = "off";
  api.unauthorized = false;
  api.latencyMs = 0;
});

const instance = (env: Record<string, string> = {}) =>
  createTestApp(store, {
    OPENAI_WEBHOOK_SECRET: openAiSecret,
    OPENAI_API_KEY: API_KEY,
    OPENAI_BASE_URL: api.url,
    NOTIFY_RETRY_SCHEDULE: "1,1",
    NOTIFY_SINKS: JSON.stringify([
      {
        name: "hook",
        type: "webhook",
        url: hook.url,
        secret: hookSecret,
        on: ["response.failed", "response.completed", "response.incomplete", "agent.session.action_required"],
      },
      {
        name: "chat",
        type: "slack",
        url: slack.url,
        on: ["response.failed", "agent.session.action_required"],
      },
    ]),
    ...env,
  });

/** A response fixture under a fresh id, served by the stand-in. */
function serve(fixture: Record<string, unknown>): Record<string, unknown> {
  const response = { ...fixture, id: uid(String(fixture.id)) };
  api.responses.set(String(response.id), response);
  return response;
}

/** A thin event for `subject`, as OpenAI sends it. */
const thin = (type: string, subject: string, id = uid("evt")) => ({
  id,
  object: "event",
  created_at: Math.floor(Date.now() / 1000),
  type,
  data: { id: subject },
});

/** POSTs an event to the OpenAI route signed with the standardwebhooks library, as OpenAI signs. */
async function deliver(app: TestApp, event: unknown, secret = openAiSecret) {
  const body = JSON.stringify(event);
  const id = `wh_${uid("m")}`;
  const now = new Date();
  const headers = {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
    "webhook-signature": new Webhook(secret).sign(id, now, body),
  };
  const response = await app.app.request("/v1/webhooks/openai", { method: "POST", headers, body });
  return { response, body, headers };
}

const json = async (response: Response) => (await response.json()) as Record<string, unknown>;
const hookBodies = (responseId: string) =>
  hook.received
    .filter((r) => r.body.includes(responseId))
    .map((r) => JSON.parse(r.body) as Record<string, unknown>);

describe("POST /v1/webhooks/openai (SPEC §9)", () => {
  it("a thin response.failed is recorded, hydrated, stored as fetched, and notified once to each subscribed sink", async () => {
    const app = await instance();
    const response = serve(failedResponse);
    const event = thin("response.failed", String(response.id));
    const { response: answer, body, headers } = await deliver(app, event);
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ event_id: event.id, type: "response.failed", outcome: "accepted" });
    // The same request is one OpenAI's own SDK accepts: our verification and OpenAI's agree.
    const unwrapped = await new OpenAI({ apiKey: "x", webhookSecret: openAiSecret }).webhooks.unwrap(
      body,
      headers,
    );
    expect(unwrapped).toMatchObject({ id: event.id, type: "response.failed" });

    await eventually(async () => (hookBodies(String(response.id)).length === 1 ? true : undefined));
    await eventually(async () =>
      slack.received.some((r) => r.body.includes(String(response.id))) ? true : undefined,
    );
    const [sent] = hookBodies(String(response.id));
    expect(sent).toMatchObject({ type: "response.failed", data: response });
    const delivery = hook.received.find((r) => r.body.includes(String(response.id)));
    expect(delivery?.headers["webhook-id"]).toBe(`msg_${response.id}_response.failed_hook`);
    // The receiver verifies it with the sink's secret, needing no OpenAI credentials.
    expect(() =>
      new Webhook(hookSecret).verify(delivery?.body ?? "", delivery?.headers as Record<string, string>),
    ).not.toThrow();
    const message = slack.received.find((r) => r.body.includes(String(response.id)));
    expect(message?.body).toContain("server_error");
    expect(message?.body).toContain("The model produced invalid content.");
    expect(message?.body).toContain(String(failedResponse.model));

    // The notifications go out before the event is marked hydrated: drain() waits for both.
    await app.drain();
    const stored = await json(await app.get(`/v1/responses/${response.id}`));
    expect(stored).toMatchObject({
      ...response,
      events: [{ id: event.id, type: "response.failed", hydration: "hydrated", attempts: 1 }],
    });
    expect(stored.deliveries).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          sink: "hook",
          event: "response.failed",
          subject: { kind: "response", id: response.id },
        }),
        expect.objectContaining({ sink: "chat", event: "response.failed" }),
      ]),
    );
  });

  it("duplicates ×3 and the same transition from another event are one notification; an ignored type is acknowledged and not stored", async () => {
    const app = await instance();
    const response = serve(completedResponse);
    const event = thin("response.completed", String(response.id));
    const answers = await Promise.all([1, 2, 3].map(() => deliver(app, event)));
    const outcomes = await Promise.all(answers.map(async (a) => (await json(a.response)).outcome));
    expect(outcomes.sort()).toEqual(["accepted", "duplicate", "duplicate"]);
    await eventually(async () => (hookBodies(String(response.id)).length === 1 ? true : undefined));
    // Another event announcing the same transition: fetched again, unchanged, nobody told twice.
    expect(
      (await json((await deliver(app, thin("response.completed", String(response.id)))).response)).outcome,
    ).toBe("accepted");
    await app.drain();
    await app.sweep();
    expect(hookBodies(String(response.id))).toHaveLength(1);

    const ignored = await deliver(app, { ...thin("batch.completed", "batch_1"), data: { id: "batch_1" } });
    expect(await ignored.response.json()).toMatchObject({ outcome: "ignored", type: "batch.completed" });
    expect((await app.get("/v1/responses/batch_1")).status).toBe(404);
  });

  it("a runtime's cap on hydrations per sweep (the Worker's subrequests) leaves the rest for the next sweep", async () => {
    const app = await createTestApp(
      store,
      { OPENAI_WEBHOOK_SECRET: openAiSecret, OPENAI_API_KEY: API_KEY, OPENAI_BASE_URL: api.url },
      { maxHydrationsPerSweep: 1 },
    );
    // Two events in one hydration shard and one in another: the cap holds within a shard and across.
    const shards = TABLE_SCHEMA.hydrationShards;
    const idIn = (wanted: (shard: number) => boolean) => {
      for (let i = 0; i < 1_000; i++) {
        const id = uid("evt_cap");
        if (wanted(shardOf(id, shards))) return id;
      }
      throw new Error("no id in the wanted shard");
    };
    const first = uid("evt_cap");
    const ids = [first, idIn((s) => s === shardOf(first, shards)), idIn((s) => s !== shardOf(first, shards))];
    const events = ids.map((id) => thin("response.completed", String(serve(completedResponse).id), id));
    api.outage = "destroy";
    for (const event of events) expect((await deliver(app, event)).response.status).toBe(200);
    await app.drain();
    api.outage = "off";
    // Both retries due (1 s backoff, jittered) before one sweep looks.
    await eventually(
      async () => {
        const records = await Promise.all(events.map((e) => app.openai?.events.get(e.id)));
        return records.every((r) => r?.hydration === "pending" && (r.nextAttemptMs ?? 0) <= Date.now())
          ? true
          : undefined;
      },
      10_000,
      100,
    );
    const deadline = () => Date.now() + 10_000;
    for (let sweep = 0; sweep < 3; sweep++) {
      expect(await app.openai?.ingest.sweep(deadline())).toMatchObject({ attempts: 1, hydrated: 1 });
    }
    const settled = await Promise.all(events.map((e) => app.openai?.events.get(e.id)));
    expect(settled.map((r) => r?.hydration)).toEqual(["hydrated", "hydrated", "hydrated"]);
  });

  it("an API outage loses nothing: the event waits (GET /v1/sources shows it) and a sweep after the outage hydrates and notifies it", async () => {
    const app = await instance();
    const response = serve(incompleteResponse);
    api.outage = "destroy";
    const event = thin("response.incomplete", String(response.id));
    expect((await deliver(app, event)).response.status).toBe(200);
    await app.drain();
    await eventually(async () => {
      const sources = await json(await app.get("/v1/sources"));
      const [openai] = sources.data as Array<Record<string, unknown>>;
      return openai?.state === "failing" && Number(openai.pending_hydrations) >= 1 ? openai : undefined;
    });
    expect(await json(await app.get(`/v1/responses/${response.id}`))).toMatchObject({
      error: { code: "not_found" },
    });

    api.outage = "off";
    // Its retry is due within a few seconds (1 s backoff, jittered).
    await eventually(
      async () => {
        await app.sweep();
        return hookBodies(String(response.id)).length === 1 ? true : undefined;
      },
      15_000,
      250,
    );
    expect(hookBodies(String(response.id))[0]).toMatchObject({ type: "response.incomplete", data: response });
    const sources = (await json(await app.get("/v1/sources"))).data as Array<Record<string, unknown>>;
    expect(sources[0]).toMatchObject({ name: "openai", state: "ok" });
  });

  it("404 marks the event not_found with the reason; a refused key leaves events waiting, visibly", async () => {
    const app = await instance();
    const missing = thin("response.failed", uid("resp_gone"));
    expect((await deliver(app, missing)).response.status).toBe(200);
    await app.drain();
    await eventually(async () => {
      const stored = await app.openai?.events.get(missing.id);
      return stored?.hydration === "not_found" ? stored : undefined;
    });
    expect((await app.openai?.events.get(missing.id))?.lastError).toContain("HTTP 404");

    api.unauthorized = true;
    const response = serve(failedResponse);
    const waiting = thin("response.failed", String(response.id));
    await deliver(app, waiting);
    await app.drain();
    await eventually(async () => {
      const sources = (await json(await app.get("/v1/sources"))).data as Array<Record<string, unknown>>;
      return sources[0]?.state === "unauthorized" ? true : undefined;
    });
    expect(await app.openai?.events.get(waiting.id)).toMatchObject({ hydration: "pending", attempts: 1 });
    expect(hookBodies(String(response.id))).toEqual([]);
  });

  it("two instances on one table: the same event to both is recorded once and notified once", async () => {
    const [a, b] = await Promise.all([instance(), instance()]);
    const response = serve(failedResponse);
    const event = thin("response.failed", String(response.id));
    const answers = await Promise.all([
      deliver(a, event),
      deliver(b, event),
      deliver(a, event),
      deliver(b, event),
    ]);
    const outcomes = await Promise.all(answers.map(async (x) => (await json(x.response)).outcome));
    expect(outcomes.filter((o) => o === "accepted")).toHaveLength(1);
    await Promise.all([a.drain(), b.drain()]);
    await eventually(async () => (hookBodies(String(response.id)).length === 1 ? true : undefined));
    await Promise.all([a.sweep(), b.sweep()]);
    expect(hookBodies(String(response.id))).toHaveLength(1);
  });

  it("a response is a run: its rollup and its output items as steps, in output order", async () => {
    const app = await instance();
    const response = serve(completedResponse);
    await deliver(app, thin("response.completed", String(response.id)));
    await app.drain();
    const run = await eventually(async () => {
      const got = await app.get(`/v1/runs/${response.id}`);
      return got.status === 200 ? json(got) : undefined;
    });
    expect(run).toMatchObject({
      run_id: response.id,
      thread_id: (completedResponse.conversation as { id: string }).id,
      assistant_id: "pmpt_abc123",
      usage: { prompt_tokens: 36, completion_tokens: 87, total_tokens: 123 },
    });
    const first = await json(await app.get(`/v1/runs/${response.id}/steps?limit=2`));
    const items = (completedResponse.output as Array<{ id?: string }>).filter((item) => item.id);
    expect((first.data as Array<{ id: string }>).map((s) => s.id)).toEqual(
      items.slice(0, 2).map((i) => i.id),
    );
    expect((run.steps as { total: number }).total).toBe(items.length);
    const second = await json(
      await app.get(`/v1/runs/${response.id}/steps?limit=2&cursor=${first.next_cursor}`),
    );
    expect((second.data as Array<{ id: string }>).map((s) => s.id)).toEqual(
      items.slice(2, 4).map((i) => i.id),
    );
  });

  it("signed but not an OpenAI event: 422 and quarantined; unsigned or signed with WEBHOOK_SECRET: 401", async () => {
    const app = await instance();
    const refused = await deliver(app, { id: "evt_bad", type: "response.failed", data: {} });
    expect(refused.response.status).toBe(422);
    expect(await refused.response.json()).toMatchObject({ error: { code: "invalid_payload" } });
    const wrong = await deliver(app, thin("response.failed", "resp_x"), app.secret);
    expect(wrong.response.status).toBe(401);
    const bare = await app.app.request("/v1/webhooks/openai", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(bare.status).toBe(401);
  });

  it("an agent session's action_required: hydrated, the newest object kept, one notification per event id saying what is asked", async () => {
    const app = await instance();
    const session = { ...functionCallSession, id: uid("sess") };
    api.sessions.set(session.id, session);
    const first = thin("agent.session.action_required", session.id);
    const second = thin("agent.session.action_required", session.id);
    expect((await json((await deliver(app, first)).response)).outcome).toBe("accepted");
    // created is taken (recorded, hydrated) but no sink is owed a notification for it.
    expect(
      (await json((await deliver(app, thin("agent.session.created", session.id))).response)).outcome,
    ).toBe("accepted");
    expect((await json((await deliver(app, second)).response)).outcome).toBe("accepted");
    await app.drain();
    const sent = await eventually(async () => {
      const bodies = hookBodies(session.id);
      return bodies.length === 2 ? bodies : undefined;
    });
    expect(sent.map((b) => b.type)).toEqual([
      "agent.session.action_required",
      "agent.session.action_required",
    ]);
    expect(sent[0]?.data).toEqual(session);
    const ids = hook.received.filter((r) => r.body.includes(session.id)).map((r) => r.headers["webhook-id"]);
    expect(new Set(ids)).toEqual(
      new Set([
        `msg_${first.id}_agent.session.action_required_hook`,
        `msg_${second.id}_agent.session.action_required_hook`,
      ]),
    );
    const message = await eventually(async () => slack.received.find((r) => r.body.includes(session.id)));
    expect(message.body).toContain("function_call: lookup_order");
    const stored = await json(await app.get(`/v1/agent-sessions/${session.id}`));
    expect(stored).toMatchObject({ ...session, status: "requires_action" });
    expect((stored.events as Array<{ id: string }>).map((e) => e.id).sort()).toHaveLength(3);
    expect((await app.get(`/v1/agent-sessions/${uid("sess_none")}`)).status).toBe(404);
  });

  it("a relayed event carrying its response inline is applied as it came, with no fetch", async () => {
    const app = await instance();
    const response = { ...failedResponse, id: uid("resp_relayed") };
    const before = api.count(`/v1/responses/${response.id}`);
    const event = { ...thin("response.failed", response.id), data: response };
    expect((await json((await deliver(app, event)).response)).outcome).toBe("accepted");
    await eventually(async () => (hookBodies(response.id).length === 1 ? true : undefined));
    expect(hookBodies(response.id)[0]).toMatchObject({ type: "response.failed", data: response });
    expect(api.count(`/v1/responses/${response.id}`)).toBe(before);
    expect(await app.openai?.events.get(event.id)).toMatchObject({ hydration: "hydrated", attempts: 1 });
    // An inline object must be in the status its event announces.
    const wrong = await deliver(app, { ...thin("response.completed", response.id), data: response });
    expect(wrong.response.status).toBe(422);
  });

  it("a session event's deliveries, written with its snapshot, are recovered from the outbox when its instance died first", async () => {
    const app = await instance();
    const events = app.openai?.events;
    if (!events) throw new Error("the OpenAI producer is configured");
    const id = uid("evt_crash");
    const session = { ...functionCallSession, id: uid("sess_crash") };
    const record = {
      id,
      type: "agent.session.action_required",
      kind: "agent_session" as const,
      subjectId: session.id,
      createdAt: Math.floor(Date.now() / 1000),
      receivedAtMs: Date.now() - 120_000,
      hydration: "pending" as const,
      attempts: 0,
      nextAttemptMs: Date.now(),
      lastError: null,
      hydratedAtMs: null,
      version: 1,
    };
    expect(await events.record(record)).toBe(true);
    // Settled with what it owes, then the instance dies before any delivery is written.
    const settled = {
      ...record,
      hydration: "hydrated" as const,
      attempts: 1,
      nextAttemptMs: null,
      hydratedAtMs: Date.now() - 100_000,
      version: 2,
    };
    expect(
      await events.replace(settled, session, {
        sinks: ["hook"],
        word: "action_required",
        atMs: Date.now() - 100_000,
      }),
    ).toBe(true);
    const report = await app.deliveries.recoverOutbox(Date.now(), Date.now(), Date.now() + 10_000);
    expect(report.recovered).toBeGreaterThanOrEqual(1);
    expect(await app.deliveries.get({ kind: "agent_session", subjectId: id, sink: "hook" })).toMatchObject({
      kind: "agent_session",
      subjectId: id,
      runId: session.id,
      event: "agent.session.action_required",
      state: "pending",
    });
    await app.sweep();
    await eventually(async () => (hookBodies(session.id).length === 1 ? true : undefined));
    expect(hookBodies(session.id)[0]).toMatchObject({ type: "agent.session.action_required", data: session });
  });

  it("a sweep right after the answer leaves the first fetch to its instance: one fetch per event", async () => {
    const app = await instance();
    const response = serve(completedResponse);
    api.latencyMs = 300;
    const event = thin("response.completed", String(response.id));
    await deliver(app, event);
    // While the first fetch is in flight, a sweep finds the event not yet due.
    await app.sweep();
    await eventually(async () => (hookBodies(String(response.id)).length === 1 ? true : undefined));
    await app.sweep();
    expect(api.count(`/v1/responses/${response.id}`)).toBe(1);
    const stored = await app.openai?.events.get(event.id);
    expect(stored).toMatchObject({ hydration: "hydrated", attempts: 1 });
  });

  it("without OPENAI_WEBHOOK_SECRET the route is not there", async () => {
    const app = await createTestApp(store, {});
    const answer = await app.app.request("/v1/webhooks/openai", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(answer.status).toBe(404);
    expect((await app.get("/v1/sources", TEST_TOKEN)).status).toBe(404);
  });
});
