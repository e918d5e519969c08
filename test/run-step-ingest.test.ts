import { DeleteItemCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Notifier } from "../src/notify/notifier.js";
import { createLogger } from "../src/observability/logger.js";
import { DynamoQuarantineStore } from "../src/store/dynamo-quarantine-store.js";
import { DynamoStepStore } from "../src/store/dynamo-step-store.js";
import type { QuarantineStore } from "../src/store/quarantine-store.js";
import type { StepStore } from "../src/store/step-store.js";
import { ItemTooLargeError } from "../src/store/store-errors.js";
import { TABLE_SCHEMA } from "../src/store/table-schema.js";
import { RunStepIngest, type SignedRequest } from "../src/usecases/run-step-ingest.js";
import { overriding } from "./support/overriding.js";
import { seedQuarantined } from "./support/quarantine.js";
import { makeStep } from "./support/run-steps.js";
import { startSinkServer } from "./support/sink-server.js";
import { createTestApp, TEST_TOKEN } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// The ingest use case on a real dynalite, with the store interleavings a test over HTTP cannot time:
// a rival replay or a delete landing between a replay's read and its mark, a store that refuses an
// item as too large. The rival writes are real writes to the same table.

let store: TestStore;
let seq = 0;
const uid = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${seq++}`;
const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const nowS = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  store = await startTestStore("stepwatch-ingest-usecase");
});
afterAll(() => store.close());

const stores = () => ({
  steps: new DynamoStepStore({ client: store.client, tableName: store.tableName, retentionDays: 0 }),
  quarantine: new DynamoQuarantineStore({ client: store.client, tableName: store.tableName }),
});

function ingestWith(
  overrides: { steps?: StepStore; quarantine?: QuarantineStore; notifier?: Notifier } = {},
) {
  const real = stores();
  return new RunStepIngest({
    store: overrides.steps ?? real.steps,
    quarantine: overrides.quarantine ?? real.quarantine,
    notifier: overrides.notifier,
    logger: createLogger("error", () => undefined),
    quarantineDays: 14,
  });
}

const signed = (body: Uint8Array, webhookId = uid("msg")): SignedRequest => ({
  body,
  webhookId,
  timestamp: nowS(),
  headers: { "webhook-id": webhookId },
  requestId: uid("req"),
});

describe("replay racing another replay or a delete", () => {
  /** Replays a seeded record with `interleave` run on the real store just before the replay's mark. */
  async function replayInterleaved(interleave: (real: QuarantineStore, id: string) => Promise<void>) {
    const real = stores().quarantine;
    const id = await seedQuarantined(store, JSON.stringify(makeStep({ id: uid("step") })), {
      webhookId: uid("msg"),
    });
    const racing = overriding<QuarantineStore>(real, {
      async markReplayed(record, replay) {
        await interleave(real, id);
        return real.markReplayed(record, replay);
      },
    });
    return { id, real, result: await ingestWith({ quarantine: racing }).replay(id, "req_race") };
  }

  it("a rival replay marking the record first: this one is told already_replayed", async () => {
    const { id, real, result } = await replayInterleaved(async (rival, id) => {
      const record = await rival.get(id);
      if (!record) throw new Error("seeded record missing");
      const replay = { atMs: Date.now(), stepId: null, outcome: "unchanged" as const };
      expect(await rival.markReplayed(record, replay)).toBe(true);
    });
    expect(result).toEqual({ kind: "already_replayed" });
    expect((await real.get(id))?.replay?.outcome).toBe("unchanged");
  });

  it("the record deleted before the mark: not_found", async () => {
    const { result } = await replayInterleaved(async (rival, id) => {
      expect(await rival.delete(id)).toBe(true);
    });
    expect(result).toEqual({ kind: "not_found" });
  });

  it("a delta replayed is acknowledged and recorded as ignored, with its step id", async () => {
    const stepId = uid("step");
    const delta = {
      id: stepId,
      object: "thread.run.step.delta",
      delta: { step_details: { type: "tool_calls" } },
    };
    const id = await seedQuarantined(store, JSON.stringify(delta), { webhookId: uid("msg") });
    const ingest = ingestWith();
    expect(await ingest.replay(id, "req_delta")).toEqual({
      kind: "replayed",
      result: { kind: "ignored", stepId },
    });
    expect((await stores().quarantine.get(id))?.replay).toMatchObject({ stepId, outcome: "ignored" });
    expect(await ingest.replay(id, "req_again")).toEqual({ kind: "already_replayed" });
  });

  it("a record whose body item is gone is not found, for reading and for replay", async () => {
    const id = await seedQuarantined(store, JSON.stringify(makeStep({ id: uid("step") })), {
      webhookId: uid("msg"),
    });
    await store.client.send(
      new DeleteItemCommand({
        TableName: store.tableName,
        Key: { [TABLE_SCHEMA.attributes.key]: { S: `${TABLE_SCHEMA.prefixes.quarantine}${id}#body` } },
      }),
    );
    const ingest = ingestWith();
    expect(await stores().quarantine.get(id)).not.toBeNull();
    expect(await ingest.inspect(id)).toBeNull();
    expect(await ingest.replay(id, "req_gone")).toEqual({ kind: "not_found" });
  });

  it("ids that are no quarantine ids are never looked up or deleted", async () => {
    const ingest = ingestWith();
    for (const bad of ["", "nope", `q_${"0".repeat(26)}`, "Q#x"]) {
      expect(await ingest.inspect(bad)).toBeNull();
      expect(await ingest.discard(bad)).toBe(false);
      expect(await ingest.replay(bad, "req_bad")).toEqual({ kind: "not_found" });
    }
  });
});

