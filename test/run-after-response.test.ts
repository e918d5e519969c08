import type { ExecutionContext } from "hono";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deliveryOf, webhookSink } from "./support/deliveries.js";
import { makeStep } from "./support/run-steps.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// The notifications a terminal step sets off run after the webhook's answer. A Worker must hand
// that work to the execution context's waitUntil, or workerd may stop the isolate once the response
// is out; Node has no execution context and simply lets the promise run. Either way the work runs
// to its end, and a notification that fails is logged and kept for a retry, never lost.

let store: TestStore;
let sink: SinkServer;
let app: TestApp;
const lines: string[] = [];
const sinkSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
let seq = 0;
const uid = () => `step_after_${Date.now().toString(36)}_${seq++}`;

beforeAll(async () => {
  [store, sink] = await Promise.all([startTestStore(), startSinkServer()]);
  app = await createTestApp(
    store,
    { NOTIFY_SINKS: JSON.stringify([webhookSink("hook", `${sink.url}/in`, sinkSecret)]) },
    { logLines: lines },
  );
});
afterAll(async () => {
  await app?.drain();
  await Promise.all([store?.close(), sink?.close()]);
});

/** The execution context workerd hands a Worker's fetch, keeping what it was asked to wait for. */
function executionContext(): { ctx: ExecutionContext; awaited: Promise<unknown>[] } {
  const awaited: Promise<unknown>[] = [];
  const ctx: ExecutionContext = {
    waitUntil: (promise) => {
      awaited.push(promise);
    },
    passThroughOnException: () => undefined,
    props: {},
  };
  return { ctx, awaited };
}

/** Ingests a signed terminal step as a Worker would serve it: with an execution context. */
async function sendOnWorker(stepId: string, ctx: ExecutionContext): Promise<Response> {
  const body = JSON.stringify(makeStep({ id: stepId, status: "completed" }));
  const id = `msg_${stepId}`;
  const now = new Date();
  return await app.app.request(
    "/v1/webhooks/run-steps",
    {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "webhook-id": id,
        "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
        "webhook-signature": new Webhook(app.secret).sign(id, now, body),
      },
      body,
    },
    {},
    ctx,
  );
}

const attemptLines = (stepId: string) =>
  lines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === "delivery attempt" && line.step_id === stepId);

describe("work after the response", () => {
  it("on Workers, the notifications are handed to waitUntil, and that promise is the whole work", async () => {
    const stepId = uid();
    const { ctx, awaited } = executionContext();
    const response = await sendOnWorker(stepId, ctx);
    expect(response.status).toBe(200);
    expect(awaited).toHaveLength(1);
    await awaited[0];
    // Settled means done: the sink has it and the delivery is recorded, with no waiting beyond.
    expect(sink.received.filter((r) => r.body.includes(stepId))).toHaveLength(1);
    expect(await deliveryOf(app, stepId, "hook")).toMatchObject({ state: "delivered", attempts: 1 });
  });

  it("on Node, with no execution context, the same work runs by itself after the answer", async () => {
    const stepId = uid();
    const response = await app.send(makeStep({ id: stepId, status: "completed" }));
    expect(response.status).toBe(200);
    await app.drain();
    expect(sink.received.filter((r) => r.body.includes(stepId))).toHaveLength(1);
    expect(await deliveryOf(app, stepId, "hook")).toMatchObject({ state: "delivered", attempts: 1 });
  });

  it("a notification that fails is logged with the request's id and kept for a retry, not lost", async () => {
    sink.fallback = { status: 503, body: "down" };
    try {
      const stepId = uid();
      const { ctx, awaited } = executionContext();
      const response = await sendOnWorker(stepId, ctx);
      expect(response.status).toBe(200);
      expect(awaited).toHaveLength(1);
      // The work settles without rejecting: its failure is recorded, not thrown at the runtime.
      await expect(awaited[0]).resolves.toBeUndefined();
      expect(attemptLines(stepId)).toMatchObject([
        { request_id: response.headers.get("x-request-id"), sink: "hook", outcome: "retry" },
      ]);
      const delivery = await deliveryOf(app, stepId, "hook");
      expect(delivery).toMatchObject({ state: "pending", attempts: 1 });
      expect(delivery.last_error).toContain("503");
      expect(delivery.next_attempt_at).toBeGreaterThan(Math.floor(Date.now() / 1000));
    } finally {
      sink.fallback = { status: 200, body: "ok" };
    }
  });
});
