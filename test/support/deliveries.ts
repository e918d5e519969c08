import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import * as v from "valibot";
import { afterAll, beforeAll } from "vitest";
import { type DeliveryIntent, newDelivery } from "../../src/domain/delivery.js";
import { RunStepSchema } from "../../src/domain/run-step-schema.js";
import type { SweepReport } from "../../src/notify/notifier.js";
import { type Item, keyOf, shardOf } from "../../src/store/item-codec.js";
import { TABLE_SCHEMA } from "../../src/store/table-schema.js";
import { mapConcurrent } from "./concurrency.js";
import { makeStep } from "./run-steps.js";
import { type ReceivedRequest, type SinkServer, startSinkServer } from "./sink-server.js";
import { createTestApp, TEST_TOKEN, type TestApp } from "./test-app.js";
import { startTestStore, type TestStore } from "./test-store.js";

/** A delivery as the operator API shows it. */
export interface DeliveryJson {
  id: string;
  step_id: string;
  run_id: string;
  sink: string;
  event: string;
  state: "pending" | "parked" | "delivered" | "dead";
  attempts: number;
  last_error: string | null;
  next_attempt_at: number | null;
  created_at: number;
  recent_attempts: Array<{
    attempt: number;
    at: number;
    status: number | null;
    latency_ms: number;
    error: string | null;
  }>;
}

/** A sink as the operator API shows it. */
export interface SinkJson {
  name: string;
  type: string;
  state: "healthy" | "failing" | "disabled";
  consecutive_failures: number;
  last_success: { at: number; status: number | null } | null;
  last_failure: { at: number; status: number | null; error: string } | null;
  next_probe_at: number | null;
  disabled_reason: string | null;
  pending: number;
  oldest_pending_age_s: number | null;
}

/** A controllable clock for `createTestApp(..., { nowMs })`. */
export interface TestClock {
  now: number;
  readonly nowMs: () => number;
  advance(ms: number): number;
}

export function testClock(start = Date.now()): TestClock {
  const clock: TestClock = {
    now: start,
    nowMs: () => clock.now,
    advance(ms) {
      clock.now += ms;
      return clock.now;
    },
  };
  return clock;
}

