import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Delivery, DeliveryRef } from "../domain/delivery.js";
import { DeliveryLeases } from "./delivery-leases.js";
import { DeliveryQueue } from "./delivery-queue.js";
import { DeliveryRecords } from "./delivery-records.js";
import type {
  DeliveryStore,
  DueDelivery,
  RecoveryReport,
  SinkBacklog,
  SubjectDocument,
  SubjectKey,
} from "./delivery-store.js";
import { probeLeaseKey, shardLeaseKey } from "./item-codec.js";
import { OutboxRecovery } from "./outbox-recovery.js";
import type { Page } from "./step-store.js";
import { Table } from "./table.js";
import { TABLE_SCHEMA } from "./table-schema.js";

/** Settings of the DynamoDB-backed delivery store. */
export interface DynamoDeliveryStoreOptions {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Days a delivery is kept after its last write; 0 keeps it forever. */
  readonly retentionDays: number;
  /** Clock in Unix ms. */
  readonly nowMs?: () => number;
  /** Random source of the order a recovery walks the outbox partitions in (Math.random when absent). */
  readonly random?: () => number;
}

/**
 * {@link DeliveryStore} on DynamoDB. Every delivery write is a whole-item put conditional on the
 * version its writer read, so concurrent writers (sweepers, the prompt path, operators) never
 * overwrite each other's outcome. Each concern is its own piece over one {@link Table}: the
 * delivery records, the queue index, the leases, and the outbox recovery.
 */
export class DynamoDeliveryStore implements DeliveryStore {
  readonly #records: DeliveryRecords;
  readonly #queue: DeliveryQueue;
  readonly #leases: DeliveryLeases;
  readonly #recovery: OutboxRecovery;

  constructor(options: DynamoDeliveryStoreOptions) {
    const table = new Table(options.client, options.tableName);
    const nowMs = options.nowMs ?? Date.now;
    this.#records = new DeliveryRecords(table, { retentionS: options.retentionDays * 86_400, nowMs });
    this.#queue = new DeliveryQueue(table);
    this.#leases = new DeliveryLeases(table);
    this.#recovery = new OutboxRecovery(table, this.#records, { nowMs, random: options.random });
  }

  readonly queueShards = TABLE_SCHEMA.queueShards;

  shardLease(sink: string, shard: number): string {
    return shardLeaseKey(sink, shard);
  }

  probeLease(sink: string): string {
    return probeLeaseKey(sink);
  }

  create(delivery: Delivery): Promise<boolean> {
    return this.#records.create(delivery);
  }

  replace(next: Delivery): Promise<boolean> {
    return this.#records.replace(next);
  }

  get(ref: DeliveryRef): Promise<Delivery | null> {
    return this.#records.get(ref);
  }

  getMany(refs: readonly DeliveryRef[]): Promise<Delivery[]> {
    return this.#records.getMany(refs);
  }

  subjects(refs: readonly SubjectKey[]): Promise<Map<string, SubjectDocument>> {
    return this.#records.subjects(refs);
  }

  findDue(
    sink: string,
    shard: number,
    nowMs: number,
    limit: number,
    after?: DueDelivery,
  ): Promise<DueDelivery[]> {
    return this.#queue.findDue(sink, shard, nowMs, limit, after);
  }

  acquireLease(key: string, untilMs: number, nowMs: number): Promise<number | null> {
    return this.#leases.acquire(key, untilMs, nowMs);
  }

  releaseLease(key: string, version: number): Promise<void> {
    return this.#leases.release(key, version);
  }

  list(
    state: "pending" | "dead",
    sinks: readonly string[],
    limit: number,
    cursor: string | null,
  ): Promise<Page<Delivery>> {
    return this.#queue.list(state, sinks, limit, cursor);
  }

  deadBetween(sink: string, sinceMs: number, untilMs: number, limit: number): Promise<Delivery[]> {
    return this.#queue.deadBetween(sink, sinceMs, untilMs, limit);
  }

  backlog(sink: string): Promise<SinkBacklog> {
    return this.#queue.backlog(sink);
  }

  recoverOutbox(upToMs: number, nowMs: number, deadlineMs: number): Promise<RecoveryReport> {
    return this.#recovery.recoverOutbox(upToMs, nowMs, deadlineMs);
  }
}
