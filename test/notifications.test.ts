import OpenAI from "openai";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { makeStep } from "./support/run-steps.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, TEST_TOKEN, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
let hook: SinkServer;
let slack: SinkServer;
let pager: SinkServer;
let app: TestApp;
const consoleLines: string[] = [];
const hookSecret = generateWebhookSecret();
let seq = 0;
const uid = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${seq++}`;

interface StepBody {
  status: string;
  deliveries: Array<{
    id: string;
    sink: string;
    state: string;
    attempts: number;
    last_error: string | null;
    next_attempt_at: number | null;
  }>;
}

const stepOf = async (target: TestApp, id: string) =>
  (await (await target.get(`/v1/run-steps/${id}`)).json()) as StepBody;

/** Waits until no delivery of the step is pending, sweeping as a sweeper would. */
const settled = (target: TestApp, id: string, sweep = false) =>
  eventually(async () => {
    if (sweep) await target.sweep();
    const step = await stepOf(target, id);
    return step.deliveries.length > 0 && step.deliveries.every((d) => d.state !== "pending")
      ? step
      : undefined;
  });

beforeAll(async () => {
  [store, hook, slack, pager] = await Promise.all([
    startTestStore(),
    startSinkServer(),
    startSinkServer(),
    startSinkServer(),
  ]);
  app = await createTestApp(
    store,
    {
      NOTIFY_SINKS: JSON.stringify([
        { name: "hook", type: "webhook", url: `${hook.url}/hooks`, secret: hookSecret },
        { name: "ops", type: "slack", url: `${slack.url}/services/T0/B0/XYZ`, on: ["failed", "expired"] },
        {
          name: "pager",
          type: "pagerduty",
          url: `${pager.url}/v2/enqueue`,
          routing_key: "R0UTINGKEY",
          filter: { assistant_id: ["asst_paged"] },
        },
        { name: "log", type: "console", filter: { metadata: { env: "prod" } } },
      ]),
      NOTIFY_RETRY_SCHEDULE: "0.2,0.2,0.2",
      NOTIFY_TIMEOUT_MS: "1000",
    },
    { writeLine: (line) => consoleLines.push(line) },
  );
});
afterAll(async () => {
  await app.drain();
  await Promise.all([store.close(), hook.close(), slack.close(), pager.close()]);
});

// Step ids share prefixes (step_x_1, step_x_12): match the whole id.
const mentions = (body: string, stepId: string) => new RegExp(`${stepId}(?![0-9A-Za-z_])`).test(body);
const countFor = (sink: SinkServer, stepId: string) =>
  sink.received.filter((r) => mentions(r.body, stepId)).length;

describe("payloads of each sink type", () => {
  it("webhook: the SPEC §6 body, signed with the sink's secret, stable webhook-id", async () => {
    const step = makeStep({ id: uid("step"), status: "completed" });
    expect((await app.send(step)).status).toBe(200);
    await eventually(async () => (countFor(hook, step.id as string) > 0 ? true : undefined));
    const request = hook.received.find((r) => mentions(r.body, step.id as string));
    if (!request) throw new Error("no webhook request");
    expect(request.path).toBe("/hooks");
    expect(JSON.parse(request.body)).toEqual({
      type: "run_step.completed",
      timestamp: new Date((step.completed_at as number) * 1000).toISOString(),
      data: step,
    });
    const headers = {
      "webhook-id": String(request.headers["webhook-id"]),
      "webhook-timestamp": String(request.headers["webhook-timestamp"]),
      "webhook-signature": String(request.headers["webhook-signature"]),
    };
    expect(headers["webhook-id"]).toBe(`msg_${step.id}_completed_hook`);
    expect(new Webhook(hookSecret).verify(request.body, headers)).toEqual(JSON.parse(request.body));
    await new OpenAI({ apiKey: "k", webhookSecret: hookSecret }).webhooks.verifySignature(
      request.body,
      headers,
    );
    expect(request.headers["content-type"]).toBe("application/json");
    const stored = await settled(app, step.id as string);
    const now = Math.floor(Date.now() / 1000);
    expect(stored.deliveries).toEqual([
      {
        id: `${step.id}:hook`,
        step_id: step.id,
        subject: { kind: "run_step", id: step.id },
        run_id: "run_abc123",
        sink: "hook",
        event: "run_step.completed",
        state: "delivered",
        attempts: 1,
        last_error: null,
        next_attempt_at: null,
        created_at: expect.any(Number),
        recent_attempts: [
          { attempt: 1, at: expect.any(Number), status: 200, latency_ms: expect.any(Number), error: null },
        ],
      },
    ]);
    const [delivery] = stored.deliveries as unknown as Array<{
      created_at: number;
      recent_attempts: Array<{ at: number }>;
    }>;
    expect(Math.abs((delivery?.created_at ?? 0) - now)).toBeLessThanOrEqual(2);
    expect(delivery?.recent_attempts[0]?.at).toBe(delivery?.created_at);
  });

  it("slack: text and blocks a person can act on, with user text escaped", async () => {
    const step = makeStep({
      id: uid("step"),
      status: "failed",
      last_error: { code: "server_error", message: "tool <script> & friends > crashed" },
    });
    await app.send(step);
    await eventually(async () => (countFor(slack, step.id as string) > 0 ? true : undefined));
    const request = slack.received.find((r) => mentions(r.body, step.id as string));
    const message = JSON.parse(request?.body ?? "{}") as {
      text: string;
      blocks: Array<Record<string, unknown>>;
    };
    expect(message.text).toBe(`:x: Run step failed: ${step.id} (run run_abc123)`);
    const all = JSON.stringify(message.blocks);
    expect(all).toContain("tool &lt;script&gt; &amp; friends &gt; crashed");
    expect(all).not.toContain("<script>");
    for (const expected of [
      "*Status*\\nfailed",
      "`thread_abc123`",
      "`asst_abc123`",
      "`server_error`",
      "579 (prompt 123, completion 456)",
    ]) {
      expect(all).toContain(expected);
    }
    expect(message.blocks[0]).toMatchObject({ type: "section" });
  });

  it("pagerduty: an Events API v2 trigger de-duplicated by step id", async () => {
    const step = makeStep({ id: uid("step"), status: "expired", assistant_id: "asst_paged" });
    await app.send(step);
    await eventually(async () => (countFor(pager, step.id as string) > 0 ? true : undefined));
    const event = JSON.parse(pager.received.find((r) => mentions(r.body, step.id as string))?.body ?? "{}");
    expect(event).toMatchObject({
      routing_key: "R0UTINGKEY",
      event_action: "trigger",
      dedup_key: step.id,
      payload: {
        summary: `Run step expired (step ${step.id}, run run_abc123)`,
        source: "assistant asst_paged",
        severity: "warning",
        timestamp: new Date((step.expired_at as number) * 1000).toISOString(),
        custom_details: {
          step_id: step.id,
          run_id: "run_abc123",
          thread_id: "thread_abc123",
          status: "expired",
        },
      },
    });
  });

  it("console: one line per notification", async () => {
    const step = makeStep({ id: uid("step"), status: "cancelled", metadata: { env: "prod" } });
    await app.send(step);
    await eventually(async () =>
      consoleLines.some((l) => mentions(l, step.id as string)) ? true : undefined,
    );
    expect(consoleLines.filter((l) => mentions(l, step.id as string))).toEqual([
      `[notify] run_step.cancelled step=${step.id} run=run_abc123 thread=thread_abc123 assistant=asst_abc123 tokens=579`,
    ]);
  });
});

describe("routing", () => {
  it("notifies only sinks whose `on` and filters match", async () => {
    const completed = makeStep({
      id: uid("step"),
      status: "completed",
      assistant_id: "asst_paged",
      metadata: { env: "dev" },
    });
    const stored = (await settledAfterSend(completed)).deliveries.map((d) => d.sink).sort();
    // slack listens to failed/expired only; pagerduty defaults to failed/expired; console wants env=prod.
    expect(stored).toEqual(["hook"]);

    const failed = makeStep({
      id: uid("step"),
      status: "failed",
      assistant_id: "asst_paged",
      metadata: { env: "prod" },
    });
    expect((await settledAfterSend(failed)).deliveries.map((d) => d.sink).sort()).toEqual([
      "hook",
      "log",
      "ops",
      "pager",
    ]);

    const other = makeStep({ id: uid("step"), status: "failed", assistant_id: "asst_other" });
    expect((await settledAfterSend(other)).deliveries.map((d) => d.sink).sort()).toEqual(["hook", "ops"]);
  });

  it("nothing for in_progress steps", async () => {
    const step = makeStep({ id: uid("step") });
    await app.send(step);
    expect((await stepOf(app, step.id as string)).deliveries).toEqual([]);
  });
});

async function settledAfterSend(step: Record<string, unknown>) {
  expect((await app.send(step)).status).toBe(200);
  return settled(app, step.id as string);
}

describe("exactly once", () => {
  it("25 concurrent duplicate terminal deliveries: one notification per subscribed sink; conflicts and stale events: none", async () => {
    const id = uid("step");
    const step = makeStep({ id, status: "failed", metadata: { env: "prod" } });
    await Promise.all(Array.from({ length: 25 }, () => app.send(step)));
    await settled(app, id);
    await app.sweep();
    await app.send(makeStep({ id, status: "completed" }));
    await app.send(makeStep({ id }));
    await app.send(step);
    await app.drain();
    expect(countFor(hook, id)).toBe(1);
    expect(countFor(slack, id)).toBe(1);
    expect(consoleLines.filter((l) => mentions(l, id))).toHaveLength(1);
    expect(countFor(pager, id)).toBe(0);
  });
});

/** An app with a sink of its own (its own server, a name no other test uses): health stays apart. */
const isolated = async (env: Record<string, string> = {}) => {
  const server = await startSinkServer();
  const name = `hook${seq++}`;
  const target = await createTestApp(store, {
    NOTIFY_SINKS: JSON.stringify([{ name, type: "webhook", url: `${server.url}/hooks`, secret: hookSecret }]),
    NOTIFY_RETRY_SCHEDULE: "0.2,0.2,0.2",
    NOTIFY_TIMEOUT_MS: "1000",
    ...env,
  });
  cleanups.push(async () => {
    await target.drain();
    await server.close();
  });
  return { app: target, sink: server, name };
};
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  await Promise.all(cleanups.map((cleanup) => cleanup()));
});

const post = (target: TestApp, path: string) =>
  target.app.request(path, { method: "POST", headers: { authorization: `Bearer ${TEST_TOKEN}` } });

describe("retries", () => {
  it("a sink failing twice with 503 is delivered on the third attempt", async () => {
    const { app: target, sink } = await isolated();
    const step = makeStep({ id: uid("step"), status: "completed" });
    sink.script({ status: 503, body: "busy" }, { status: 503, body: "still busy" });
    await target.send(step);
    const first = await eventually(async () => {
      const d = (await stepOf(target, step.id as string)).deliveries[0];
      return d && d.attempts >= 1 ? d : undefined;
    });
    expect(first).toMatchObject({ state: "pending", attempts: 1, last_error: "HTTP 503: busy" });
    expect(first.next_attempt_at).toBeTypeOf("number");
    const done = await settled(target, step.id as string, true);
    expect(done.deliveries[0]).toMatchObject({ state: "delivered", attempts: 3, last_error: null });
    expect(countFor(sink, step.id as string)).toBe(3);
  });

  it("waits no longer than the schedule's longest delay, whatever Retry-After a sink asks for", async () => {
    const { app: target, sink } = await isolated();
    const step = makeStep({ id: uid("step"), status: "completed" });
    sink.script({ status: 429, headers: { "retry-after": "30" } });
    const sentAt = Math.floor(Date.now() / 1000);
    await target.send(step);
    const pending = await eventually(async () => {
      const d = (await stepOf(target, step.id as string)).deliveries[0];
      return d && d.attempts >= 1 ? d : undefined;
    });
    expect(pending.state).toBe("pending");
    // The schedule here is 0.2 s apart: 30 s is capped to it.
    expect(pending.next_attempt_at).toBeLessThanOrEqual(sentAt + 2);
    const done = await settled(target, step.id as string, true);
    expect(done.deliveries[0]).toMatchObject({ state: "delivered", attempts: 2 });
  });

  it("a 400 is dead at once, listed, and retried by hand after the sink is fixed", async () => {
    const { app: target, sink, name } = await isolated();
    const step = makeStep({ id: uid("step"), status: "completed" });
    sink.script({ status: 400, body: '{"error":"unknown field"}' });
    await target.send(step);
    const dead = (await settled(target, step.id as string)).deliveries[0];
    expect(dead).toMatchObject({
      state: "dead",
      attempts: 1,
      last_error: 'HTTP 400: {"error":"unknown field"}',
      next_attempt_at: null,
    });

    const listed = (await (await target.get("/v1/deliveries?state=dead&limit=100")).json()) as {
      data: Array<{ id: string }>;
    };
    expect(listed.data.map((d) => d.id)).toContain(`${step.id}:${name}`);

    // The retry is attempted at once: the sink has it before the answer.
    const retried = await post(target, `/v1/deliveries/${step.id}:${name}/retry`);
    expect(retried.status).toBe(200);
    expect(countFor(sink, step.id as string)).toBe(2);
    expect(await retried.json()).toMatchObject({ id: `${step.id}:${name}`, state: "delivered", attempts: 2 });
    const after = (await (await target.get("/v1/deliveries?state=dead&limit=100")).json()) as {
      data: Array<{ id: string }>;
    };
    expect(after.data.map((d) => d.id)).not.toContain(`${step.id}:${name}`);

    expect((await post(target, `/v1/deliveries/${step.id}:${name}/retry`)).status).toBe(409);
    expect((await post(target, `/v1/deliveries/step_nope:${name}/retry`)).status).toBe(404);
  });

  it("gives up after the schedule and says why", async () => {
    const { app: target, sink } = await isolated();
    const step = makeStep({ id: uid("step"), status: "completed" });
    sink.script(...Array.from({ length: 4 }, () => ({ status: 500 })));
    await target.send(step);
    const done = await settled(target, step.id as string, true);
    expect(done.deliveries[0]).toMatchObject({
      state: "dead",
      attempts: 4,
      last_error: "gave up after 4 attempts: HTTP 500",
    });
  });

  it("lists pending deliveries page by page", async () => {
    const { app: target, sink, name } = await isolated({ NOTIFY_RETRY_SCHEDULE: "60" });
    const ids = [uid("step"), uid("step"), uid("step")];
    sink.script(...ids.map(() => ({ status: 503 })));
    await Promise.all(ids.map((id) => target.send(makeStep({ id, status: "completed" }))));
    await eventually(async () => {
      const steps = await Promise.all(ids.map((id) => stepOf(target, id)));
      return steps.every((s) => s.deliveries[0]?.attempts === 1) ? true : undefined;
    });
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 20; page++) {
      const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const body = (await (
        await target.get(`/v1/deliveries?state=pending&sink=${name}&limit=1${query}`)
      ).json()) as {
        data: Array<{ id: string; state: string; last_error: string }>;
        next_cursor: string | null;
      };
      for (const d of body.data) {
        expect(d.state).toBe("pending");
        seen.push(d.id);
      }
      cursor = body.next_cursor;
      if (!cursor) break;
    }
    expect(seen.sort()).toEqual(ids.map((id) => `${id}:${name}`).sort());
    expect((await target.get("/v1/deliveries?state=lost")).status).toBe(400);
    expect((await target.get("/v1/deliveries?state=pending&cursor=bm90LWEtY3Vyc29y")).status).toBe(400);
  });
});

describe("sweepers", () => {
  it("two instances sweeping the same due deliveries at once send each one once", async () => {
    const { app: first, sink, name } = await isolated();
    const other = await createTestApp(store, {
      WEBHOOK_SECRET: first.secret,
      NOTIFY_SINKS: JSON.stringify([{ name, type: "webhook", url: `${sink.url}/hooks`, secret: hookSecret }]),
      NOTIFY_RETRY_SCHEDULE: "0.2,0.2,0.2",
      NOTIFY_TIMEOUT_MS: "1000",
    });
    // Down for the prompt attempts; four failures keep the sink healthy (it turns failing at five).
    const ids = Array.from({ length: 4 }, () => uid("step"));
    sink.script(...ids.map(() => ({ status: 503 })));
    await Promise.all(ids.map((id) => first.send(makeStep({ id, status: "completed" }))));
    await first.drain();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await eventually(async () => {
      await Promise.all([first.sweep(), other.sweep(), first.sweep(), other.sweep()]);
      const steps = await Promise.all(ids.map((id) => stepOf(first, id)));
      return steps.every((s) => s.deliveries[0]?.state === "delivered") ? true : undefined;
    });
    for (const id of ids) {
      expect(countFor(sink, id)).toBe(2);
      expect((await stepOf(first, id)).deliveries[0]?.attempts).toBe(2);
    }
    await other.drain();
  });
});

describe("logs", () => {
  it("one structured line per attempt, without sink URLs, secrets or routing keys", async () => {
    const lines: string[] = [];
    const logged = await createTestApp(
      store,
      {
        NOTIFY_SINKS: JSON.stringify([
          {
            name: "hook",
            type: "webhook",
            url: `${hook.url}/hooks?token=SECRET-URL-TOKEN`,
            secret: hookSecret,
          },
          {
            name: "pager",
            type: "pagerduty",
            url: `${pager.url}/v2/enqueue`,
            routing_key: "ROUTING-KEY-VALUE",
            on: ["failed"],
          },
        ]),
      },
      { logLines: lines },
    );
    pager.script({ status: 400, body: "bad routing key" });
    const step = makeStep({ id: uid("step"), status: "failed" });
    await logged.send(step);
    await settled(logged, step.id as string);
    const attempts = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === "delivery attempt");
    expect(attempts).toHaveLength(2);
    for (const line of attempts) {
      expect(line).toMatchObject({ level: "info", step_id: step.id, event: "run_step.failed", attempt: 1 });
      expect(line.latency_ms).toBeTypeOf("number");
    }
    expect(attempts.find((l) => l.sink === "hook")).toMatchObject({ outcome: "delivered", status: 200 });
    expect(attempts.find((l) => l.sink === "pager")).toMatchObject({
      outcome: "dead",
      status: 400,
      error: "HTTP 400: bad routing key",
    });
    const all = lines.join("\n");
    for (const secret of [
      "SECRET-URL-TOKEN",
      "ROUTING-KEY-VALUE",
      hookSecret,
      logged.secret,
      hook.url,
      pager.url,
    ]) {
      expect(all).not.toContain(secret);
    }
  });
});
