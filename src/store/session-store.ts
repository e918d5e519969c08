import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { AgentSessionObject } from "../domain/openai/agent-session-object.js";
import { decodeDocument, encodeDocument, fitsKey, alias as n, num } from "./item-codec.js";
import { Table } from "./table.js";
import { TABLE_SCHEMA } from "./table-schema.js";

const A = TABLE_SCHEMA.attributes;
const P = TABLE_SCHEMA.prefixes;

/** Key value of an agent session's item. */
export const sessionKey = (id: string) => `${P.session}${id}`;

/** An agent session as stored: the newest fetched object. */
export interface StoredSession {
  readonly document: Record<string, unknown>;
  readonly status: string;
  readonly receivedAt: number;
  readonly updatedAt: number;
  readonly hydratedAtMs: number;
  readonly eventIds: readonly string[];
}

// Sessions cycle (idle, in_progress, requires_action, failed): no status is final, so the newest
// object wins (SPEC §9): the later last_active_at, then, between two fetches of the same moment,
// the later event.
const APPLY_IF = `attribute_not_exists(${n(A.key)}) OR ${n(A.lastActiveAt)} < :lat OR (${n(A.lastActiveAt)} = :lat AND ${n(A.sentAt)} <= :sent)`;
const SET = [
  `${n(A.document)} = :doc`,
  `${n(A.status)} = :st`,
  `${n(A.lastActiveAt)} = :lat`,
  `${n(A.sentAt)} = :sent`,
  `${n(A.hydratedAt)} = :hya`,
  `${n(A.updatedAt)} = :now`,
  `${n(A.receivedAt)} = if_not_exists(${n(A.receivedAt)}, :now)`,
].join(", ");

/**
 * Where agent sessions are kept: one item per session, the newest fetched object, written by one
 * conditional UpdateItem per hydration. What each event's notification carries is the snapshot its
 * own event keeps (OpenAiEventStore), not this item, which moves on.
 */
export class SessionStore {
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

  /**
   * Applies a fetched session if it is newer than the stored one; its event is recorded with the
   * session either way. Whether it was applied.
   */
  async apply(input: {
    readonly session: AgentSessionObject;
    readonly document: Record<string, unknown>;
    readonly eventId: string;
    /** The event's created_at, Unix seconds: breaks ties between fetches of the same moment. */
    readonly eventCreatedAt: number;
    readonly hydratedAtMs: number;
  }): Promise<boolean> {
    const now = Math.floor(this.#nowMs() / 1000);
    const values = {
      ":doc": encodeDocument(input.document),
      ":st": { S: input.session.status },
      ":lat": { N: String(input.session.last_active_at) },
      ":sent": { N: String(input.eventCreatedAt) },
      ":hya": { N: String(input.hydratedAtMs) },
      ":now": { N: String(now) },
      ":ev": { SS: [input.eventId] },
      ...(this.#retentionS > 0 ? { ":ttl": { N: String(now + this.#retentionS) } } : {}),
    };
    const ttl = this.#retentionS > 0 ? `, ${n(A.ttl)} = :ttl` : "";
    const update = `SET ${SET}${ttl} ADD ${n(A.eventIds)} :ev`;
    const result = await this.#table.update(
      "applySession",
      sessionKey(input.session.id),
      update,
      APPLY_IF,
      values,
    );
    if (!result.ok) {
      // An older object is not kept, but its event is listed with the session all the same: a
      // session's item is small, so this costs a write unit where a response's would cost its size.
      const listed = `ADD ${n(A.eventIds)} :ev`;
      await this.#table.update("listSessionEvent", sessionKey(input.session.id), listed, undefined, {
        ":ev": { SS: [input.eventId] },
      });
    }
    return result.ok;
  }

  /** A stored session, or null. */
  async get(id: string): Promise<StoredSession | null> {
    if (!fitsKey(sessionKey(id))) return null;
    const item = await this.#table.get("getSession", sessionKey(id));
    if (!item) return null;
    return {
      document: decodeDocument(item),
      status: item[A.status]?.S ?? "",
      receivedAt: num(item[A.receivedAt]),
      updatedAt: num(item[A.updatedAt]),
      hydratedAtMs: num(item[A.hydratedAt]),
      eventIds: [...(item[A.eventIds]?.SS ?? [])].sort(),
    };
  }
}
