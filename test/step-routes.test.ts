import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stepRoutes } from "../src/http/routes/step-routes.js";
import { applyWithoutNotifier } from "./support/deliveries.js";
import { makeStep } from "./support/run-steps.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";
import { expectStoreUnavailable, type ThrottleableStore, throttleable } from "./support/throttling.js";

// `/v1/run-steps` and `/v1/runs` (SPEC §5): the time range of the listing, 404s that name what was
// asked for, a step's deliveries before any is recorded, and 503 under a throttled store. One app
// with a console sink on a real dynalite, on a clock the test sets.

// Half a second into a second: the range is in whole seconds, both ends included.
const APPLIED_MS = 1_790_000_000_500;
const APPLIED_S = Math.floor(APPLIED_MS / 1000);

let store: TestStore;
let throttling: ThrottleableStore;
let app: TestApp;

beforeAll(async () => {
  store = await startTestStore();
  throttling = throttleable(store);
  app = await createTestApp(
    throttling.store,
    { NOTIFY_SINKS: JSON.stringify([{ name: "hook", type: "console" }]) },
    { nowMs: () => APPLIED_MS, writeLine: () => undefined },
  );
});
afterAll(async () => {
  await app.drain();
  await store.close();
});

async function get(path: string) {
  const response = await app.get(path);
  return { status: response.status, headers: response.headers, body: (await response.json()) as unknown };
}

const notFound = (message: string) => ({ error: { code: "not_found", message } });

describe("GET /v1/run-steps: since and until", () => {
  it("either end alone, or both on one second, lists what was applied in it; since after until is a 400", async () => {
    expect(
      (await app.send(makeStep({ id: "step_ranged", status: "failed" }), { timestamp: APPLIED_S })).status,
    ).toBe(200);
    for (const range of [
      `since=${APPLIED_S}`,
      `until=${APPLIED_S}`,
      `since=${APPLIED_S}&until=${APPLIED_S}`,
    ]) {
      expect(await get(`/v1/run-steps?status=failed&${range}`), range).toMatchObject({
        status: 200,
        body: { data: [{ id: "step_ranged", status: "failed" }], next_cursor: null },
      });
    }
    expect(await get(`/v1/run-steps?status=failed&since=${APPLIED_S + 1}`)).toMatchObject({
      status: 200,
      body: { data: [] },
    });
    expect(await get(`/v1/run-steps?status=failed&until=${APPLIED_S - 1}`)).toMatchObject({
      status: 200,
      body: { data: [] },
    });
    expect(await get(`/v1/run-steps?since=${APPLIED_S + 1}&until=${APPLIED_S}`)).toMatchObject({
      status: 400,
      body: { error: { code: "invalid_request", message: "since must not be after until" } },
    });
  });
});

describe("unknown ids", () => {
  it("a step or a run no event named is a 404 that names it", async () => {
    expect(await get("/v1/run-steps/step_nowhere")).toMatchObject({
      status: 404,
      body: notFound("no step step_nowhere"),
    });
    expect(await get("/v1/runs/run_nowhere")).toMatchObject({
      status: 404,
      body: notFound("no run run_nowhere"),
    });
  });
});

describe("GET /v1/run-steps/{id}: deliveries", () => {
  it("one owed but not yet recorded shows as pending, created when the terminal status was applied", async () => {
    const appliedS = APPLIED_S - 3_600;
    await applyWithoutNotifier(app, ["step_owed"], ["hook"], appliedS);
    expect(await get("/v1/run-steps/step_owed")).toMatchObject({
      status: 200,
      body: {
        id: "step_owed",
        updated_at: appliedS,
        deliveries: [
          { id: "step_owed:hook", sink: "hook", state: "pending", attempts: 0, created_at: appliedS },
        ],
      },
    });
  });

  it("mounted without delivery operations, a step shows none", async () => {
    const bare = new Hono().route("/v1/run-steps", stepRoutes(app.store, undefined));
    const response = await bare.request("/v1/run-steps/step_owed");
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ id: "step_owed", deliveries: [] });
  });
});

describe("the store throttled", () => {
  it("every step and run route answers 503 store_unavailable with Retry-After", async () => {
    await throttling.whileThrottled(async () => {
      for (const path of [
        "/v1/run-steps",
        "/v1/run-steps/step_ranged",
        "/v1/runs/run_abc123",
        "/v1/runs/run_abc123/steps",
      ]) {
        expectStoreUnavailable(await get(path), path);
      }
    });
  });
});
