import { type DynamoDBClient, type GetItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SinkHealth, unknownSinkHealth } from "../src/domain/sink-health.js";
import { DynamoSinkStore } from "../src/store/dynamo-sink-store.js";
import {
  type ClientOptions,
  type Sent,
  type StoreWithOutage,
  startStoreWithOutage,
} from "./support/store-with-outage.js";
import type { TestStore } from "./support/test-store.js";

// The sink health store on its own against real dynalite: README's "Sink health" (healthy → failing
// after retryable failures in a row across instances, disabled until an operator enables it, a
// success while disabled still recorded) and what each change costs in DynamoDB calls.

let store: TestStore;
// It and a stopped twin: calls sent to the twin meet a real refused connection.
let stores: StoreWithOutage;
let seq = 0;
const sinkName = (what: string) => `${what}_${seq++}`;

beforeAll(async () => {
  stores = await startStoreWithOutage("sink-store");
  store = stores.store;
});
afterAll(() => stores.close());

// A real client that notes every call and may hold one (`before`) or send it to the stopped store.
const clientWith = (options: ClientOptions = {}) => stores.clientWith(options);

const healthOn = (client: DynamoDBClient = store.client) =>
  new DynamoSinkStore({ client, tableName: store.tableName });

const retryable = (atMs: number, status: number | null = 503) => ({
  status,
  error: status === null ? "connect ECONNREFUSED 127.0.0.1:9" : `HTTP ${status}`,
  atMs,
});
const counting = (failingAfter: number, nextProbeAtMs = 0) => ({
  failingAfter,
  nextProbeAtMs,
  probe: false,
  counts: true,
});

// The calls made, by kind: what README's write budget counts.
const calls = (sent: Sent[]) => sent.map((c) => c.constructor.name.replace("Command", ""));

describe("sink store: what is recorded reads back", () => {
  it("a sink nothing was recorded for is healthy, with no history", async () => {
    const name = sinkName("never");
    expect(await healthOn().get(name)).toEqual(unknownSinkHealth(name));
  });

  it("reads it strongly consistently, so a change through another instance is seen at once", async () => {
    const sent: Sent[] = [];
    await healthOn(clientWith({ sent })).get(sinkName("consistent"));
    expect(calls(sent)).toEqual(["GetItem"]);
    expect((sent[0] as GetItemCommand).input.ConsistentRead).toBe(true);
  });

  it("a success or a failure without an HTTP status (a console sink, a refused connection) keeps status null", async () => {
    const name = sinkName("nostatus");
    const ok = await healthOn().recordSuccess(name, null, 1_000);
    expect(ok).toMatchObject({ state: "healthy", lastSuccess: { atMs: 1_000, status: null }, version: 1 });
    const failed = await healthOn().recordFailure(name, retryable(2_000, null), counting(5));
    expect(failed).toMatchObject({
      state: "healthy",
      consecutiveFailures: 1,
      lastSuccess: { atMs: 1_000, status: null },
      lastFailure: { atMs: 2_000, status: null, error: "connect ECONNREFUSED 127.0.0.1:9" },
      version: 2,
    });
    expect(await healthOn().get(name)).toEqual(failed);
  });

  it("a success with a status keeps it, and resets the failures in a row", async () => {
    const name = sinkName("status");
    await healthOn().recordFailure(name, retryable(1_000, 502), counting(5));
    const ok = await healthOn().recordSuccess(name, 204, 2_000);
    expect(ok).toMatchObject({
      state: "healthy",
      consecutiveFailures: 0,
      lastSuccess: { atMs: 2_000, status: 204 },
      lastFailure: { atMs: 1_000, status: 502, error: "HTTP 502" },
      version: 2,
    });
    expect(await healthOn().get(name)).toEqual(ok);
  });
});