/** Calls the operator API with the test token. */
export function api(app: TestApp, method: "GET" | "POST", path: string, body?: unknown): Promise<Response> {
  return Promise.resolve(
    app.app.request(path, {
      method,
      headers: {
        authorization: `Bearer ${TEST_TOKEN}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
  );
}

/** The delivery of one step to one sink, as GET /v1/run-steps/{id} shows it. */
export async function deliveryOf(app: TestApp, stepId: string, sink: string): Promise<DeliveryJson> {
  const response = await api(app, "GET", `/v1/run-steps/${encodeURIComponent(stepId)}`);
  if (response.status !== 200) throw new Error(`GET step ${stepId}: ${response.status}`);
  const body = (await response.json()) as { deliveries: DeliveryJson[] };
  const found = body.deliveries.find((d) => d.sink === sink);
  if (!found) throw new Error(`step ${stepId} owes nothing to ${sink}`);
  return found;
}

/** GET /v1/sinks/{name}. */
export async function sinkOf(app: TestApp, name: string): Promise<SinkJson> {
  const response = await api(app, "GET", `/v1/sinks/${name}`);
  if (response.status !== 200) throw new Error(`GET sink ${name}: ${response.status}`);
  return (await response.json()) as SinkJson;
}

/** A webhook sink entry of NOTIFY_SINKS. */
export function webhookSink(name: string, url: string, secret: string) {
  return { name, type: "webhook", url, secret };
}

/** `count` distinct step ids (`<prefix>_<n>`) whose deliveries all land in one queue shard. */
export function idsInShard(prefix: string, shard: number, count: number): string[] {
  const ids: string[] = [];
  for (let i = 0; ids.length < count && i < count * TABLE_SCHEMA.queueShards * 20; i++) {
    const id = `${prefix}_${i}`;
    if (shardOf(id, TABLE_SCHEMA.queueShards) === shard) ids.push(id);
  }
  if (ids.length < count) throw new Error("not enough ids in that shard");
  return ids;
}

/** The queue shard a step's deliveries are in. */
export const queueShardOf = (stepId: string) => shardOf(stepId, TABLE_SCHEMA.queueShards);

/**
 * Applies completed steps straight to the store, owing `sinks` (the outbox entry is written, as the
 * ingest path writes it), without any notifier: as if the instance died right after the apply.
 */
export async function applyWithoutNotifier(
  app: TestApp,
  ids: readonly string[],
  sinks: readonly string[],
  receivedAtS = Math.floor(Date.now() / 1000),
): Promise<void> {
  const intents: DeliveryIntent[] = sinks.map((sink) => ({ sink, event: "run_step.completed" }));
  await mapConcurrent(ids, 16, async (id) => {
    const document = makeStep({ id, status: "completed" });
    const { outcome } = await app.store.apply({
      step: v.parse(RunStepSchema, document),
      document,
      sentAt: receivedAtS,
      receivedAt: receivedAtS,
      intents,
    });
    if (outcome !== "created") throw new Error(`apply ${id}: ${outcome}`);
  });
}

/** Stored completed steps with a pending delivery to `sink` due at `dueMs`, as a sweeper finds them. */
export async function seedPending(
  app: TestApp,
  ids: readonly string[],
  sink: string,
  dueMs = Date.now(),
): Promise<void> {
  await applyWithoutNotifier(app, ids, [sink], Math.floor(dueMs / 1000));
  await mapConcurrent(ids, 16, async (id) => {
    const created = await app.deliveries.create(
      newDelivery(
        { sink, event: "run_step.completed" },
        { kind: "run_step", id: id, runId: "run_abc123" },
        dueMs,
      ),
    );
    if (!created) throw new Error(`delivery ${id} exists`);
  });
}

/** Stored completed steps whose delivery to `sink` died at `diedMs` after one 400. */
export async function seedDead(
  app: TestApp,
  ids: readonly string[],
  sink: string,
  diedMs: number,
): Promise<void> {
  await applyWithoutNotifier(app, ids, [sink], Math.floor(diedMs / 1000));
  await mapConcurrent(ids, 16, async (id) => {
    const created = await app.deliveries.create({
      ...newDelivery(
        { sink, event: "run_step.completed" },
        { kind: "run_step", id: id, runId: "run_abc123" },
        diedMs,
      ),
      state: "dead",
      attempts: 1,
      lastError: "HTTP 400",
      nextAttemptMs: null,
      log: [{ attempt: 1, at: diedMs, status: 400, latencyMs: 1, error: "HTTP 400" }],
    });
    if (!created) throw new Error(`delivery ${id} exists`);
  });
}

/** The step id a webhook delivery carries. */
export const stepIdOf = (request: ReceivedRequest) =>
  String((JSON.parse(request.body) as { data: { id: string } }).data.id);

/** How many requests carried each step id. */
export function countsByStep(requests: readonly ReceivedRequest[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const request of requests) {
    const id = stepIdOf(request);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** The raw item with this key, read consistently. */
export async function rawItem(store: TestStore, key: string): Promise<Item | undefined> {
  const result = await store.client.send(
    new GetItemCommand({ TableName: store.tableName, Key: keyOf(key), ConsistentRead: true }),
  );
  return result.Item;
}

/** Headers standardwebhooks' `verify` reads. */
export function signatureHeaders(request: ReceivedRequest): Record<string, string> {
  return {
    "webhook-id": String(request.headers["webhook-id"]),
    "webhook-timestamp": String(request.headers["webhook-timestamp"]),
    "webhook-signature": String(request.headers["webhook-signature"]),
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A test file's real dynalite, loopback sinks and apps: started as asked, all stopped after the file. */
export interface DeliveryFixture {
  /** The file's store (available once its tests run). */
  readonly store: TestStore;
  /** A new loopback sink server. */
  sink(): Promise<SinkServer>;
  /** A new app on the file's store. */
  app(env?: Record<string, string>, options?: Parameters<typeof createTestApp>[2]): Promise<TestApp>;
}

/** Registers the file's set-up and tear-down; call at the top level of a test file. */
export function deliveryFixture(): DeliveryFixture {
  let store: TestStore | undefined;
  const servers: SinkServer[] = [];
  const apps: TestApp[] = [];
  beforeAll(async () => {
    store = await startTestStore();
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.drain()));
    await Promise.all(servers.map((server) => server.close()));
    await store?.close();
  });
  const fixture: DeliveryFixture = {
    get store() {
      if (!store) throw new Error("the store starts before the file's tests");
      return store;
    },
    async sink() {
      const server = await startSinkServer();
      servers.push(server);
      return server;
    },
    async app(env = {}, options = {}) {
      const app = await createTestApp(fixture.store, env, options);
      apps.push(app);
      return app;
    },
  };
  return fixture;
}

/** Sends a completed step, checks it was accepted, and waits for its prompt deliveries to settle. */
export async function deliver(app: TestApp, id: string, timestampS?: number): Promise<void> {
  const response = await app.send(
    makeStep({ id, status: "completed" }),
    timestampS === undefined ? {} : { timestamp: timestampS },
  );
  if (response.status !== 200) throw new Error(`sending ${id}: ${response.status}`);
  await app.drain();
}

/** A sweep's report when it found nothing to do; tests spread it and set what they expect. */
export const NO_WORK: SweepReport = {
  recovered: 0,
  attempts: 0,
  delivered: 0,
  retrying: 0,
  dead: 0,
  parked: 0,
  probes: 0,
  durationMs: 0,
  exhausted: false,
};
