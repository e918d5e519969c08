import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mapConcurrent } from "./support/concurrency.js";
import { makeToolCallsStep } from "./support/run-steps.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// A load test of the ingest path that test/ingest-http.test.ts checks case by case. Its own file so
// that mutation testing can leave it out (vitest.stryker.config.ts): it covers every ingest mutant
// and would add its 5 s to each of them without telling any mutant apart that the others miss.
let store: TestStore;
let app: TestApp;
let seq = 0;
const uid = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${seq++}`;

beforeAll(async () => {
  store = await startTestStore();
  app = await createTestApp(store);
});
afterAll(() => store.close());

const json = async (response: Response) => ({
  status: response.status,
  body: (await response.json()) as unknown,
});

describe("a burst", () => {
  it("1,000 distinct events at concurrency 50 are all answered 200 and all listed afterwards", async () => {
    const runs = Array.from({ length: 10 }, () => uid("run"));
    const events = Array.from({ length: 1000 }, (_, i) =>
      makeToolCallsStep({
        id: `step_burst_${runs[i % 10]}_${i}`,
        run_id: runs[i % 10],
        created_at: 1_764_000_000 + i,
      }),
    );
    const statuses = await mapConcurrent(events, 50, async (event) => (await app.send(event)).status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1000);
    let listed = 0;
    for (const run of runs) {
      const page = (await json(await app.get(`/v1/runs/${run}/steps?limit=100`))).body as {
        data: unknown[];
        next_cursor: string | null;
      };
      listed += page.data.length;
      expect((await json(await app.get(`/v1/runs/${run}`))).body).toMatchObject({ steps: { total: 100 } });
    }
    expect(listed).toBe(1000);
  });
});
