import { afterAll, beforeAll, expect, it } from "vitest";
import { makeStep } from "./support/run-steps.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
let app: TestApp;
beforeAll(async () => {
  store = await startTestStore();
  app = await createTestApp(store);
});
afterAll(() => store.close());

it("stores and reads back", async () => {
  const r1 = await app.send(makeStep());
  expect(r1.status).toBe(200);
  expect(await r1.json()).toEqual({ step_id: "step_abc123", status: "in_progress", outcome: "created" });
  const r2 = await app.send(makeStep({ status: "completed" }));
  expect(await r2.json()).toMatchObject({ outcome: "updated" });
  const r3 = await app.send(makeStep({ status: "failed" }));
  expect(await r3.json()).toMatchObject({ outcome: "conflict" });
  const g = await app.get("/v1/run-steps/step_abc123");
  expect(g.status).toBe(200);
  console.log(await g.json());
  console.log(await (await app.get("/v1/runs/run_abc123")).json());
});
