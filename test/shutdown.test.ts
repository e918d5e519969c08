import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deliveryOf, seedPending, webhookSink } from "./support/deliveries.js";
import { makeStep } from "./support/run-steps.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
let sink: SinkServer;
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

beforeAll(async () => {
  [store, sink] = await Promise.all([startTestStore(), startSinkServer()]);
});
afterAll(async () => {
  await Promise.all([store.close(), sink.close()]);
});

describe("closing for a shutdown", () => {
  it("lets attempts in flight finish, records queued prompt deliveries pending, and starts no more sweep attempts", async () => {
    sink.fallback = { status: 200, delayMs: 300 };
    const app = await createTestApp(store, {
      NOTIFY_SINKS: JSON.stringify([webhookSink("slow", `${sink.url}/in`, secret)]),
      NOTIFY_CONCURRENCY: "1",
      NOTIFY_TIMEOUT_MS: "5000",
    });
    await seedPending(app, ["shut_seeded_1", "shut_seeded_2", "shut_seeded_3"], "slow");
    const sweeping = app.sweep();
    // Three prompt deliveries queue behind the sweep in the sink's one-wide lane.
    for (const id of ["shut_1", "shut_2", "shut_3"]) {
      expect((await app.send(makeStep({ id, status: "completed" }))).status).toBe(200);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    // What a process killed now would leave for a later sweep to send again (the one attempt out).
    expect(app.notifier.attemptsInFlight).toBe(1);
    const started = Date.now();
    await app.close();
    expect(app.notifier.attemptsInFlight).toBe(0);
    const report = await sweeping;
    // Only the attempt in flight when closing began finished (one 300 ms answer), not the other five.
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(sink.received).toHaveLength(1);
    expect(report.attempts).toBeLessThanOrEqual(1);
    const states = await Promise.all(
      ["shut_1", "shut_2", "shut_3", "shut_seeded_1", "shut_seeded_2", "shut_seeded_3"].map(async (id) => {
        const d = await deliveryOf(app, id, "slow");
        return `${d.state}/${d.attempts}`;
      }),
    );
    // Every prompt delivery is recorded (none lost with the process), exactly one was delivered.
    expect(states.filter((s) => s === "delivered/1")).toHaveLength(1);
    expect(states.filter((s) => s === "pending/0")).toHaveLength(5);
  });
});
