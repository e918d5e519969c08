import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { OpenAiEventRecord } from "../src/domain/openai/openai-event-record.js";
import { newEventRecord } from "../src/domain/openai/openai-event-record.js";
import { createLogger } from "../src/observability/logger.js";
import type { Metrics } from "../src/observability/metrics.js";
import { OpenAiApiClient } from "../src/sources/openai-api-client.js";
import { DynamoDeliveryStore } from "../src/store/dynamo-delivery-store.js";
import { DynamoQuarantineStore } from "../src/store/dynamo-quarantine-store.js";
import { ensureTable } from "../src/store/ensure-table.js";
import { shardOf } from "../src/store/item-codec.js";
import { hydrationLeaseKey, OpenAiEventStore } from "../src/store/openai-event-store.js";
import { ResponseStore } from "../src/store/response-store.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { OpenAiIngest } from "../src/usecases/openai-ingest.js";
import {
  completedResponse,
  computerUseSession,
  failedSession,
  functionCallSession,
  idleSession,
} from "./fixtures/openai-objects.js";
import { type FakeOpenAi, startFakeOpenAi } from "./support/fake-openai.js";
import { overriding } from "./support/overriding.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// The OpenAI ingest (SPEC §9) with the real stores on dynalite and the loopback stand-in of
// OpenAI's API: what it records, how it retries (an injected clock and jitter make every delay
// exact), its lease and concurrency bound, the source state it shows, and a session's notifications.

