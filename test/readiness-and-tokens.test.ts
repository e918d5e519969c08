import { DescribeTableCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSignatureVerifier } from "../src/domain/signature-verifier.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { createApp } from "../src/http/create-app.js";
import { createReadiness, READY_CACHE_MS } from "../src/http/readiness.js";
import { matchesAnyToken } from "../src/http/token-match.js";
import { createLogger } from "../src/observability/logger.js";
import { DynamoQuarantineStore } from "../src/store/dynamo-quarantine-store.js";
import { DynamoStepStore } from "../src/store/dynamo-step-store.js";
import { RunStepIngest } from "../src/usecases/run-step-ingest.js";
import { type Sent, type StoreWithOutage, startStoreWithOutage } from "./support/store-with-outage.js";

// Issue 21 item 8: `/readyz` is public, and each request cost a DescribeTable; with several API
// tokens the comparison stopped at the first match. Store calls are counted on a real dynalite.

let stores: StoreWithOutage;
beforeAll(async () => {
  stores = await startStoreWithOutage("readiness");
});
afterAll(() => stores.close());

const TOKENS = ["token-one-0123456789", "token-two-0123456789", "token-three-0123456789"];

async function appOn(client: DynamoDBClient, nowMs: () => number) {
  const logger = createLogger("error", () => undefined);
  const tableName = stores.store.tableName;
  const steps = new DynamoStepStore({ client, tableName, retentionDays: 0 });
  return createApp({
    store: steps,
    verifier: await createSignatureVerifier([generateWebhookSecret()], 300),
    logger,
    ingest: new RunStepIngest({
      store: steps,
      quarantine: new DynamoQuarantineStore({ client, tableName }),
      logger,
      quarantineDays: 14,
    }),
    apiTokens: TOKENS,
    maxBodyBytes: 262_144,
    nowMs,
  });
}

const describes = (sent: readonly Sent[]) => sent.filter((c) => c instanceof DescribeTableCommand).length;

describe("/readyz keeps the store's answer for a moment", () => {
  it("a burst of 100 checks costs one DescribeTable; the next one after the moment costs another", async () => {
    const sent: Sent[] = [];
    let now = 1_000_000;
    const app = await appOn(stores.clientWith({ sent }), () => now);
    const answers = await Promise.all(Array.from({ length: 100 }, () => app.request("/readyz")));
    expect(answers.map((a) => a.status)).toEqual(Array(100).fill(200));
    expect(await answers[0]?.json()).toEqual({ status: "ready" });
    expect(describes(sent)).toBe(1);
    // Back to back within the moment: still that one answer.
    now += READY_CACHE_MS - 1;
    for (let i = 0; i < 20; i++) expect((await app.request("/readyz")).status).toBe(200);
    expect(describes(sent)).toBe(1);
    now += 1;
    expect((await app.request("/readyz")).status).toBe(200);
    expect(describes(sent)).toBe(2);
  });

  it("a store found down by another route drops a kept 'ready'; a kept refusal serves the burst", async () => {
    const sent: Sent[] = [];
    let down = false;
    let now = 2_000_000;
    const app = await appOn(stores.clientWith({ sent, failing: () => down }), () => now);
    expect((await app.request("/readyz")).status).toBe(200);
    down = true;
    // The store's 503 on an API route means /readyz asks again rather than answer "ready".
    const listing = await app.request("/v1/quarantine", {
      headers: { authorization: `Bearer ${TOKENS[0]}` },
    });
    expect(listing.status).toBe(503);
    const refusals = await Promise.all(Array.from({ length: 50 }, () => app.request("/readyz")));
    expect(refusals.map((a) => a.status)).toEqual(Array(50).fill(503));
    expect(describes(sent)).toBe(2);
    down = false;
    now += READY_CACHE_MS;
    expect((await app.request("/readyz")).status).toBe(200);
    expect(describes(sent)).toBe(3);
  }, 30_000);

  it("createReadiness on its own: shares the call in flight, keeps ready or not for ttlMs, and forgets only 'ready'", async () => {
    let calls = 0;
    let fail = false;
    let now = 0;
    const readiness = createReadiness(
      async () => {
        calls++;
        if (fail) throw new Error("down");
      },
      () => now,
      500,
    );
    await Promise.all([readiness.check(), readiness.check()]);
    expect(calls).toBe(1);
    now = 499;
    await readiness.check();
    expect(calls).toBe(1);
    readiness.forget();
    fail = true;
    await expect(readiness.check()).rejects.toThrow("down");
    expect(calls).toBe(2);
    readiness.forget();
    await expect(readiness.check()).rejects.toThrow("down");
    expect(calls).toBe(2);
    // A clock that went back is no reason to trust an old answer.
    now = 100;
    fail = false;
    await readiness.check();
    expect(calls).toBe(3);
    now = 600;
    await readiness.check();
    expect(calls).toBe(4);
  });
});

describe("bearer tokens: every one is compared", () => {
  it("whichever token matches, and when none does, each configured token is compared once", async () => {
    for (const candidate of [...TOKENS, "token-none-0123456789"]) {
      const compared: string[] = [];
      const matched = await matchesAnyToken(TOKENS, candidate, async (a, b) => {
        compared.push(a);
        return a === b;
      });
      expect(matched, candidate).toBe(TOKENS.includes(candidate));
      expect(compared.sort(), candidate).toEqual([...TOKENS].sort());
    }
    expect(await matchesAnyToken([], "anything")).toBe(false);
    expect(await matchesAnyToken(TOKENS, TOKENS[2] as string)).toBe(true);
    expect(await matchesAnyToken(TOKENS, `${TOKENS[2]}x`)).toBe(false);
  });

  it("the API takes each configured token and refuses any other", async () => {
    const app = await appOn(stores.store.client, Date.now);
    for (const token of TOKENS) {
      const response = await app.request("/v1/quarantine", { headers: { authorization: `Bearer ${token}` } });
      expect(response.status, token).toBe(200);
    }
    const refused = await app.request("/v1/quarantine", {
      headers: { authorization: `Bearer ${TOKENS[0]?.slice(0, -1)}` },
    });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({
      error: { code: "unauthorized", message: "invalid bearer token" },
    });
  });
});
