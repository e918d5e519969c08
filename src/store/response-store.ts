import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { DeliveryIntent } from "../domain/delivery.js";
import { minimalResponse, truncatedResponse } from "../domain/openai/fit-response-document.js";
import {
  isTerminalResponseStatus,
  type ResponseObject,
  type ResponseStatus,
  responseStatusRank,
} from "../domain/openai/response-object.js";
import type { ApplyOutcome } from "../domain/state-rules.js";
import {
  decodeDocument,
  encodeDocument,
  fitsKey,
  type Item,
  alias as n,
  num,
  numOrNull,
  outboxPartition,
  outboxSortKey,
  shardOf,
} from "./item-codec.js";
import { MAX_ITEM_BYTES, utf8Length, valueSize } from "./item-size.js";
import { Table } from "./table.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const P = TABLE_SCHEMA.prefixes;

/** Key value of a response's item. */
export const responseKey = (id: string) => `${P.response}${id}`;

/** The outbox partition word of a response's terminal status: never a run step's bare status. */
export const responseOutboxWord = (status: string) => `response.${status}`;

/** One hydrated response to apply. */
export interface ResponseToApply {
  readonly response: ResponseObject;
  /** The Response exactly as fetched, unknown fields included. */
  readonly document: Record<string, unknown>;
  /** The event whose hydration fetched it. */
  readonly eventId: string;
  /** Unix ms of the fetch: between two fetches of a response still running, the later wins. */
  readonly hydratedAtMs: number;
  /** Notifications owed if this is the response's terminal transition. */
  readonly intents: readonly DeliveryIntent[];
}

/** A response as stored. */
export interface StoredResponse {
  readonly document: Record<string, unknown>;
  readonly status: ResponseStatus;
  /** Unix seconds it was first stored, and last changed. */
  readonly receivedAt: number;
  readonly updatedAt: number;
  readonly hydratedAtMs: number;
  /** The events whose hydrations applied it. */
  readonly eventIds: readonly string[];
  /** The sinks its terminal transition owes a notification, by name. */
  readonly owedSinks: readonly string[];
  /** Unix ms its terminal status was applied (when its deliveries were created); null before. */
  readonly terminalAtMs: number | null;
}

const SET = [
  `${n(A.document)} = :doc`,
  `${n(A.status)} = :st`,
  `${n(A.statusRank)} = :rk`,
  `${n(A.hydratedAt)} = :hya`,
  `${n(A.runId)} = :id`,
  `${n(A.threadId)} = :thr`,
  `${n(A.assistantId)} = :asst`,
  `${n(A.model)} = :mdl`,
  `${n(A.createdAt)} = :ca`,
  `${n(A.updatedAt)} = :now`,
  `${n(A.receivedAt)} = if_not_exists(${n(A.receivedAt)}, :now)`,
].join(", ");
// A response moves queued → in_progress → one terminal status, never back (SPEC §9, §4's rules in
// one condition): a higher rank wins; at the same rank, a later fetch of one still running does.
const APPLY_IF = `attribute_not_exists(${n(A.key)}) OR ${n(A.statusRank)} < :rk OR (${n(A.statusRank)} = :rk AND :rk < :terminal AND ${n(A.hydratedAt)} < :hya)`;
const TERMINAL_RANK = 2;
// Bytes an item holds beyond its document and the values of this write: its key, the attribute
// names, and the event ids earlier applies added to its set (a few, up to 255 bytes each).
const ITEM_ALLOWANCE = 2_048;

/**
 * Where responses are kept (SPEC §9): one item per response, written by one conditional
 * UpdateItem per hydration, no read before it. Its steps are its output items, projected from the
 * stored object when read, so a response costs the write units of its own item and no more.
 */
export class ResponseStore {
  readonly #table: Table;
  readonly #retentionS: number;
  readonly #nowMs: () => number;

