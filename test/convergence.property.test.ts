import fc from "fast-check";
import * as v from "valibot";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RunStepSchema, TERMINAL_STATUSES } from "../src/domain/run-step-schema.js";
import { DynamoStepStore } from "../src/store/dynamo-step-store.js";
import { makeStep } from "./support/run-steps.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

let store: TestStore;
let steps: DynamoStepStore;
beforeAll(async () => {
  store = await startTestStore();
  steps = new DynamoStepStore({
    client: store.client,
    tableName: store.tableName,
    retentionDays: 0,
  });
});
afterAll(() => store.close());

interface HistoryEvent {
  readonly status: string;
  readonly sentAt: number;
  readonly marker: number;
}

/**
 * One step's history as a relay sees it: in_progress snapshots sent at distinct, increasing times,
 * then (maybe) one terminal status. Delivery then shuffles and duplicates it.
 */
const history = fc
  .record({
    progress: fc.uniqueArray(fc.integer({ min: 1, max: 10_000 }), { minLength: 0, maxLength: 5 }),
    terminal: fc.option(fc.constantFrom(...TERMINAL_STATUSES), { nil: undefined }),
  })
  .filter((h) => h.progress.length > 0 || h.terminal !== undefined)
  .map(({ progress, terminal }) => {
    const events: HistoryEvent[] = [...progress]
      .sort((a, b) => a - b)
      .map((sentAt, marker) => ({ status: "in_progress", sentAt, marker }));
    if (terminal) events.push({ status: terminal, sentAt: 20_000, marker: events.length });
    return events;
  });

const deliveries = history.chain((events) =>
  fc
    .array(fc.nat({ max: events.length - 1 }), { minLength: 0, maxLength: 8 })
    .chain((extra) =>
      fc.shuffledSubarray([...events, ...extra.map((i) => events[i] as HistoryEvent)], {
        minLength: events.length + extra.length,
        maxLength: events.length + extra.length,
      }),
    )
    .map((delivered) => ({ events, delivered })),
);

let counter = 0;

async function applyAll(stepId: string, events: readonly HistoryEvent[], concurrently: boolean) {
  const apply = async (e: HistoryEvent) => {
    const document = makeStep({ id: stepId, status: e.status, metadata: { marker: String(e.marker) } });
    const step = v.parse(RunStepSchema, document);
    return (await steps.apply({ step, document, sentAt: e.sentAt, receivedAt: 1, intents: [] })).outcome;
  };
  if (concurrently) return Promise.all(events.map(apply));
  const outcomes = [];
  for (const e of events) outcomes.push(await apply(e));
  return outcomes;
}

it("any shuffle and duplication of a step's history converges to the in-order state", async () => {
  await fc.assert(
    fc.asyncProperty(deliveries, fc.boolean(), async ({ events, delivered }, concurrently) => {
      const id = `prop_${counter++}`;
      await applyAll(`${id}_ordered`, events, false);
      await applyAll(`${id}_shuffled`, delivered, concurrently);
      const ordered = await steps.getStep(`${id}_ordered`);
      const shuffled = await steps.getStep(`${id}_shuffled`);
      expect(shuffled?.status).toBe(ordered?.status);
      expect({ ...shuffled?.document, id: "x" }).toEqual({ ...ordered?.document, id: "x" });
      // The in-order state is the last event of the history.
      expect(ordered?.document.metadata).toEqual({ marker: String((events.at(-1) as HistoryEvent).marker) });
    }),
    { numRuns: 60 },
  );
});
