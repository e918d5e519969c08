import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKLOG_METRICS, backlogMetricLines } from "../src/observability/backlog-metrics.js";
import { seedDead, seedPending, testClock, webhookSink } from "./support/deliveries.js";
import { createTestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// The Lambda sweeper's backlog gauges (README "Alarms"): Embedded Metric Format lines CloudWatch
// turns into the metrics infra/'s alarms watch. Here from a real store's backlog, as the Lambda
// reads it (operations.sinks(), then one line for the table and one per sink).

let store: TestStore;
beforeAll(async () => {
  store = await startTestStore("stepwatch-backlog");
});
afterAll(async () => {
  await store?.close();
});

/** The EMF document CloudWatch reads: the metric definitions, the dimensions, the values. */
function emf(nowMs: number, dimensions: Record<string, string>, pending: number, dead: number, ageS: number) {
  return {
    time: new Date(nowMs).toISOString(),
    level: "info",
    msg: "delivery backlog",
    _aws: {
      Timestamp: nowMs,
      CloudWatchMetrics: [
        {
          Namespace: "Stepwatch",
          Dimensions: [Object.keys(dimensions)],
          Metrics: [
            { Name: "PendingDeliveries", Unit: "Count" },
            { Name: "DeadDeliveries", Unit: "Count" },
            { Name: "OldestPendingAgeSeconds", Unit: "Seconds" },
          ],
        },
      ],
    },
    ...dimensions,
    PendingDeliveries: pending,
    DeadDeliveries: dead,
    OldestPendingAgeSeconds: ageS,
  };
}

describe("the backlog gauges (CloudWatch Embedded Metric Format)", () => {
  it("one line for the table (totals, the oldest pending delivery's age in whole seconds) and one per sink, zeros included", async () => {
    const clock = testClock(Date.UTC(2026, 10, 26, 12, 0, 0));
    const now = clock.now;
    const sinks = ["alpha", "beta", "ahead", "idle"];
    const app = await createTestApp(
      store,
      {
        NOTIFY_SINKS: JSON.stringify(
          sinks.map((name) =>
            webhookSink(name, "http://127.0.0.1:9/", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
          ),
        ),
      },
      { nowMs: clock.nowMs },
    );
    // alpha holds the oldest pending delivery (200.4 s), beta a younger one (50.6 s), `ahead` one
    // created 4 s after the sweeper's clock (another instance's clock runs ahead), idle none.
    await seedPending(app, ["bk_a1"], "alpha", now - 200_400);
    await seedPending(app, ["bk_a2"], "alpha", now - 100_000);
    await seedPending(app, ["bk_b1"], "beta", now - 50_600);
    await seedPending(app, ["bk_f1"], "ahead", now + 4_000);
    await seedDead(app, ["bk_a3"], "alpha", now - 1_000);
    await seedDead(app, ["bk_b2", "bk_b3"], "beta", now - 1_000);
    await seedDead(app, ["bk_i1", "bk_i2", "bk_i3"], "idle", now - 1_000);

    const samples = (await app.operations.sinks()).map(({ config, backlog }) => ({
      name: config.name,
      ...backlog,
    }));
    const lines = backlogMetricLines("stepwatch-backlog", samples, app.operations.nowMs());

    expect(lines.map((line) => JSON.parse(line))).toEqual([
      emf(now, { Table: "stepwatch-backlog" }, 4, 6, 200),
      emf(now, { Table: "stepwatch-backlog", Sink: "alpha" }, 2, 1, 200),
      emf(now, { Table: "stepwatch-backlog", Sink: "beta" }, 1, 2, 51),
      emf(now, { Table: "stepwatch-backlog", Sink: "ahead" }, 1, 0, 0),
      emf(now, { Table: "stepwatch-backlog", Sink: "idle" }, 0, 3, 0),
    ]);
    // One JSON object per line, as CloudWatch Logs reads them.
    expect(lines.every((line) => !line.includes("\n"))).toBe(true);
  });

  it("the oldest pending delivery is the oldest of any sink, whichever order they come in", () => {
    const now = 1_800_000_000_000;
    const sample = (name: string, createdAgoMs: number | null) => ({
      name,
      pending: createdAgoMs === null ? 0 : 1,
      dead: 0,
      oldestPendingCreatedMs: createdAgoMs === null ? null : now - createdAgoMs,
    });
    const tableAge = (sinks: ReturnType<typeof sample>[]) =>
      JSON.parse(backlogMetricLines("t", sinks, now)[0] ?? "{}")[BACKLOG_METRICS.oldestPendingAge];
    expect(tableAge([sample("a", 30_000), sample("b", 90_000), sample("c", null)])).toBe(90);
    expect(tableAge([sample("a", null), sample("b", 90_000), sample("c", 30_000)])).toBe(90);
    expect(tableAge([sample("a", 1_499), sample("b", null)])).toBe(1);
  });

  it("without any sink: one line for the table, all zeros", () => {
    const now = 1_800_000_000_000;
    expect(backlogMetricLines("t", [], now).map((line) => JSON.parse(line))).toEqual([
      emf(now, { Table: "t" }, 0, 0, 0),
    ]);
  });
});
