import { afterAll, beforeAll, expect, it } from "vitest";
import { makeStep } from "./support/run-steps.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
let sinkA: SinkServer;
let sinkB: SinkServer;
let app: TestApp;
const calls: string[] = [];

beforeAll(async () => {
  [store, sinkA, sinkB] = await Promise.all([startTestStore(), startSinkServer(), startSinkServer()]);
  // Every DynamoDB call the app makes goes through this client: count them where they leave.
  store.client.middlewareStack.add(
    (next, context) => async (args) => {
      calls.push(context.commandName ?? "unknown");
      return next(args);
    },
    { step: "initialize", name: "countCalls" },
  );
  app = await createTestApp(store, {
    NOTIFY_SINKS: JSON.stringify([
      { name: "a", type: "webhook", url: sinkA.url, secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" },
      { name: "b", type: "slack", url: sinkB.url },
    ]),
  });
});
afterAll(() => Promise.all([store.close(), sinkA.close(), sinkB.close()]));

const during = async (work: () => Promise<unknown>) => {
  calls.length = 0;
  await work();
  return [...calls];
};

it("an in_progress event costs one write and no read", async () => {
  expect(await during(() => app.send(makeStep({ id: "step_budget_1" })))).toEqual(["UpdateItemCommand"]);
});

// Sink health is read at most once a second and a healthy sink's success written at most every
// 10 s per instance: warm both up, as a server that has been running is.
const warmUp = async (id: string) => {
  await app.send(makeStep({ id, status: "completed" }));
  await app.drain();
};

it("a terminal event delivered to every sink with 2xx costs the apply and one small write per sink, and no read", async () => {
  await warmUp("step_budget_warm_2");
  const used = await during(async () => {
    await app.send(makeStep({ id: "step_budget_2", status: "completed" }));
    await eventually(async () => (sinkA.received.length > 1 && sinkB.received.length > 1 ? true : undefined));
    await app.drain();
  });
  expect(used).toEqual(["UpdateItemCommand", "PutItemCommand", "PutItemCommand"]);
});

it("a terminal transition over an in_progress step costs the same", async () => {
  await app.send(makeStep({ id: "step_budget_3" }));
  await warmUp("step_budget_warm_3");
  const used = await during(async () => {
    await app.send(makeStep({ id: "step_budget_3", status: "failed" }));
    await app.drain();
  });
  expect(used).toEqual(["UpdateItemCommand", "PutItemCommand", "PutItemCommand"]);
});

it("a stale in_progress duplicate costs one refused write and nothing more", async () => {
  const used = await during(() =>
    app.send(makeStep({ id: "step_budget_1" }), { timestamp: Math.floor(Date.now() / 1000) - 100 }),
  );
  expect(used).toEqual(["UpdateItemCommand"]);
});
