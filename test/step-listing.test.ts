import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeStep } from "./support/run-steps.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
let app: TestApp;
// The listing orders by when stepwatch applied the terminal status: a clock the test moves.
let clockMs = 1_790_000_000_000;

interface Listed {
  data: Array<{ id: string; status: string; assistant_id: string }>;
  next_cursor: string | null;
}
const list = async (query: string) => {
  const response = await app.get(`/v1/run-steps?${query}`);
  return { status: response.status, body: (await response.json()) as Listed };
};
/** Every page of a listing, following next_cursor. */
const all = async (query: string) => {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 50; page++) {
    const suffix: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
    const { body } = await list(`${query}${suffix}`);
    ids.push(...body.data.map((s) => s.id));
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  return ids;
};

// 30 failed steps (every third from asst_b), 10 completed, 1 still in progress; a second apart.
const failed = Array.from({ length: 30 }, (_, i) => `step_list_f${String(i).padStart(2, "0")}`);
const completed = Array.from({ length: 10 }, (_, i) => `step_list_c${i}`);
const assistantOf = (i: number) => (i % 3 === 0 ? "asst_b" : "asst_a");
let firstS = 0;

beforeAll(async () => {
  store = await startTestStore();
  app = await createTestApp(store, {}, { nowMs: () => clockMs });
  firstS = Math.floor(clockMs / 1000);
  for (const [i, id] of failed.entries()) {
    clockMs += 1000;
    await app.send(makeStep({ id, status: "failed", assistant_id: assistantOf(i) }), {
      timestamp: Math.floor(clockMs / 1000),
    });
    if (i < completed.length) {
      await app.send(makeStep({ id: completed[i], status: "completed" }), {
        timestamp: Math.floor(clockMs / 1000),
      });
    }
  }
  await app.send(makeStep({ id: "step_list_open" }), { timestamp: Math.floor(clockMs / 1000) });
});
afterAll(() => store.close());

describe("GET /v1/run-steps: terminal steps across runs", () => {
  it("lists by status, newest first, page after page across every partition", async () => {
    const { status, body } = await list("status=failed&limit=7");
    expect(status).toBe(200);
    expect(body.data.map((s) => s.id)).toEqual([...failed].reverse().slice(0, 7));
    expect(body.data.every((s) => s.status === "failed")).toBe(true);
    expect(await all("status=failed&limit=7")).toEqual([...failed].reverse());
  });

  it("lists every terminal status by default, and several when asked; never an in_progress step", async () => {
    const everything = await all("limit=100");
    expect(everything.sort()).toEqual([...failed, ...completed].sort());
    expect(await all("status=completed,failed&limit=9")).toHaveLength(40);
    expect(await all("status=cancelled")).toEqual([]);
  });

  it("filters by the time the terminal status was applied, both ends included, and by assistant", async () => {
    const since = firstS + 5;
    const until = firstS + 9;
    expect(await all(`status=failed&since=${since}&until=${until}&limit=2`)).toEqual(
      failed.slice(4, 9).reverse(),
    );
    const fromB = failed.filter((_, i) => assistantOf(i) === "asst_b");
    expect(await all("status=failed&assistant_id=asst_b&limit=3")).toEqual([...fromB].reverse());
    const { body } = await list("status=failed&assistant_id=asst_b&limit=100");
    expect(body.data.every((s) => s.assistant_id === "asst_b")).toBe(true);
    expect(body.next_cursor).toBeNull();
  });

  it("a rare assistant is found page after page, even far below what one page reads of each partition", async () => {
    const rare = ["step_list_z0", "step_list_z1", "step_list_z2"];
    for (const id of rare) {
      clockMs += 1000;
      await app.send(makeStep({ id, status: "expired", assistant_id: "asst_z" }), {
        timestamp: Math.floor(clockMs / 1000),
      });
    }
    // Newer than them, 300 of another assistant's: well over five pages of each partition.
    const others = Array.from({ length: 300 }, (_, i) => `step_list_y${i}`);
    clockMs += 1000;
    for (let i = 0; i < others.length; i += 25) {
      await Promise.all(
        others.slice(i, i + 25).map((id) =>
          app.send(makeStep({ id, status: "expired", assistant_id: "asst_y" }), {
            timestamp: Math.floor(clockMs / 1000),
          }),
        ),
      );
    }
    expect(await all("status=expired&assistant_id=asst_z&limit=1")).toEqual([...rare].reverse());
  });

  it("refuses bad parameters and cursors with 400, and anyone without the token with 401", async () => {
    for (const query of [
      "status=in_progress",
      "status=",
      "since=yesterday",
      "since=20&until=10",
      "limit=0",
      "cursor=bm90LWEtY3Vyc29y",
    ]) {
      const { status } = await list(query);
      expect(status, query).toBe(400);
    }
    const { body } = await list("status=failed&limit=5");
    // A cursor only continues the listing it came from.
    expect((await list(`status=completed&limit=5&cursor=${body.next_cursor}`)).status).toBe(400);
    expect((await app.app.request("/v1/run-steps?status=failed")).status).toBe(401);
  });
});
