import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { type Delivery, type DeliveryState, deliveryId, type NotificationEvent } from "../domain/delivery.js";
import type { RunStepStatus } from "../domain/run-step-schema.js";
import type { DeliveryRecord } from "./delivery-store.js";
import type { StoredStep } from "./step-store.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;

/** A DynamoDB item. */
export type Item = Record<string, AttributeValue>;

/** The alias of an attribute in expressions. */
export const alias = (attribute: string) => `#${attribute}`;

const namesCache = new Map<string, Record<string, string>>();

/**
 * ExpressionAttributeNames for the given expressions. Every attribute is aliased (several short
 * names, ttl among them, are reserved words) and DynamoDB refuses aliases an expression does not
 * use, so each map is derived from the expressions' text once and cached: the hot path only looks it up.
 */
export function namesFor(...expressions: string[]): Record<string, string> {
  const key = expressions.join("\n");
  let names = namesCache.get(key);
  if (!names) {
    names = Object.fromEntries([...key.matchAll(/#(\w+)/g)].map((m) => [m[0], m[1] as string]));
    namesCache.set(key, names);
  }
  return names;
}

/** A number attribute's value, 0 when absent. */
export function num(value: AttributeValue | undefined): number {
  return value?.N === undefined ? 0 : Number(value.N);
}

/** Sort key of a step within its run: zero-padded so string order is numeric order. */
export function runSortKey(createdAt: number, stepId: string): string {
  return `${String(createdAt).padStart(11, "0")}#${stepId}`;
}

/** Index shard of a step's pending deliveries: a cheap stable hash of its id. */
export function dueShard(stepId: string): string {
  let hash = 0;
  for (let i = 0; i < stepId.length; i++) hash = (hash * 31 + stepId.charCodeAt(i)) | 0;
  return String(Math.abs(hash) % TABLE_SCHEMA.dueShards);
}

/** Encodes delivery records as the step item's delivery map. */
export function encodeDeliveries(records: readonly DeliveryRecord[]): AttributeValue {
  const map: Item = {};
  for (const r of records) {
    map[r.sink] = {
      M: {
        st: { S: r.state },
        ev: { S: r.event },
        n: { N: String(r.attempts) },
        b: { N: String(r.scheduleBase) },
        err: r.lastError === null ? { NULL: true } : { S: r.lastError },
        next: r.nextAttemptMs === null ? { NULL: true } : { N: String(r.nextAttemptMs) },
      },
    };
  }
  return { M: map };
}

/** Reads the step item's delivery map. */
export function decodeDeliveries(item: Item): DeliveryRecord[] {
  const map = item[A.deliveries]?.M;
  if (!map) return [];
  return Object.entries(map).map(([sink, value]) => {
    const d = value.M ?? {};
    return {
      sink,
      event: d.ev?.S as NotificationEvent,
      state: (d.st?.S ?? "pending") as DeliveryState,
      attempts: num(d.n),
      scheduleBase: num(d.b),
      lastError: d.err?.S ?? null,
      nextAttemptMs: d.next?.N === undefined ? null : Number(d.next.N),
    };
  });
}

/** A delivery record as the operator API shows it. */
export function toDelivery(item: Item, record: DeliveryRecord): Delivery {
  const stepId = item[A.stepId]?.S ?? "";
  // A pending delivery without its own time is due when the item is (the prompt attempt's lease).
  const nextMs = record.state === "pending" ? (record.nextAttemptMs ?? num(item[A.dueAt])) : null;
  return {
    id: deliveryId(stepId, record.sink),
    stepId,
    runId: item[A.runId]?.S ?? "",
    sink: record.sink,
    event: record.event,
    state: record.state,
    attempts: record.attempts,
    lastError: record.lastError,
    nextAttemptAt: nextMs === null ? null : Math.ceil(nextMs / 1000),
  };
}

/** The RunStepObject a step item keeps, as it was applied. */
export function decodeDocument(item: Item): Record<string, unknown> {
  return JSON.parse(item[A.document]?.S ?? "{}") as Record<string, unknown>;
}

/** Reads a step item. */
export function toStoredStep(item: Item): StoredStep {
  return {
    document: decodeDocument(item),
    status: item[A.status]?.S as RunStepStatus,
    receivedAt: num(item[A.receivedAt]),
    updatedAt: num(item[A.updatedAt]),
    conflicts: num(item[A.conflicts]),
    deliveries: decodeDeliveries(item).map((record) => toDelivery(item, record)),
  };
}

/** Encodes an index position as an opaque, URL-safe cursor. */
export function encodeCursor(position: unknown): string {
  return btoa(JSON.stringify(position)).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/** Decodes a cursor made by {@link encodeCursor}; undefined when it is not one. */
export function decodeCursor(cursor: string): unknown {
  try {
    return JSON.parse(atob(cursor.replaceAll("-", "+").replaceAll("_", "/")));
  } catch {
    return undefined;
  }
}