describe("a store that refuses the item as too large", () => {
  const tooLarge = (inner: StepStore, error: Error): StepStore =>
    overriding<StepStore>(inner, {
      apply: () => Promise.reject(error),
    });

  it("is a 413 refusal saying why, and the request is quarantined", async () => {
    const ingest = ingestWith({ steps: tooLarge(stores().steps, new ItemTooLargeError(409_612, 409_600)) });
    const request = signed(encode(makeStep({ id: uid("step") })));
    const answer = await ingest.ingest(request);
    expect(answer).toMatchObject({
      kind: "refused",
      refusal: {
        status: 413,
        code: "payload_too_large",
        message:
          "the stored item would be 409612 bytes; DynamoDB keeps at most 409600 bytes per item (numbers are stored in canonical form)",
        issues: [],
      },
    });
    const kept = await stores().quarantine.get((answer as { quarantineId: string }).quarantineId);
    expect(kept?.refusal.status).toBe(413);
  });

  it("any other store failure is not a refusal: it propagates, and nothing is quarantined", async () => {
    const failure = new Error("store down");
    const ingest = ingestWith({ steps: tooLarge(stores().steps, failure) });
    const before = await stores().quarantine.count(1000);
    await expect(ingest.ingest(signed(encode(makeStep({ id: uid("step") }))))).rejects.toBe(failure);
    expect(await stores().quarantine.count(1000)).toBe(before);
  });
});

describe("what a refused request keeps (bounded, so the record always fits in an item)", () => {
  it("issue paths up to 1,024 characters and header values up to 4,096 are kept whole; longer ones end in …", async () => {
    // An issue path `metadata.<key>` is 9 characters longer than the key.
    const cases = [
      { key: "a".repeat(1015), contentType: `application/${"v".repeat(4079)}+json` },
      { key: "b".repeat(1016), contentType: `application/${"w".repeat(4080)}+json` },
    ];
    const ingest = ingestWith();
    const kept = [];
    for (const { key, contentType } of cases) {
      const request = signed(encode(makeStep({ id: uid("step"), metadata: { [key]: "v" } })));
      const answer = await ingest.ingest({
        ...request,
        headers: { ...request.headers, "content-type": contentType },
      });
      if (answer.kind !== "refused") throw new Error(`expected a refusal, got ${answer.kind}`);
      // The answer names the whole path; the record keeps a bounded one.
      expect(answer.refusal.issues).toEqual([
        { path: `metadata.${key}`, message: "metadata keys must be at most 64 characters" },
      ]);
      kept.push(await stores().quarantine.get(answer.quarantineId));
    }
    const [whole, clipped] = kept;
    expect(cases[0] && `metadata.${cases[0].key}`).toHaveLength(1024);
    expect(whole?.refusal.issues).toEqual([
      { path: `metadata.${cases[0]?.key}`, message: "metadata keys must be at most 64 characters" },
    ]);
    expect(whole?.headers["content-type"]).toBe(cases[0]?.contentType);
    expect(cases[0]?.contentType).toHaveLength(4096);
    expect(clipped?.refusal.issues).toEqual([
      {
        path: `${`metadata.${cases[1]?.key}`.slice(0, 1023)}…`,
        message: "metadata keys must be at most 64 characters",
      },
    ]);
    expect(clipped?.headers["content-type"]).toBe(`${cases[1]?.contentType.slice(0, 4095)}…`);
    expect(clipped?.headers["webhook-id"]).toBe(clipped?.webhookId);
  });
});

