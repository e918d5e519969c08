import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeCursor } from "../src/store/item-codec.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// Every listing's cursor is checked against its index's key shape before the store sees it
// (issue 21 item 6): a forged one is a 400 naming the cursor, never DynamoDB's ValidationException
// as a 500. Each listing gets the same kinds of forgery: empty key parts, wrong types, wrong arity,
// another run/partition, parts over DynamoDB's key limits, and text that is not a cursor at all.

let store: TestStore;
let app: TestApp;

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

const notCursors = [
  "!!!!",
  "%E2%82",
  "A",
  "e30",
  encodeCursor(null),
  encodeCursor("x"),
  encodeCursor(5),
  "A".repeat(6000),
];

async function expectAllRefused(path: (cursor: string) => string, cursors: readonly string[]) {
  for (const cursor of [...cursors, ...notCursors]) {
    const response = await app.get(path(cursor));
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    expect({ status: response.status, code: body.error?.code }, cursor.slice(0, 80)).toEqual({
      status: 400,
      code: "invalid_request",
    });
    expect(body.error?.message).toMatch(/cursor/);
  }
}

const long = "x".repeat(3000);

describe("forged cursors are a 400 on every listing", () => {
  it("a run's steps: [run, sort key, step key]", async () => {
    const run = "run_forged";
    await expectAllRefused(
      (cursor) => `/v1/runs/${run}/steps?cursor=${encodeURIComponent(cursor)}`,
      [
        encodeCursor([run, "", ""]),
        encodeCursor([run, "00000000001#s", ""]),
        encodeCursor([run, "", "S#s"]),
        encodeCursor(["", "00000000001#s", "S#s"]),
        encodeCursor([run, "00000000001#s"]),
        encodeCursor([run, "00000000001#s", "S#s", "x"]),
        encodeCursor([run, 1, "S#s"]),
        encodeCursor([run, "00000000001#s", null]),
        encodeCursor({ run, rsk: "00000000001#s", pk: "S#s" }),
        encodeCursor(["run_other", "00000000001#s", "S#s"]),
        encodeCursor([run, long, "S#s"]),
        encodeCursor([run, "00000000001#s", `S#${long}${long}`]),
        // Not a step's position in its run: the sort key and the step key disagree, or have no shape.
        encodeCursor([run, "not a sort key", "S#s"]),
        encodeCursor([run, "00000000001#s", "D#hook#s"]),
        encodeCursor([run, "00000000001#s", "S#t"]),
        encodeCursor([run, "00000000001#\ud800", "S#\ud800"]),
      ],
    );
  });

  const scope = {
    statuses: "completed,failed,cancelled,expired",
    since: 0,
    until: 9_999_999_999_999,
    assistant: null,
  };

  it("terminal steps across runs: their filters and a position before", async () => {
    await expectAllRefused(
      (cursor) => `/v1/run-steps?cursor=${encodeURIComponent(cursor)}`,
      [
        encodeCursor({ ...scope, before: "" }),
        encodeCursor({ ...scope, before: 5 }),
        encodeCursor({ ...scope, before: null }),
        encodeCursor({ ...scope }),
        encodeCursor({ ...scope, before: "0000000000001#s", extra: 1 }),
        encodeCursor([scope, "0000000000001#s"]),
        encodeCursor({ ...scope, assistant: "asst_1", before: "0000000000001#s" }),
        encodeCursor({ ...scope, before: `0000000000001#${long}` }),
        encodeCursor({ ...scope, before: "0000000000001#\ud800" }),
      ],
    );
    // A position below `since` would make the index's BETWEEN upside down: not one this API returned.
    await expectAllRefused(
      (cursor) => `/v1/run-steps?since=2000000000&cursor=${encodeURIComponent(cursor)}`,
      [encodeCursor({ ...scope, since: 2_000_000_000_000, before: "0000000000001#s" })],
    );
  });

  it("deliveries: state, sink, shard and a queue position", async () => {
    const good = { pk: { S: "D#hook#s" }, q: { S: "P#hook#0" }, qt: { N: "1" } };
    const at = (key: unknown, rest: Record<string, unknown> = {}) =>
      encodeCursor({ state: "pending", sink: "hook", shard: 0, key, ...rest });
    await expectAllRefused(
      (cursor) => `/v1/deliveries?state=pending&cursor=${encodeURIComponent(cursor)}`,
      [
        at({ ...good, pk: { S: "" } }),
        at({ ...good, q: { S: "" } }),
        at({ ...good, qt: { S: "" } }),
        at({ ...good, qt: { S: "1" } }),
        at({ ...good, pk: { N: "1" } }),
        at({ ...good, pk: { S: "D#hook#s", N: "1" } }),
        at({ pk: good.pk, q: good.q }),
        at([good.pk, good.q, good.qt]),
        at({ ...good, q: { S: "P#hook#1" } }),
        at({ ...good, q: { S: "X#hook#0" } }),
        at({ ...good, pk: { S: "S#s" } }),
        at({ ...good, pk: { S: "D#other#s" } }),
        at({ ...good, pk: { S: `D#hook#${long}` } }),
        at(good, { shard: "0" }),
        at(good, { shard: 8 }),
        at(good, { sink: "nope" }),
        at(good, { state: "dead" }),
        encodeCursor({ state: "pending", sink: "hook", shard: 0, key: good, more: 1 }),
      ],
    );
    await expectAllRefused(
      (cursor) => `/v1/deliveries?state=dead&cursor=${encodeURIComponent(cursor)}`,
      [at({ ...good, q: { S: "X#hook#0" }, pk: { S: "" } }, { state: "dead" }), at(good, { state: "dead" })],
    );
  });

  it("quarantine: a queue position under Q#", async () => {
    const good = { pk: { S: "Q#r" }, q: { S: "Q#" }, qt: { N: "1" } };
    await expectAllRefused(
      (cursor) => `/v1/quarantine?cursor=${encodeURIComponent(cursor)}`,
      [
        encodeCursor({ ...good, pk: { S: "" } }),
        encodeCursor({ ...good, pk: { S: "Q#" } }),
        encodeCursor({ ...good, pk: { S: "Q#r#body" } }),
        encodeCursor({ ...good, pk: { S: "D#hook#s" } }),
        encodeCursor({ ...good, q: { S: "" } }),
        encodeCursor({ ...good, qt: { S: "1" } }),
        encodeCursor({ ...good, qt: { N: "" } }),
        encodeCursor({ ...good, pk: { S: "Q#r", B: "AA==" } }),
        encodeCursor({ pk: good.pk, qt: good.qt }),
        encodeCursor([good.pk, good.q, good.qt]),
        encodeCursor({ ...good, pk: { S: `Q#${long}` } }),
      ],
    );
  });
});