  constructor(options: {
    client: DynamoDBClient;
    tableName: string;
    retentionDays: number;
    nowMs?: () => number;
  }) {
    this.#table = new Table(options.client, options.tableName);
    this.#retentionS = options.retentionDays * 86_400;
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /** Applies one fetched response with a single conditional write and names what it did. */
  async apply(input: ResponseToApply): Promise<ApplyOutcome> {
    const { response } = input;
    const rank = responseStatusRank(response.status);
    const now = this.#nowMs();
    const promptId = response.prompt?.id ?? null;
    const values: Record<string, AttributeValue> = {
      ":st": { S: response.status },
      ":rk": { N: String(rank) },
      ":terminal": { N: String(TERMINAL_RANK) },
      ":hya": { N: String(input.hydratedAtMs) },
      ":id": { S: response.id },
      ":thr": { S: response.conversation?.id ?? response.id },
      ":asst": { S: promptId ?? response.model },
      ":mdl": { S: response.model },
      ":ca": { N: String(response.created_at) },
      ":now": { N: String(Math.floor(now / 1000)) },
      ":ev": { SS: [input.eventId] },
    };
    const set = [SET];
    if (promptId) {
      set.push(`${n(A.promptId)} = :pid`);
      values[":pid"] = { S: promptId };
    }
    if (response.usage) {
      set.push(`${n(A.promptTokens)} = :pt, ${n(A.completionTokens)} = :ct, ${n(A.totalTokens)} = :tt`);
      values[":pt"] = { N: String(response.usage.input_tokens) };
      values[":ct"] = { N: String(response.usage.output_tokens) };
      values[":tt"] = { N: String(response.usage.total_tokens) };
    }
    if (this.#retentionS > 0) {
      set.push(`${n(A.ttl)} = :ttl`);
      values[":ttl"] = { N: String(Math.floor(now / 1000) + this.#retentionS) };
    }
    if (isTerminalResponseStatus(response.status)) {
      // The outbox entry: a sweeper finds there a transition whose instance died before it
      // recorded its deliveries, as it does for a run step's.
      const shard = shardOf(response.id, TABLE_SCHEMA.responseOutboxShards);
      set.push(`${n(A.outboxShard)} = :ob, ${n(A.appliedAtMs)} = :obt`);
      values[":ob"] = { S: outboxPartition(responseOutboxWord(response.status), shard) };
      values[":obt"] = { S: outboxSortKey(now, response.id) };
      if (input.intents.length > 0) {
        set.push(`${n(A.owedSinks)} = :snk`);
        values[":snk"] = { SS: input.intents.map((intent) => intent.sink) };
      }
    }
    // Last, once every other value is known: the document gets what they leave of the item.
    values[":doc"] = fittedDocument(input.document, response.id, values);
    const update = `SET ${set.join(", ")} ADD ${n(A.eventIds)} :ev`;
    const result = await this.#table.update(
      "applyResponse",
      responseKey(response.id),
      update,
      APPLY_IF,
      values,
      true,
    );
    if (result.ok) return result.old ? "updated" : "created";
    if (rank < TERMINAL_RANK) return "stale";
    // A store that does not return the refused item (dynalite, the local store, does not) is asked.
    // Stryker disable next-line LogicalOperator: the test store never returns it; DynamoDB always does.
    const stored =
      result.old ??
      (await this.#table.get("applyResponse", responseKey(response.id), {
        projection: `${n(A.status)}, ${n(A.statusRank)}`,
      }));
    if (num(stored?.[A.statusRank]) < TERMINAL_RANK) return "stale";
    return stored?.[A.status]?.S === response.status ? "unchanged" : "conflict";
  }

  /** A stored response, or null. */
  async get(id: string): Promise<StoredResponse | null> {
    if (!fitsKey(responseKey(id))) return null;
    const item = await this.#table.get("getResponse", responseKey(id));
    return item ? decodeResponse(item) : null;
  }
}

/** Reads a response item. */
export function decodeResponse(item: Item): StoredResponse {
  const obt = item[A.appliedAtMs]?.S;
  return {
    document: decodeDocument(item),
    status: (item[A.status]?.S ?? "queued") as ResponseStatus,
    receivedAt: num(item[A.receivedAt]),
    updatedAt: num(item[A.updatedAt]),
    hydratedAtMs: num(item[A.hydratedAt]),
    eventIds: [...(item[A.eventIds]?.SS ?? [])].sort(),
    owedSinks: [...(item[A.owedSinks]?.SS ?? [])].sort(),
    terminalAtMs: obt ? numOrNull({ N: obt.slice(0, 13) }) : null,
  };
}

// The stored form of a response that always fits its item: whole (deflated) when it can, else
// with its output summarised, else reduced to how it ended (see fit-response-document.ts).
// The limit is what the write's other values leave: the longest ids, model and many owed sinks
// take several KB, which a fixed allowance once let a document just under it push past 400 KB.
function fittedDocument(
  document: Record<string, unknown>,
  id: string,
  values: Readonly<Record<string, AttributeValue>>,
): AttributeValue {
  const others = Object.values(values).reduce((sum, value) => sum + valueSize(value), 0);
  const limit = MAX_ITEM_BYTES - ITEM_ALLOWANCE - utf8Length(responseKey(id)) - others;
  const whole = encodeDocument(document);
  if (valueSize(whole) <= limit) return whole;
  const bytes = valueSize({ S: JSON.stringify(document) });
  const summarised = encodeDocument(truncatedResponse(document, bytes));
  if (valueSize(summarised) <= limit) return summarised;
  return encodeDocument(minimalResponse(document, bytes));
}
