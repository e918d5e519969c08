import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  DOCUMENTED_CODES,
  DOCUMENTED_STATUSES,
  type FuzzCase,
  fuzzCases,
  readBackDocument,
} from "./support/fuzz-events.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
let app: TestApp;
beforeAll(async () => {
  store = await startTestStore("stepwatch-fuzz");
  app = await createTestApp(store, { MAX_BODY_BYTES: "358400" });
});
afterAll(() => store.close());

let stored = 0;
let refused = 0;

// One signed, mutated event: a documented status always; a stored one reads back exactly as sent.
async function check(fuzz: FuzzCase): Promise<void> {
  const response = await app.send(fuzz.body);
  const answer = (await response.json()) as Record<string, unknown>;
  expect(DOCUMENTED_STATUSES.has(response.status), `${response.status} ${JSON.stringify(answer)}`).toBe(true);
  if (response.status !== 200) {
    refused++;
    const error = answer.error as { code: string; quarantine_id?: string };
    expect(DOCUMENTED_CODES.has(error.code), error.code).toBe(true);
    // Signed and refused for its body: kept in the quarantine.
    expect(error.quarantine_id).toMatch(/^q_/);
    return;
  }
  if (answer.outcome !== "created" || fuzz.stepId === null) return;
  stored++;
  const read = await app.get(`/v1/run-steps/${encodeURIComponent(fuzz.stepId)}`);
  expect(read.status).toBe(200);
  expect(readBackDocument((await read.json()) as Record<string, unknown>)).toBe(
    JSON.stringify(fuzz.document),
  );
}

it("mutated signed events: only documented statuses, and every stored one reads back exactly", async () => {
  await fc.assert(fc.asyncProperty(fuzzCases(`step_fz${Date.now().toString(36)}`), check), {
    numRuns: 800,
    // Bounded in time on a slow or busy machine; `npm run fuzz` runs the long campaign.
    interruptAfterTimeLimit: 8_000,
  });
  // The mutations reach both sides: some events are stored, some refused.
  expect(stored).toBeGreaterThan(20);
  expect(refused).toBeGreaterThan(20);
});
