import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { parseRunStepEvent } from "../src/domain/run-step-event.js";
import type { RunStep } from "../src/domain/run-step-schema.js";
import { DynamoStepStore } from "../src/store/dynamo-step-store.js";
import type { SnapshotToApply } from "../src/store/step-store.js";
import { type BenchStatus, stepTemplate } from "./events.js";

/** A store exactly as the server builds it, on `client`. */
export function benchStore(client: DynamoDBClient, tableName: string): DynamoStepStore {
  return new DynamoStepStore({ client, tableName, retentionDays: 0 });
}

/** Makes snapshots of the bench's 2 KB step with unique ids, as the ingest path hands them over. */
export function snapshotMaker(status: BenchStatus, prefix: string) {
  const parsed = parseRunStepEvent(stepTemplate(status));
  if (!parsed.ok || parsed.event.kind === "delta") throw new Error("the bench step template is invalid");
  const { step, document } = parsed.event;
  return (index: number, nowSeconds: number): SnapshotToApply => {
    const id = `step_${prefix}${index.toString(36)}`;
    const run = `run_${prefix}${Math.floor(index / 8).toString(36)}`;
    return {
      step: { ...step, id, run_id: run } as RunStep,
      document: { ...document, id, run_id: run },
      sentAt: nowSeconds,
      receivedAt: nowSeconds,
      intents: [],
    };
  };
}

/**
 * The exact JSON body the product store sends for one in_progress snapshot, captured from the SDK
 * after serialisation, with the step and run ids left as placeholders for the raw client to fill.
 */
export async function captureUpdateItemBody(
  client: DynamoDBClient,
  tableName: string,
): Promise<{ body: string; stepMark: string; runMark: string }> {
  let captured: string | undefined;
  const name = "benchCaptureBody";
  client.middlewareStack.add(
    (next) => async (args) => {
      const body = (args.request as { body?: unknown }).body;
      // This SDK serialises JSON straight into bytes; older ones produced a string.
      if (typeof body === "string") captured = body;
      else if (body instanceof Uint8Array) captured = Buffer.from(body).toString("utf8");
      return next(args);
    },
    { step: "build", name },
  );
  try {
    const stepMark = "step_MARKSTEP";
    const runMark = "run_MARKRUN";
    const snapshot = snapshotMaker("in_progress", "capture")(0, Math.floor(Date.now() / 1000));
    await benchStore(client, tableName).apply({
      ...snapshot,
      step: { ...snapshot.step, id: stepMark, run_id: runMark },
      document: { ...snapshot.document, id: stepMark, run_id: runMark },
    });
    if (!captured) throw new Error("no UpdateItem body was captured");
    return { body: captured, stepMark, runMark };
  } finally {
    client.middlewareStack.remove(name);
  }
}