describe("which applies set notifications off (SPEC §6)", () => {
  it("only a terminal snapshot that created or updated its step, for the sinks that match it", async () => {
    const sink = await startSinkServer();
    const app = await createTestApp(store, {
      NOTIFY_SINKS: JSON.stringify([
        {
          name: "prod",
          type: "webhook",
          url: `${sink.url}/in`,
          secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
          filter: { metadata: { env: "prod" } },
        },
      ]),
    });
    try {
      const ingest = ingestWith({ notifier: app.notifier });
      const apply = async (step: Record<string, unknown>) => {
        const answer = await ingest.ingest(signed(encode(step)));
        if (answer.kind !== "applied") throw new Error(`expected applied, got ${answer.kind}`);
        return answer;
      };
      const id = uid("step");
      const prod = { metadata: { env: "prod" } };
      expect(await apply(makeStep({ id, ...prod }))).toMatchObject({
        outcome: "created",
        notifications: null,
      });
      const done = await apply(makeStep({ id, ...prod, status: "completed" }));
      expect(done).toMatchObject({ outcome: "updated", status: "completed", runId: "run_abc123" });
      expect(done.notifications).toBeInstanceOf(Promise);
      await done.notifications;
      expect(sink.received).toHaveLength(1);
      // The same terminal snapshot again, and a conflicting one: nothing more to tell.
      expect(await apply(makeStep({ id, ...prod, status: "completed" }))).toMatchObject({
        outcome: "unchanged",
        notifications: null,
      });
      expect(await apply(makeStep({ id, ...prod, status: "failed" }))).toMatchObject({
        outcome: "conflict",
        notifications: null,
      });
      // A terminal step no sink's filter matches.
      expect(await apply(makeStep({ id: uid("step"), status: "failed" }))).toMatchObject({
        outcome: "created",
        notifications: null,
      });
      await app.drain();
      expect(sink.received).toHaveLength(1);
    } finally {
      await sink.close();
    }
  });

  it("without a notifier, terminal snapshots are applied and notify no one", async () => {
    const ingest = ingestWith();
    const answer = await ingest.ingest(signed(encode(makeStep({ id: uid("step"), status: "completed" }))));
    expect(answer).toMatchObject({
      kind: "applied",
      outcome: "created",
      status: "completed",
      notifications: null,
    });
  });
});

describe("a conflicting terminal status (SPEC §4)", () => {
  it("is answered `conflict`, left as it was, and logged as a warning with the request id", async () => {
    const logLines: string[] = [];
    const app = await createTestApp(store, {}, { logLines, logLevel: "warn" });
    const id = uid("step");
    expect((await app.send(makeStep({ id, status: "completed" }))).status).toBe(200);
    const answer = await app.send(makeStep({ id, status: "failed" }));
    expect(await answer.json()).toMatchObject({ step_id: id, status: "failed", outcome: "conflict" });
    const warnings = logLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.level === "warn");
    expect(warnings).toContainEqual(
      expect.objectContaining({
        msg: "conflicting terminal status ignored",
        request_id: answer.headers.get("x-request-id"),
        step_id: id,
        status: "failed",
      }),
    );
    const stored = (await (await app.get(`/v1/run-steps/${id}`, TEST_TOKEN)).json()) as { status: string };
    expect(stored.status).toBe("completed");
    await app.drain();
  });
});
