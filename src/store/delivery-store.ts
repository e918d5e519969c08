import type { Delivery, DeliveryRef, DeliveryState } from "../domain/delivery.js";
import type { SinkHealth } from "../domain/sink-health.js";
import type { SubjectKindName } from "../domain/subject.js";
import type { Page } from "./step-store.js";

/** A delivery the queue index shows as due. */
export interface DueDelivery extends DeliveryRef {
  readonly dueMs: number;
}

/** Which subject a notification is rendered from. */
export interface SubjectKey {
  readonly kind: SubjectKindName;
  readonly subjectId: string;
}

/**
 * A subject's stored document, as a notification is rendered from it: a terminal step or response
 * (which never changes again), or the snapshot an agent session's event was hydrated with.
 */
export interface SubjectDocument {
  readonly document: Record<string, unknown>;
  /** Unix ms the watchdog found the subject stalled; null when it never did. */
  readonly stalledAtMs: number | null;
}

/** The map key of a subject in {@link DeliveryStore.subjects}' answer. */
export const subjectKeyOf = (ref: SubjectKey): string => `${ref.kind}:${ref.subjectId}`;

/** A terminal transition whose deliveries the outbox recovery wrote because nobody else had. */
export interface RecoveryReport {
  /** Outbox entries looked at. */
  readonly checked: number;
  /** Deliveries written as pending, due now. */
  readonly recovered: number;
}

/** A sink's backlog, read from the queue index. */
export interface SinkBacklog {
  readonly pending: number;
  readonly dead: number;
  /** Unix ms the oldest pending delivery was created; null without any. */
  readonly oldestPendingCreatedMs: number | null;
}

/**
 * Where deliveries are kept: one small item per (step, sink), written whole and conditionally, so
 * a delivery's bookkeeping never rewrites its step and sinks never wait on each other's writes.
 */
export interface DeliveryStore {
  /** Writes a delivery that must not exist yet; false when one already does. */
  create(delivery: Delivery): Promise<boolean>;
  /**
   * Replaces the stored delivery with `next` if it is still at `next.version - 1` (the version its
   * writer read); false when someone changed it since.
   */
  replace(next: Delivery): Promise<boolean>;
  get(ref: DeliveryRef): Promise<Delivery | null>;
  /** Reads deliveries by (step, sink, kind), consistently; missing ones are left out. */
  getMany(refs: readonly DeliveryRef[]): Promise<Delivery[]>;
  /** The stored documents of these subjects, consistently read, by {@link subjectKeyOf}. */
  subjects(refs: readonly SubjectKey[]): Promise<Map<string, SubjectDocument>>;
  /**
   * A sink's deliveries due at `nowMs` in one queue shard, oldest due first; `after` continues
   * from the last one of the previous page.
   */
  findDue(
    sink: string,
    shard: number,
    nowMs: number,
    limit: number,
    after?: DueDelivery,
  ): Promise<DueDelivery[]>;
  /**
   * Takes a lease (queue shard, probe) until `untilMs` if nobody holds it at `nowMs`; returns the
   * held version, or null when another instance holds it.
   */
  acquireLease(key: string, untilMs: number, nowMs: number): Promise<number | null>;
  /** Gives a lease back early (only if still held at `version`). */
  releaseLease(key: string, version: number): Promise<void>;
  /** How many queue partitions each sink's deliveries are spread over. */
  readonly queueShards: number;
  /** The lease key of one of a sink's queue partitions (held by the sweeper draining it). */
  shardLease(sink: string, shard: number): string;
  /** The lease key of a failing sink's probe (one probe at a time across instances). */
  probeLease(sink: string): string;
  /** Pending or dead deliveries of the given sinks, page by page. */
  list(
    state: Exclude<DeliveryState, "delivered">,
    sinks: readonly string[],
    limit: number,
    cursor: string | null,
  ): Promise<Page<Delivery>>;
  /** A sink's dead deliveries that died within `[sinceMs, untilMs]`, at most `limit`. */
  deadBetween(sink: string, sinceMs: number, untilMs: number, limit: number): Promise<Delivery[]>;
  /** How many deliveries a sink has pending and dead, and how old the oldest pending one is. */
  backlog(sink: string): Promise<SinkBacklog>;
  /**
   * Makes sure every terminal transition applied before `upToMs` has its deliveries recorded:
   * those that do not (their instance died before the first attempt settled) are written as
   * pending, due at `nowMs`. Works through the outbox from a watermark, until `deadlineMs`.
   */
  recoverOutbox(upToMs: number, nowMs: number, deadlineMs: number): Promise<RecoveryReport>;
}

/** Where sink health is kept: one item per sink, shared by every instance. */
export interface SinkHealthStore {
  get(sink: string): Promise<SinkHealth>;
  /** A delivered attempt: failures reset, a failing sink healthy again (a disabled one stays so). */
  recordSuccess(sink: string, status: number | null, atMs: number): Promise<SinkHealth>;
  /**
   * A failed attempt, kept as the last failure. One that `counts` (retryable) is one more failure
   * in a row; at `failingAfter` the sink becomes failing, first probed at `nextProbeAtMs`. A failed
   * probe (`probe`) pushes the next probe to `nextProbeAtMs`.
   */
  recordFailure(
    sink: string,
    failure: { status: number | null; error: string; atMs: number },
    options: { failingAfter: number; nextProbeAtMs: number; probe: boolean; counts: boolean },
  ): Promise<SinkHealth>;
  /** Disables the sink: its deliveries are parked until it is enabled. */
  disable(sink: string, reason: string): Promise<SinkHealth>;
  /** Enables the sink again, healthy, failures forgotten. */
  enable(sink: string): Promise<SinkHealth>;
}