const API_KEY = "sk-test-ingest-0123456789";
const SHARDS = TABLE_SCHEMA.hydrationShards;
let store: TestStore;
let api: FakeOpenAi;
let hook: SinkServer;
let seq = 0;
const uid = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${seq++}`;
const utf8 = new TextEncoder();

beforeAll(async () => {
  [store, api, hook] = await Promise.all([
    startTestStore("openai-ingest"),
    startFakeOpenAi({ apiKey: API_KEY }),
    startSinkServer(),
  ]);
});
afterAll(async () => {
  await Promise.all([store.close(), api.close(), hook.close()]);
});
afterEach(() => {
  api.outage = "off";
  api.unauthorized = false;
  api.latencyMs = 0;
  api.maxInFlight = 0;
});

interface Rig {
  readonly ingest: OpenAiIngest;
  readonly events: OpenAiEventStore;
  readonly responses: ResponseStore;
  readonly quarantine: DynamoQuarantineStore;
  readonly leases: DynamoDeliveryStore;
  readonly clock: { now: number };
  readonly lines: Array<Record<string, unknown>>;
  readonly counted: Counted;
}

/**
 * An ingest with a fixed clock; `sweeps`: on a table of its own (a sweep sees only its events),
 * else on the shared one (creating a table costs more than most tests here).
 */
async function rig(
  options: {
    random?: () => number;
    concurrency?: number;
    withApi?: boolean;
    now?: number;
    sweeps?: boolean;
    maxAttemptsPerSweep?: number;
    /** Milliseconds the clock moves during each fetch. */
    fetchMs?: number;
    events?: (real: OpenAiEventStore) => OpenAiEventStore;
    leases?: (real: DynamoDeliveryStore) => DynamoDeliveryStore;
  } = {},
): Promise<Rig> {
  let tableName = store.tableName;
  if (options.sweeps) {
    tableName = `ingest-${seq++}`;
    await ensureTable(store.client, tableName, { retentionDays: 0, logger: createLogger("error") });
  }
  const clock = { now: options.now ?? Date.now() };
  const nowMs = () => clock.now;
  const client = store.client;
  const events = new OpenAiEventStore({ client, tableName, retentionDays: 0 });
  const responses = new ResponseStore({ client, tableName, retentionDays: 0, nowMs });
  const quarantine = new DynamoQuarantineStore({ client, tableName, nowMs });
  const leases = new DynamoDeliveryStore({ client, tableName, retentionDays: 0, nowMs });
  const lines: Array<Record<string, unknown>> = [];
  const counted: Counted = { events: [], hydrations: [] };
  const fetchMs = options.fetchMs ?? 0;
  const ingest = new OpenAiIngest({
    events: options.events ? options.events(events) : events,
    responses,
    quarantine,
    leases: options.leases ? options.leases(leases) : leases,
    api:
      options.withApi === false
        ? null
        : new OpenAiApiClient({
            apiKey: API_KEY,
            baseUrl: api.url,
            timeoutMs: 5_000,
            nowMs,
            fetch: async (request) => {
              const response = await fetch(request);
              clock.now += fetchMs;
              return response;
            },
          }),
    metrics: countingMetrics(counted),
    logger: createLogger("debug", (line) => lines.push(JSON.parse(line) as Record<string, unknown>)),
    quarantineDays: 7,
    concurrency: options.concurrency ?? 8,
    timeoutMs: 5_000,
    nowMs,
    random: options.random ?? (() => 0.5),
    ...(options.maxAttemptsPerSweep ? { maxAttemptsPerSweep: options.maxAttemptsPerSweep } : {}),
  });
  return { ingest, events, responses, quarantine, leases, clock, lines, counted };
}

interface Counted {
  readonly events: string[];
  readonly hydrations: string[];
}

// Notes what the ingest counts; the rest of the interface is not the ingest's to call.
function countingMetrics(counted: Counted): Metrics {
  const unused = () => {
    throw new Error("not the ingest's metric");
  };
  return {
    openAiEvent: (type, outcome) => counted.events.push(`${type} ${outcome}`),
    hydration: (kind, outcome, seconds) => counted.hydrations.push(`${kind} ${outcome} ${seconds}`),
    httpRequest: unused,
    ingest: unused,
    deliveryAttempt: unused,
    sweep: unused,
    render: unused,
  };
}

/** A signed request as the edge hands it over. */
function signed(body: unknown) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  return {
    body: body instanceof Uint8Array ? body : utf8.encode(text),
    webhookId: uid("wh"),
    timestamp: Math.floor(Date.now() / 1000),
    headers: { "content-type": "application/json", "webhook-id": "wh_x" },
    requestId: uid("req"),
  };
}

const thin = (type: string, subject: string, id = uid("evt")) => ({
  id,
  object: "event",
  created_at: 1_765_000_000,
  type,
  data: { id: subject },
});

/** A response the stand-in serves under a fresh id. */
function serve(status = "completed"): string {
  const id = uid("resp");
  api.responses.set(id, { ...completedResponse, id, status });
  return id;
}

/** Ingests a thin event and waits for its first hydration. */
async function ingested(r: Rig, event: ReturnType<typeof thin>) {
  const answer = await r.ingest.ingest(signed(event));
  if (answer.kind !== "recorded") throw new Error(`not recorded: ${answer.kind}`);
  await answer.hydration;
  return answer;
}

/** A pending event of `attempts` fetches so far, due now, recorded straight to the store. */
async function seedPending(r: Rig, subject: string, attempts: number, shard?: number): Promise<string> {
  let id = uid(`evt_a${attempts}`);
  while (shard !== undefined && shardOf(id, SHARDS) !== shard) id = uid(`evt_a${attempts}`);
  const record: OpenAiEventRecord = {
    ...newEventRecord(
      { id, type: "response.completed", kind: "response", subjectId: subject, createdAt: 1 },
      r.clock.now - 10,
    ),
    attempts,
  };
  if (!(await r.events.record(record))) throw new Error("exists");
  return id;
}

const messages = (r: Rig) => r.lines.map((l) => String(l.msg));

describe("ingest", () => {
  it("records a taken event once and hydrates it; a duplicate is recorded nothing and fetches nothing", async () => {
    const r = await rig();
    const subject = serve();
    const event = thin("response.completed", subject);
    const first = await ingested(r, event);
    expect(first).toMatchObject({ kind: "recorded", eventId: event.id, outcome: "accepted" });
    const again = await r.ingest.ingest(signed(event));
    expect(again).toEqual({
      kind: "recorded",
      eventId: event.id,
      type: "response.completed",
      outcome: "duplicate",
      hydration: null,
    });
    expect(api.count(`/v1/responses/${subject}`)).toBe(1);
    expect(await r.events.get(event.id)).toMatchObject({
      hydration: "hydrated",
      attempts: 1,
      hydratedAtMs: r.clock.now,
      lastError: null,
      nextAttemptMs: null,
      version: 2,
    });
    expect((await r.responses.get(subject))?.eventIds).toEqual([event.id]);
  });

  it("answers before the API does: the first hydration runs after the answer", async () => {
    const r = await rig();
    api.latencyMs = 300;
    const event = thin("response.completed", serve());
    const answer = await r.ingest.ingest(signed(event));
    expect(await r.events.get(event.id)).toMatchObject({ hydration: "pending", attempts: 0 });
    if (answer.kind !== "recorded") throw new Error(answer.kind);
    await answer.hydration;
    expect(await r.events.get(event.id)).toMatchObject({ hydration: "hydrated", attempts: 1 });
  });

  it("a first hydration that fails on the store never rejects: it is logged with its ids, and a sweep retries it", async () => {
    const r = await rig({
      events: (real) => overriding(real, { replace: () => Promise.reject(new Error("store unreachable")) }),
    });
    const event = thin("response.completed", serve());
    const request = signed(event);
    const answer = await r.ingest.ingest(request);
    if (answer.kind !== "recorded") throw new Error(answer.kind);
    await expect(answer.hydration).resolves.toBeUndefined();
    expect(r.lines.find((l) => l.msg === "hydration failed; a sweep retries it")).toMatchObject({
      level: "warn",
      request_id: request.requestId,
      event_id: event.id,
      error: expect.stringContaining("store unreachable"),
    });
    expect(await r.events.get(event.id)).toMatchObject({ hydration: "pending", attempts: 0 });
  });

  it("a response fetched at another terminal status than the stored one is a conflict: logged, the stored one kept", async () => {
    const r = await rig();
    const subject = serve("completed");
    await ingested(r, thin("response.completed", subject));
    api.responses.set(subject, { ...completedResponse, id: subject, status: "failed" });
    const second = signed(thin("response.failed", subject));
    const answer = await r.ingest.ingest(second);
    if (answer.kind !== "recorded") throw new Error(answer.kind);
    await answer.hydration;
    expect(r.lines.filter((l) => l.msg === "conflicting terminal status ignored")).toEqual([
      expect.objectContaining({
        level: "warn",
        request_id: second.requestId,
        response_id: subject,
        status: "failed",
      }),
    ]);
    expect(r.lines.filter((l) => l.msg === "hydration").map((l) => l.outcome)).toEqual([
      "created",
      "conflict",
    ]);
    expect((await r.responses.get(subject))?.status).toBe("completed");
  });

  it("an event type it does not take is ignored and not stored", async () => {
    const r = await rig();
    const event = thin("batch.completed", "batch_1");
    expect(await r.ingest.ingest(signed(event))).toEqual({
      kind: "ignored",
      eventId: event.id,
      type: "batch.completed",
    });
    expect(await r.events.get(event.id)).toBeNull();
  });

  it("a refused body is quarantined with its endpoint (x-stepwatch-endpoint: openai): not JSON, not UTF-8, not an event", async () => {
    const r = await rig();
    const cases = [
      { body: "{not json", status: 400, code: "invalid_json" },
      { body: new Uint8Array([0x7b, 0xff, 0x7d]), status: 400, code: "invalid_json" },
      { body: { id: "evt_bad", type: "response.failed", data: {} }, status: 422, code: "invalid_payload" },
    ];
    for (const c of cases) {
      const request = signed(c.body);
      const answer = await r.ingest.ingest(request);
      if (answer.kind !== "refused") throw new Error(`not refused: ${answer.kind}`);
      expect(answer.refusal).toMatchObject({ status: c.status, code: c.code });
      const kept = await r.quarantine.get(answer.quarantineId);
      expect(kept?.headers).toEqual({ ...request.headers, "x-stepwatch-endpoint": "openai" });
      expect(kept?.webhookId).toBe(request.webhookId);
      expect(kept?.refusal).toMatchObject({ status: c.status, code: c.code });
      expect(await r.quarantine.body(answer.quarantineId)).toEqual(request.body);
    }
    expect(api.requests.filter((q) => q.path.includes("evt_bad"))).toEqual([]);
  });
});

describe("metrics", () => {
  it("counts each event by type and outcome, and each fetch by kind, outcome and duration", async () => {
    const r = await rig({ fetchMs: 250 });
    const event = thin("response.completed", serve());
    await ingested(r, event);
    await r.ingest.ingest(signed(event));
    await r.ingest.ingest(signed(thin("batch.completed", "batch_1")));
    await r.ingest.ingest(signed("{"));
    await r.ingest.ingest(signed({ id: "evt_bad" }));
    api.failNext(1, { status: 503 });
    await ingested(r, thin("response.failed", serve()));
    await ingested(r, thin("response.failed", uid("resp_gone")));
    api.unauthorized = true;
    const session = { ...idleSession, id: uid("sess") };
    api.sessions.set(session.id, session);
    await ingested(r, thin("agent.session.idle", session.id));
    expect(r.counted.events).toEqual([
      "response.completed accepted",
      "response.completed duplicate",
      "batch.completed ignored",
      "unknown invalid_json",
      "unknown invalid_payload",
      "response.failed accepted",
      "response.failed accepted",
      "agent.session.idle accepted",
    ]);
    expect(r.counted.hydrations).toEqual([
      "response hydrated 0.25",
      "response retryable 0.25",
      "response not_found 0.25",
      "agent_session unauthorized 0.25",
    ]);
  });
});

describe("retry delays (an injected clock and jitter)", () => {
  it("the first retry waits 1 s ±10% (jitter 0 → 0.9 s, ½ → 1 s, near 1 → 1.1 s)", async () => {
    for (const [random, delay] of [
      [0, 900],
      [0.5, 1_000],
      [0.999, 1_100],
    ] as const) {
      const r = await rig({ random: () => random });
      const event = thin("response.completed", serve());
      api.failNext(1, { status: 503 });
      await ingested(r, event);
      expect(await r.events.get(event.id)).toMatchObject({
        hydration: "pending",
        attempts: 1,
        nextAttemptMs: r.clock.now + delay,
        lastError: expect.stringContaining("HTTP 503"),
        hydratedAtMs: null,
        version: 2,
      });
    }
  });

  it("each retry doubles the wait, up to 5 minutes at most, jitter included", async () => {
    const r = await rig({ sweeps: true, random: () => 0.999 });
    const subject = serve();
    const ids = await Promise.all(Array.from({ length: 11 }, (_, n) => seedPending(r, subject, n)));
    api.failNext(11, { status: 500 });
    const report = await r.ingest.sweep(r.clock.now + 60_000);
    expect(report).toEqual({ attempts: 11, hydrated: 0, retrying: 11, failed: 0, exhausted: false });
    const stored = await r.events.getMany(ids);
    expect(stored.map((e) => (e.nextAttemptMs ?? 0) - r.clock.now)).toEqual(
      ids.map((_, n) => Math.min(300_000, Math.round(1_000 * 2 ** n * 1.0998))),
    );
    expect(stored.map((e) => e.attempts)).toEqual(ids.map((_, n) => n + 1));
  });

  it("Retry-After is honoured when longer than the backoff, up to the 5 minute cap; a shorter one changes nothing", async () => {
    const r = await rig({ random: () => 0.5 });
    const waits: number[] = [];
    for (const retryAfter of ["30", "3600", "0"]) {
      const event = thin("response.completed", serve());
      api.failNext(1, { status: 429, retryAfter });
      await ingested(r, event);
      waits.push(((await r.events.get(event.id))?.nextAttemptMs ?? 0) - r.clock.now);
    }
    expect(waits).toEqual([30_000, 300_000, 1_000]);
  });

  it("a refused key (401/403) waits 60 s whatever the attempt and jitter; 404 is final", async () => {
    const r = await rig({ sweeps: true, random: () => 0.999 });
    api.unauthorized = true;
    const event = thin("response.completed", serve());
    await ingested(r, event);
    expect(await r.events.get(event.id)).toMatchObject({
      hydration: "pending",
      nextAttemptMs: r.clock.now + 60_000,
      lastError: expect.stringContaining("HTTP 401"),
    });
    const late = await seedPending(r, "resp_any", 7);
    api.unauthorized = false;
    api.failNext(1, { status: 403 });
    await r.ingest.sweep(r.clock.now + 60_000);
    expect((await r.events.get(late))?.nextAttemptMs).toBe(r.clock.now + 60_000);

    const gone = thin("response.failed", uid("resp_gone"));
    await ingested(r, gone);
    expect(await r.events.get(gone.id)).toMatchObject({
      hydration: "not_found",
      attempts: 1,
      nextAttemptMs: null,
      lastError: expect.stringContaining("HTTP 404"),
    });
    expect(await r.ingest.sweep(r.clock.now + 60_000)).toEqual({
      attempts: 0,
      hydrated: 0,
      retrying: 0,
      failed: 0,
      exhausted: false,
    });
  });
});

describe("sweep", () => {
  it("hydrates only what is due (a retry not yet due waits), and counts what it did", async () => {
    const r = await rig({ sweeps: true, random: () => 0.5 });
    const ok = serve();
    const due = await seedPending(r, ok, 1);
    const missing = await seedPending(r, uid("resp_missing"), 0);
    const waiting = thin("response.completed", serve());
    api.failNext(1, { status: 502 });
    await ingested(r, waiting);
    expect(await r.ingest.sweep(r.clock.now + 60_000)).toEqual({
      attempts: 2,
      hydrated: 1,
      retrying: 0,
      failed: 1,
      exhausted: false,
    });
    expect((await r.events.get(due))?.hydration).toBe("hydrated");
    expect((await r.events.get(missing))?.hydration).toBe("not_found");
    expect((await r.events.get(waiting.id))?.attempts).toBe(1);
    // Its retry is due in 1 s (jitter ½), but the API answered again meanwhile (the sweep's
    // fetches after the 502): the next sweep fetches it at once rather than leave a recovered API
    // idle; the one after finds nothing left.
    r.clock.now += 10;
    expect(await r.ingest.sweep(r.clock.now + 60_000)).toEqual({
      attempts: 1,
      hydrated: 1,
      retrying: 0,
      failed: 0,
      exhausted: false,
    });
    expect((await r.ingest.sweep(r.clock.now + 60_000)).attempts).toBe(0);
  });

  it("drains a shard page after page in one sweep, and says when it stopped with work left", async () => {
    const r = await rig({ sweeps: true });
    const subject = serve();
    // More than a page (50) in one shard.
    await Promise.all(Array.from({ length: 56 }, () => seedPending(r, subject, 0, 3)));
    const report = await r.ingest.sweep(r.clock.now + 60_000);
    expect(report).toMatchObject({ attempts: 56, hydrated: 56, exhausted: false });
    const capped = await rig({ sweeps: true, maxAttemptsPerSweep: 5 });
    await Promise.all(Array.from({ length: 8 }, () => seedPending(capped, subject, 0, 2)));
    expect(await capped.ingest.sweep(capped.clock.now + 60_000)).toMatchObject({
      attempts: 5,
      exhausted: true,
    });
  });

  it("past its deadline a sweep starts nothing", async () => {
    const r = await rig({ sweeps: true });
    await seedPending(r, serve(), 0);
    expect((await r.ingest.sweep(r.clock.now)).attempts).toBe(0);
    expect((await r.ingest.sweep(r.clock.now - 1)).attempts).toBe(0);
    expect((await r.ingest.sweep(r.clock.now + 1)).attempts).toBe(1);
  });

  it("takes the shard's lease: a second sweep of the same shard at the same time attempts nothing; the lease is released after", async () => {
    const r = await rig({ sweeps: true });
    const other = new OpenAiIngest({
      events: r.events,
      responses: r.responses,
      quarantine: r.quarantine,
      leases: r.leases,
      api: new OpenAiApiClient({ apiKey: API_KEY, baseUrl: api.url, timeoutMs: 5_000 }),
      logger: createLogger("error", () => undefined),
      quarantineDays: 7,
      concurrency: 8,
      timeoutMs: 5_000,
      nowMs: () => r.clock.now,
    });
    const subject = serve();
    const ids = await Promise.all(Array.from({ length: 4 }, () => seedPending(r, subject, 0, 5)));
    const before = api.count(`/v1/responses/${subject}`);
    api.latencyMs = 300;
    const reports = await Promise.all([
      r.ingest.sweep(r.clock.now + 60_000),
      other.sweep(r.clock.now + 60_000),
    ]);
    expect(reports.map((x) => x.attempts).sort()).toEqual([0, 4]);
    expect(api.count(`/v1/responses/${subject}`) - before).toBe(4);
    expect((await r.events.getMany(ids)).map((e) => e.hydration)).toEqual(ids.map(() => "hydrated"));
    expect(
      await r.leases.acquireLease(hydrationLeaseKey(5), r.clock.now + 1_000, r.clock.now),
    ).not.toBeNull();
  });

  it("a sweep reaching its deadline after its read starts none of what it read, and releases the lease", async () => {
    const hold: { clock?: { now: number }; deadline: number } = { deadline: 0 };
    const r = await rig({
      sweeps: true,
      // The clock reaches the deadline while the sweep reads its events.
      events: (real) =>
        overriding(real, {
          getMany: async (ids: readonly string[]) => {
            const got = await real.getMany(ids);
            if (hold.clock) hold.clock.now = hold.deadline;
            return got;
          },
        }),
    });
    const id = await seedPending(r, serve(), 0, 1);
    hold.deadline = r.clock.now + 60_000;
    hold.clock = r.clock;
    expect(await r.ingest.sweep(hold.deadline)).toEqual({
      attempts: 0,
      hydrated: 0,
      retrying: 0,
      failed: 0,
      exhausted: true,
    });
    expect(await r.events.get(id)).toMatchObject({ hydration: "pending", attempts: 0 });
    expect(await r.leases.acquireLease(hydrationLeaseKey(1), r.clock.now + 1, r.clock.now)).not.toBeNull();
  });

  it("reads consistently under the lease: what the index offers that is no longer pending or not yet due is not attempted; only shards with due work are leased", async () => {
    const leased: Array<{ key: string; untilMs: number }> = [];
    let all: string[] = [];
    const r = await rig({
      sweeps: true,
      // An index that lags: it offers every event of the shard, due or not.
      events: (real) =>
        overriding(real, {
          findDue: async (shard: number, nowMs: number, limit: number) =>
            shard === 2
              ? all.map((id) => ({ id, dueMs: nowMs }))
              : (await real.findDue(shard, nowMs, limit)).filter((d) => !all.includes(d.id)),
        }),
      leases: (real) =>
        overriding(real, {
          acquireLease: (key: string, untilMs: number, nowMs: number) => {
            leased.push({ key, untilMs });
            return real.acquireLease(key, untilMs, nowMs);
          },
        }),
    });
    const subject = serve();
    const due = await seedPending(r, subject, 0, 2);
    const done = await seedPending(r, subject, 0, 2);
    await r.events.replace({
      ...((await r.events.get(done)) as OpenAiEventRecord),
      hydration: "hydrated",
      hydratedAtMs: r.clock.now,
      nextAttemptMs: null,
      version: 2,
    });
    const later = await seedPending(r, subject, 0, 2);
    await r.events.replace({
      ...((await r.events.get(later)) as OpenAiEventRecord),
      nextAttemptMs: r.clock.now + 1,
      version: 2,
    });
    all = [due, done, later];
    const deadline = r.clock.now + 30_000;
    expect(await r.ingest.sweep(deadline)).toEqual({
      attempts: 1,
      hydrated: 1,
      retrying: 0,
      failed: 0,
      exhausted: false,
    });
    expect(await r.events.get(later)).toMatchObject({ hydration: "pending", attempts: 0 });
    // The lease outlasts the sweep's deadline by a fetch's time-out and a margin.
    expect(leased).toEqual([{ key: hydrationLeaseKey(2), untilMs: deadline + 5_000 + 5_000 }]);
  });

  it("without an API key nothing is fetched: events are recorded and wait; the source is unconfigured", async () => {
    const r = await rig({ sweeps: true, withApi: false });
    expect(r.ingest.source).toEqual({
      name: "openai",
      state: "unconfigured",
      lastSuccessAtMs: null,
      lastFailure: null,
    });
    const subject = serve();
    const event = thin("response.completed", subject);
    await ingested(r, event);
    expect(await r.ingest.sweep(r.clock.now + 60_000)).toEqual({
      attempts: 0,
      hydrated: 0,
      retrying: 0,
      failed: 0,
      exhausted: false,
    });
    expect(api.count(`/v1/responses/${subject}`)).toBe(0);
    expect(await r.events.get(event.id)).toMatchObject({ hydration: "pending", attempts: 0, version: 1 });
    expect(await r.events.backlog()).toEqual({ pending: 1, oldestReceivedMs: r.clock.now });
  });

  it("never more fetches in flight than OPENAI_HYDRATION_CONCURRENCY, for first hydrations and sweeps alike", async () => {
    const r = await rig({ sweeps: true, concurrency: 3 });
    api.latencyMs = 60;
    const answers = await Promise.all(
      Array.from({ length: 9 }, () => r.ingest.ingest(signed(thin("response.completed", serve())))),
    );
    await Promise.all(answers.map((a) => (a.kind === "recorded" ? a.hydration : null)));
    expect(api.maxInFlight).toBe(3);
    api.maxInFlight = 0;
    const subject = serve();
    for (let shard = 0; shard < 3; shard++) {
      await Promise.all(Array.from({ length: 3 }, () => seedPending(r, subject, 0, shard)));
    }
    expect((await r.ingest.sweep(r.clock.now + 60_000)).hydrated).toBe(9);
    expect(api.maxInFlight).toBeLessThanOrEqual(3);
    expect(api.inFlight).toBe(0);
  });
});

describe("the source's state", () => {
  it("moves unknown → failing → unauthorized → ok, one log line per change however many events meet it; 404s say nothing of it", async () => {
    const r = await rig();
    expect(r.ingest.source).toEqual({
      name: "openai",
      state: "unknown",
      lastSuccessAtMs: null,
      lastFailure: null,
    });
    const start = r.clock.now;
    api.failNext(3, { status: 503, message: "overloaded" });
    for (let i = 0; i < 3; i++) await ingested(r, thin("response.completed", serve()));
    expect(r.ingest.source).toMatchObject({
      state: "failing",
      lastSuccessAtMs: null,
      lastFailure: { atMs: start, error: expect.stringContaining("HTTP 503: overloaded") },
    });
    expect(messages(r).filter((m) => m.startsWith("OpenAI API failing"))).toHaveLength(1);

    r.clock.now += 10;
    api.unauthorized = true;
    for (let i = 0; i < 2; i++) await ingested(r, thin("response.completed", serve()));
    expect(r.ingest.source).toMatchObject({
      state: "unauthorized",
      lastFailure: { atMs: start + 10, error: expect.stringContaining("HTTP 401") },
    });
    const refused = r.lines.filter((l) => String(l.msg).startsWith("OpenAI refused OPENAI_API_KEY"));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ level: "warn", source: "openai" });
    expect(JSON.stringify(r.lines)).not.toContain(API_KEY);

    r.clock.now += 10;
    api.unauthorized = false;
    for (let i = 0; i < 2; i++) await ingested(r, thin("response.completed", serve()));
    expect(r.ingest.source).toMatchObject({ state: "ok", lastSuccessAtMs: start + 20 });
    expect(messages(r).filter((m) => m === "OpenAI API reachable")).toHaveLength(1);
    // A 404 after: the API answered, so it is still ok; the last failure stays what it was.
    r.clock.now += 10;
    await ingested(r, thin("response.completed", uid("resp_gone")));
    expect(r.ingest.source).toMatchObject({
      state: "ok",
      lastSuccessAtMs: start + 20,
      lastFailure: { atMs: start + 10 },
    });
    // Failing again after ok is a change again.
    api.outage = "destroy";
    await ingested(r, thin("response.completed", serve()));
    expect(r.ingest.source.state).toBe("failing");
    expect(messages(r).filter((m) => m.startsWith("OpenAI API failing"))).toHaveLength(2);
    // Each attempt is one hydration line (not a state change).
    expect(messages(r).filter((m) => m === "hydration")).toHaveLength(9);
  });
});

describe("agent sessions", () => {
  const sessionEvent = (word: string, session: string) => thin(`agent.session.${word}`, session);

  it("a session's event is hydrated with the session kept on it; notified only for action_required, failed and idle, once per event id", async () => {
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const app = await createTestApp(store, {
      OPENAI_WEBHOOK_SECRET: secret,
      OPENAI_API_KEY: API_KEY,
      OPENAI_BASE_URL: api.url,
      NOTIFY_SINKS: JSON.stringify([
        {
          name: "hook",
          type: "webhook",
          url: hook.url,
          secret,
          on: ["agent.session.action_required", "agent.session.failed", "agent.session.idle"],
        },
      ]),
    });
    const ingest = app.openai?.ingest;
    if (!ingest) throw new Error("no OpenAI ingest");
    const served = (fixture: { id: string }) => {
      const session = { ...fixture, id: uid(fixture.id) };
      api.sessions.set(session.id, session);
      return session;
    };
    const needsCall = served(functionCallSession);
    const needsApproval = served(computerUseSession);
    const idle = served(idleSession);
    const failed = served(failedSession);
    const events = [
      sessionEvent("action_required", needsCall.id),
      sessionEvent("action_required", needsCall.id),
      sessionEvent("action_required", needsApproval.id),
      sessionEvent("idle", idle.id),
      sessionEvent("failed", failed.id),
      sessionEvent("created", idle.id),
      sessionEvent("in_progress", idle.id),
    ];
    for (const event of events) {
      const answer = await ingest.ingest(signed(event));
      if (answer.kind !== "recorded") throw new Error(answer.kind);
      await answer.hydration;
    }
    // A duplicate of the first: no second notification.
    expect((await ingest.ingest(signed(events[0]))).kind).toBe("recorded");
    await app.drain();
    const sessionIds = new Set([needsCall.id, needsApproval.id, idle.id, failed.id]);
    const received = () =>
      hook.received.filter((q) => {
        const data = (JSON.parse(q.body) as { data?: { id?: string } }).data;
        return sessionIds.has(String(data?.id));
      });
    await eventually(async () => (received().length >= 5 ? true : undefined));
    await app.drain();
    const bodies = received().map((q) => JSON.parse(q.body) as { type: string; data: { id: string } });
    expect(bodies.map((b) => `${b.type} ${b.data.id}`).sort()).toEqual(
      [
        `agent.session.action_required ${needsCall.id}`,
        `agent.session.action_required ${needsCall.id}`,
        `agent.session.action_required ${needsApproval.id}`,
        `agent.session.failed ${failed.id}`,
        `agent.session.idle ${idle.id}`,
      ].sort(),
    );
    const webhookIds = received().map((q) => q.headers["webhook-id"]);
    expect(new Set(webhookIds).size).toBe(5);
    // The two notifications of one session carry their own event ids.
    const ofCall = received().filter((q) => q.body.includes(needsCall.id));
    expect(ofCall.map((q) => q.headers["webhook-id"]).sort()).toEqual(
      [events[0], events[1]].map((e) => `msg_${e?.id}_agent.session.action_required_hook`).sort(),
    );
    expect(bodies.find((b) => b.data.id === needsApproval.id)?.data).toEqual(needsApproval);
    for (const event of events) {
      expect(await app.openai?.events.get(event.id)).toMatchObject({
        kind: "agent_session",
        hydration: "hydrated",
        attempts: 1,
      });
      expect(await app.openai?.events.snapshot(event.id)).toEqual(api.sessions.get(event.data.id));
    }
  });

  it("a response's event is settled before its notification goes: a receiver reading it back finds it hydrated", async () => {
    const app = await createTestApp(store, {
      OPENAI_WEBHOOK_SECRET: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      OPENAI_API_KEY: API_KEY,
      OPENAI_BASE_URL: api.url,
      NOTIFY_SINKS: JSON.stringify([
        { name: "slow", type: "webhook", url: hook.url, secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" },
      ]),
    });
    const subject = serve();
    const event = thin("response.completed", subject);
    // The receiver takes its time to answer: the notification is in flight meanwhile.
    hook.respond = (request) => (request.body.includes(subject) ? { status: 200, delayMs: 400 } : undefined);
    try {
      const answer = await app.openai?.ingest.ingest(signed(event));
      expect(answer).toMatchObject({ outcome: "accepted" });
      await eventually(async () => (hook.received.some((q) => q.body.includes(subject)) ? true : undefined));
      expect(await app.openai?.events.get(event.id)).toMatchObject({ hydration: "hydrated", attempts: 1 });
      await app.drain();
    } finally {
      hook.respond = null;
    }
  });
});
