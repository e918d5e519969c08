import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { DynamoQuarantineStore } from "../src/store/dynamo-quarantine-store.js";
import { seedQuarantined } from "./support/quarantine.js";
import { makeStep } from "./support/run-steps.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, TEST_TOKEN, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

interface QuarantineBody {
  id: string;
  received_at: number;
  expires_at: number;
  webhook_id: string;
  webhook_timestamp: number;
  status: number;
  error: { code: string; message: string; issues?: Array<{ path: string; message: string }> };
  body_bytes: number;
  state: string;
  replayed_at: number | null;
  replay: { step_id: string | null; outcome: string } | null;
  headers?: Record<string, string>;
  body?: string;
  body_base64?: string;
}

let store: TestStore;
let sink: SinkServer;
let app: TestApp;
let seq = 0;
const uid = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${seq++}`;

beforeAll(async () => {
  [store, sink] = await Promise.all([startTestStore("stepwatch-quarantine"), startSinkServer()]);
  app = await createTestApp(store, {
    NOTIFY_SINKS: JSON.stringify([
      { name: "hook", type: "webhook", url: `${sink.url}/hook`, secret: generateWebhookSecret() },
    ]),
    MAX_BODY_BYTES: "358400",
  });
});

afterAll(async () => {
  await Promise.all([store?.close(), sink?.close()]);
});

beforeEach(() => sink.reset());

const call = (path: string, method = "GET") =>
  app.app.request(path, { method, headers: { authorization: `Bearer ${TEST_TOKEN}` } });

async function detail(id: string): Promise<QuarantineBody> {
  const response = await call(`/v1/quarantine/${id}`);
  expect(response.status).toBe(200);
  return (await response.json()) as QuarantineBody;
}

async function listAll(): Promise<QuarantineBody[]> {
  const found: QuarantineBody[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 50; page++) {
    const response = await call(`/v1/quarantine?limit=100${cursor ? `&cursor=${cursor}` : ""}`);
    const body = (await response.json()) as { data: QuarantineBody[]; next_cursor: string | null };
    found.push(...body.data);
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  return found;
}

// Signs raw bytes with the app's secret, as a sender's library would.
async function sendRaw(
  payload: string | Uint8Array,
  id = uid("msg"),
  timestamp = Math.floor(Date.now() / 1000),
) {
  const text = typeof payload === "string" ? payload : new TextDecoder().decode(payload);
  const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  // standardwebhooks signs strings; for arbitrary bytes the signed content must be the same bytes.
  const signature =
    typeof payload === "string"
      ? new Webhook(app.secret).sign(id, new Date(timestamp * 1000), text)
      : await signBytes(id, timestamp, bytes);
  return app.post(bytes, { id, timestamp, signature });
}

async function signBytes(id: string, timestamp: number, body: Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    Buffer.from(app.secret.slice("whsec_".length), "base64"),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const content = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), body]);
  return `v1,${Buffer.from(await crypto.subtle.sign("HMAC", key, content)).toString("base64")}`;
}

describe("quarantine: a signed request whose body is refused is kept", () => {
  it("a 422 is kept with its raw body, signature headers and issues, and listed newest first", async () => {
    const webhookId = uid("msg");
    const step = makeStep({ id: uid("step"), status: "completed", completed_at: null });
    const payload = JSON.stringify(step);
    const answer = await sendRaw(payload, webhookId);
    expect(answer.status).toBe(422);
    const refused = (await answer.json()) as { error: { quarantine_id: string; issues: unknown[] } };
    const id = refused.error.quarantine_id;
    expect(id).toMatch(/^q_[0-9a-f]{26}$/);

    const record = await detail(id);
    expect(record).toMatchObject({
      id,
      webhook_id: webhookId,
      status: 422,
      error: {
        code: "invalid_payload",
        issues: [{ path: "completed_at", message: 'is required when status is "completed"' }],
      },
      body: payload,
      body_bytes: Buffer.byteLength(payload),
      state: "quarantined",
      replayed_at: null,
      replay: null,
    });
    expect(Object.keys(record.headers ?? {}).sort()).toEqual([
      "content-type",
      "webhook-id",
      "webhook-signature",
      "webhook-timestamp",
    ]);
    expect(record.headers?.["webhook-signature"]).toMatch(/^v1,/);
    // Kept QUARANTINE_DAYS (14 by default).
    expect(record.expires_at - record.received_at).toBe(14 * 86_400);

    const later = await sendRaw("{not json");
    const laterId = ((await later.json()) as { error: { quarantine_id: string } }).error.quarantine_id;
    const listed = await listAll();
    const positions = [laterId, id].map((q) => listed.findIndex((r) => r.id === q));
    expect(positions[0]).toBeGreaterThanOrEqual(0);
    expect(positions[0]).toBeLessThan(positions[1] ?? -1);
    // A listing shows the record, not its body.
    expect(listed[positions[1] ?? 0]).not.toHaveProperty("body");
  });

  it("a sender's retries of one webhook-id are one record; another id is another", async () => {
    const webhookId = uid("msg");
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const answer = await sendRaw("[1, 2", webhookId);
      expect(answer.status).toBe(400);
      ids.add(((await answer.json()) as { error: { quarantine_id: string } }).error.quarantine_id);
    }
    expect(ids.size).toBe(1);
    const other = await sendRaw("[1, 2");
    expect(((await other.json()) as { error: { quarantine_id: string } }).error.quarantine_id).not.toBe(
      [...ids][0],
    );
    expect((await listAll()).filter((r) => r.webhook_id === webhookId)).toHaveLength(1);
  });

  it("a body that is not UTF-8 is kept byte for byte and shown as base64", async () => {
    const bytes = new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]);
    const answer = await sendRaw(bytes);
    expect(answer.status).toBe(400);
    const id = ((await answer.json()) as { error: { quarantine_id: string } }).error.quarantine_id;
    const record = await detail(id);
    expect(record.body).toBeUndefined();
    expect(record.body_base64).toBe(Buffer.from(bytes).toString("base64"));
  });

  it("a body that is not JSON is kept with its error and no issues", async () => {
    const answer = await sendRaw("{not json");
    expect(answer.status).toBe(400);
    const id = ((await answer.json()) as { error: { quarantine_id: string } }).error.quarantine_id;
    const record = await detail(id);
    expect(record.error).toEqual({ code: "invalid_json", message: "body is not valid UTF-8 JSON" });
    expect(record).toMatchObject({
      status: 400,
      state: "quarantined",
      replay: null,
      replayed_at: null,
      body: "{not json",
    });
  });

  it("unsigned and wrongly signed requests are never kept", async () => {
    const before = (await listAll()).length;
    const unsigned = await app.app.request("/v1/webhooks/run-steps", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(unsigned.status).toBe(401);
    const wrong = await app.send("{not json", { secret: generateWebhookSecret() });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toEqual({
      error: { code: "invalid_signature", message: "no signature matches" },
    });
    expect((await listAll()).length).toBe(before);
  });

  it("a refusal whose issues name a huge key is still kept: issue paths and header values are clipped", async () => {
    const key = "k".repeat(300_000);
    const answer = await sendRaw(JSON.stringify(makeStep({ id: uid("step"), metadata: { [key]: 1 } })));
    expect(answer.status).toBe(422);
    const body = (await answer.json()) as { error: { quarantine_id: string } };
    const record = await detail(body.error.quarantine_id);
    expect(record.error.issues?.length).toBeGreaterThan(0);
    for (const issue of record.error.issues ?? []) expect(issue.path.length).toBeLessThanOrEqual(1024);
    expect(record.body_bytes).toBeGreaterThan(300_000);
  });

  it("a large body that is valid is stored and read back exactly, not quarantined", async () => {
    const big = makeStep({ id: uid("step"), notes: "x".repeat(300_000) });
    const answer = await sendRaw(JSON.stringify(big));
    expect(answer.status).toBe(200);
    expect(await answer.json()).not.toHaveProperty("error");
    const stored = (await (await app.get(`/v1/run-steps/${String(big.id)}`)).json()) as Record<
      string,
      unknown
    >;
    expect(stored.notes).toBe(big.notes);
  });
});

describe("quarantine: replay and delete", () => {
  const quarantine = () => new DynamoQuarantineStore({ client: store.client, tableName: store.tableName });

  // Seeds a record as an older release would have kept it: a body today's rules accept.
  const seed = (body: string, timestamp: number) =>
    seedQuarantined(store, body, { webhookId: uid("msg"), timestamp });

  it("a request today's rules accept is applied, notified and marked replayed, once", async () => {
    const step = makeStep({ id: uid("step"), run_id: uid("run"), status: "failed" });
    const id = await seed(JSON.stringify(step), Math.floor(Date.now() / 1000) - 3_600);

    const replayed = await call(`/v1/quarantine/${id}/replay`, "POST");
    expect(replayed.status).toBe(200);
    expect(await replayed.json()).toEqual({
      quarantine_id: id,
      step_id: step.id,
      status: "failed",
      outcome: "created",
    });
    const stored = (await (await app.get(`/v1/run-steps/${String(step.id)}`)).json()) as { status: string };
    expect(stored.status).toBe("failed");
    const [notification] = await sink.waitFor(1);
    expect(JSON.parse(notification?.body ?? "{}")).toMatchObject({ type: "run_step.failed" });

    const record = await detail(id);
    expect(record).toMatchObject({
      state: "replayed",
      replay: { step_id: step.id, outcome: "created" },
    });
    expect(record.replayed_at).toBeGreaterThanOrEqual(record.received_at);

    const again = await call(`/v1/quarantine/${id}/replay`, "POST");
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe("already_replayed");
    expect(sink.received).toHaveLength(1);
  });

  it("is applied with its original webhook-timestamp: older than what the step has, it is stale", async () => {
    const stepId = uid("step");
    const now = Math.floor(Date.now() / 1000);
    expect(
      (await app.send(makeStep({ id: stepId, metadata: { v: "new" } }), { timestamp: now })).status,
    ).toBe(200);
    const id = await seed(JSON.stringify(makeStep({ id: stepId, metadata: { v: "old" } })), now - 60);
    const replayed = await call(`/v1/quarantine/${id}/replay`, "POST");
    expect(((await replayed.json()) as { outcome: string }).outcome).toBe("stale");
    const stored = (await (await app.get(`/v1/run-steps/${stepId}`)).json()) as { metadata: unknown };
    expect(stored.metadata).toEqual({ v: "new" });

    // Newer than the stored snapshot, it wins.
    const newer = await seed(JSON.stringify(makeStep({ id: stepId, metadata: { v: "newer" } })), now + 1);
    expect(
      ((await (await call(`/v1/quarantine/${newer}/replay`, "POST")).json()) as { outcome: string }).outcome,
    ).toBe("updated");
  });

  it("still invalid: the same error shape, and the record stays quarantined", async () => {
    const answer = await sendRaw(JSON.stringify(makeStep({ id: uid("step"), created_at: "soon" })));
    const id = ((await answer.json()) as { error: { quarantine_id: string } }).error.quarantine_id;
    const replayed = await call(`/v1/quarantine/${id}/replay`, "POST");
    expect(replayed.status).toBe(422);
    expect(await replayed.json()).toEqual({
      error: {
        code: "invalid_payload",
        message: "still refused: not a valid run step event",
        issues: [{ path: "created_at", message: "must be a number" }],
      },
    });
    expect((await detail(id)).state).toBe("quarantined");
  });

  it("a delete removes the record and its body; unknown ids are 404", async () => {
    const answer = await sendRaw("{not json");
    const id = ((await answer.json()) as { error: { quarantine_id: string } }).error.quarantine_id;
    expect((await call(`/v1/quarantine/${id}`, "DELETE")).status).toBe(204);
    expect((await call(`/v1/quarantine/${id}`)).status).toBe(404);
    expect((await call(`/v1/quarantine/${id}`, "DELETE")).status).toBe(404);
    expect((await call(`/v1/quarantine/${id}/replay`, "POST")).status).toBe(404);
    expect(await quarantine().body(id)).toBeNull();
    for (const bad of ["nope", `q_${"0".repeat(26)}`, "q_".padEnd(3000, "a")]) {
      expect((await call(`/v1/quarantine/${encodeURIComponent(bad)}`)).status).toBe(404);
    }
  });

  it("pages with a cursor; a forged cursor is a 400", async () => {
    await sendRaw("{1");
    await sendRaw("{2");
    const first = (await (await call("/v1/quarantine?limit=1")).json()) as {
      data: QuarantineBody[];
      next_cursor: string;
    };
    expect(first.data).toHaveLength(1);
    const second = (await (await call(`/v1/quarantine?limit=1&cursor=${first.next_cursor}`)).json()) as {
      data: QuarantineBody[];
    };
    expect(second.data).toHaveLength(1);
    expect(second.data[0]?.id).not.toBe(first.data[0]?.id);
    expect(second.data[0]?.received_at).toBeLessThanOrEqual(first.data[0]?.received_at ?? 0);
    const forged = Buffer.from(
      JSON.stringify({ pk: { S: "S#x" }, q: { S: "P#hook#0" }, qt: { N: "1" } }),
    ).toString("base64url");
    expect((await call(`/v1/quarantine?cursor=${forged}`)).status).toBe(400);
  });

  it("an expired record is gone even before DynamoDB's TTL deletes it", async () => {
    const answer = await sendRaw("{not json");
    const id = ((await answer.json()) as { error: { quarantine_id: string } }).error.quarantine_id;
    const later = await createTestApp(
      store,
      { WEBHOOK_SECRET: app.secret },
      { nowMs: () => Date.now() + 15 * 86_400_000 },
    );
    const gone = await later.app.request(`/v1/quarantine/${id}`, {
      headers: { authorization: `Bearer ${TEST_TOKEN}` },
    });
    expect(gone.status).toBe(404);
    const listed = (await (await later.get("/v1/quarantine?limit=100")).json()) as { data: QuarantineBody[] };
    expect(listed.data.map((r) => r.id)).not.toContain(id);
  });
});

describe("QUARANTINE_DAYS", () => {
  it("sets how long a record is kept", async () => {
    const short = await createTestApp(store, { WEBHOOK_SECRET: app.secret, QUARANTINE_DAYS: "2" });
    const answer = await short.send("{not json");
    const id = ((await answer.json()) as { error: { quarantine_id: string } }).error.quarantine_id;
    const record = (await (await short.get(`/v1/quarantine/${id}`)).json()) as QuarantineBody;
    expect(record.expires_at - record.received_at).toBe(2 * 86_400);
  });
});
