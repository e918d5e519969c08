import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeCursor, fitsKey } from "../src/store/item-codec.js";
import { createTestApp, TEST_TOKEN, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
let app: TestApp;
const long = "x".repeat(3000);

beforeAll(async () => {
  store = await startTestStore();
  app = await createTestApp(store, {
    NOTIFY_SINKS: JSON.stringify([
      {
        name: "hook",
        type: "webhook",
        url: "http://127.0.0.1:9/",
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      },
    ]),
  });
});
afterAll(() => store.close());

const post = (path: string) =>
  app.app.request(path, { method: "POST", headers: { authorization: `Bearer ${TEST_TOKEN}` } });

describe("ids and cursors beyond DynamoDB's key limits never reach the store (SPEC §3: no 5xx from input)", () => {
  it("an id no key can hold is simply not found", async () => {
    expect((await app.get(`/v1/run-steps/${long}`)).status).toBe(404);
    expect((await post(`/v1/deliveries/${long}:hook/retry`)).status).toBe(404);
    expect((await post(`/v1/deliveries/${long}:hook/resend`)).status).toBe(404);
    // Non-ASCII counts in bytes: 700 three-byte characters are 2,100 bytes.
    expect((await app.get(`/v1/run-steps/${encodeURIComponent("€".repeat(700))}`)).status).toBe(404);
  });

  it("a forged cursor whose position could not exist in the index is a 400", async () => {
    const forged = [
      `/v1/runs/run_a/steps?cursor=${encodeCursor(["run_a", "r".repeat(3000), "S#a"])}`,
      `/v1/deliveries?state=pending&cursor=${encodeCursor({
        state: "pending",
        sink: "hook",
        shard: 0,
        key: { pk: { S: "z".repeat(3000) }, q: { S: "P#hook#0" }, qt: { N: "1" } },
      })}`,
      `/v1/deliveries?state=pending&cursor=${encodeCursor({
        state: "pending",
        sink: "hook",
        shard: 0,
        key: { pk: { S: "D#hook#a" }, q: { S: "P#hook#0" }, qt: { N: "1e400" } },
      })}`,
      `/v1/run-steps?cursor=${encodeCursor({
        statuses: "completed,failed,cancelled,expired",
        since: 0,
        until: 9_999_999_999_999,
        assistant: null,
        before: `0000000000000#${"y".repeat(2000)}`,
      })}`,
    ];
    for (const path of forged) {
      const response = await app.get(path);
      expect(response.status, path.slice(0, 40)).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: "invalid_request" } });
    }
  });

  it("decides by UTF-8 bytes, at the limits of each kind of key", () => {
    expect(fitsKey("a".repeat(2048))).toBe(true);
    expect(fitsKey("a".repeat(2049))).toBe(false);
    expect(fitsKey("€".repeat(682))).toBe(true);
    expect(fitsKey("€".repeat(683))).toBe(false);
    expect(fitsKey("a".repeat(1024), "sort")).toBe(true);
    expect(fitsKey("a".repeat(1025), "sort")).toBe(false);
  });
});