describe("sink store: healthy → failing", () => {
  it("turns failing at failingAfter retryable failures in a row, with its first probe time, even after earlier successes", async () => {
    const name = sinkName("failing");
    await healthOn().recordSuccess(name, 200, 1_000);
    let health: SinkHealth | undefined;
    for (let i = 1; i < 3; i++) {
      health = await healthOn().recordFailure(name, retryable(1_000 + i), counting(3, 9_000));
      expect(health).toMatchObject({ state: "healthy", consecutiveFailures: i, nextProbeAtMs: null });
    }
    health = await healthOn().recordFailure(name, retryable(1_003), counting(3, 9_000));
    expect(health).toMatchObject({
      state: "failing",
      consecutiveFailures: 3,
      nextProbeAtMs: 9_000,
      probeLevel: 0,
      lastSuccess: { atMs: 1_000, status: 200 },
    });
    expect(await healthOn().get(name)).toEqual(health);
  });

  it("a success in between starts the count again: failures must be in a row", async () => {
    const name = sinkName("interrupted");
    await healthOn().recordFailure(name, retryable(1_000), counting(2));
    await healthOn().recordSuccess(name, 200, 1_001);
    const health = await healthOn().recordFailure(name, retryable(1_002), counting(2));
    expect(health).toMatchObject({ state: "healthy", consecutiveFailures: 1 });
  });

  it("two instances crossing the threshold at once: it turns failing once, and both report it failing", async () => {
    const name = sinkName("race");
    await healthOn().recordFailure(name, retryable(1_000), counting(2, 7_000));
    // Each instance's failure is counted (2, then 3) before either turns the sink failing: their
    // writes that turn it are held until both are there.
    let arrived = 0;
    let release = () => {};
    const bothThere = new Promise<void>((resolve) => {
      release = resolve;
    });
    const timer = setTimeout(release, 2_000);
    const before = async (command: Sent) => {
      if (!(command instanceof UpdateItemCommand)) return;
      if (!String(command.input.UpdateExpression).includes(":failing")) return;
      if (++arrived === 2) release();
      await bothThere;
    };
    const [a, b] = await Promise.all([
      healthOn(clientWith({ before })).recordFailure(name, retryable(1_001), counting(2, 7_000)),
      healthOn(clientWith({ before })).recordFailure(name, retryable(1_002), counting(2, 7_000)),
    ]).finally(() => clearTimeout(timer));
    expect(arrived).toBe(2);
    const stored = await healthOn().get(name);
    expect(stored).toMatchObject({ state: "failing", consecutiveFailures: 3, nextProbeAtMs: 7_000 });
    // Three failures and one turn to failing: four writes, not five.
    expect(stored.version).toBe(4);
    expect(a).toEqual(stored);
    expect(b).toEqual(stored);
  });

  it("costs one write per failure, and a second only for the one that crosses the threshold", async () => {
    const name = sinkName("budget");
    const sent: Sent[] = [];
    const health = healthOn(clientWith({ sent }));
    await health.recordFailure(name, retryable(1_000), counting(2));
    expect(calls(sent)).toEqual(["UpdateItem"]);
    sent.length = 0;
    expect((await health.recordFailure(name, retryable(1_001), counting(2))).state).toBe("failing");
    expect(calls(sent)).toEqual(["UpdateItem", "UpdateItem"]);
    // Already failing: its failures are news, and nothing more is written or read.
    sent.length = 0;
    expect(await health.recordFailure(name, retryable(1_002), counting(2))).toMatchObject({
      state: "failing",
      consecutiveFailures: 3,
    });
    expect(calls(sent)).toEqual(["UpdateItem"]);
  });

  it("costs one write per success of a healthy sink", async () => {
    const name = sinkName("success-budget");
    const sent: Sent[] = [];
    const first = await healthOn(clientWith({ sent })).recordSuccess(name, 200, 1_000);
    const second = await healthOn(clientWith({ sent })).recordSuccess(name, 200, 2_000);
    expect(calls(sent)).toEqual(["UpdateItem", "UpdateItem"]);
    expect([first.version, second.version]).toEqual([1, 2]);
  });
});

describe("sink store: disabled until an operator enables it", () => {
  it("a success while disabled is recorded and the sink stays disabled, its reason kept", async () => {
    const name = sinkName("disabled");
    await healthOn().recordFailure(name, retryable(1_000), counting(5));
    const off = await healthOn().disable(name, "the endpoint answered HTTP 410");
    expect(off).toMatchObject({
      state: "disabled",
      disabledReason: "the endpoint answered HTTP 410",
      version: 2,
    });
    const ok = await healthOn().recordSuccess(name, 200, 2_000);
    expect(ok).toEqual({ ...off, lastSuccess: { atMs: 2_000, status: 200 }, version: 3 });
    expect(await healthOn().get(name)).toEqual(ok);
  });

  it("failures of a disabled sink are recorded without turning it failing", async () => {
    const name = sinkName("disabled-failures");
    await healthOn().disable(name, "disabled by an operator");
    const sent: Sent[] = [];
    const health = await healthOn(clientWith({ sent })).recordFailure(name, retryable(1_000), counting(1));
    expect(health).toMatchObject({ state: "disabled", consecutiveFailures: 1, nextProbeAtMs: null });
    expect(calls(sent)).toEqual(["UpdateItem"]);
  });

  it("enabling makes it healthy, its failures, probe level and reason forgotten", async () => {
    const name = sinkName("enabled");
    await healthOn().recordFailure(name, retryable(1_000), counting(1, 5_000));
    await healthOn().disable(name, "disabled by an operator");
    const on = await healthOn().enable(name);
    expect(on).toMatchObject({
      state: "healthy",
      consecutiveFailures: 0,
      probeLevel: 0,
      nextProbeAtMs: null,
      disabledReason: null,
      lastFailure: { atMs: 1_000, status: 503, error: "HTTP 503" },
    });
    expect(await healthOn().get(name)).toEqual(on);
  });
});

describe("sink store: an unreachable store", () => {
  const unavailable = (operation: string) =>
    expect.objectContaining({
      name: "StoreUnavailableError",
      message: expect.stringMatching(new RegExp(`^DynamoDB ${operation} failed: `)),
    });

  it("is reported as StoreUnavailableError naming the call, never as a health of its own", async () => {
    const name = sinkName("outage");
    const health = healthOn(clientWith({ failing: () => true }));
    await expect(health.get(name)).rejects.toEqual(unavailable("getSink"));
    await expect(health.recordSuccess(name, 200, 1_000)).rejects.toEqual(unavailable("updateSink"));
    await expect(health.recordFailure(name, retryable(1_000), counting(1))).rejects.toEqual(
      unavailable("updateSink"),
    );
    await expect(health.disable(name, "disabled by an operator")).rejects.toEqual(unavailable("updateSink"));
    await expect(health.enable(name)).rejects.toEqual(unavailable("updateSink"));
    expect(await healthOn().get(name)).toEqual(unknownSinkHealth(name));
  });
});
