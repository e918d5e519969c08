import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { StallWatchStore } from "./stall-watch-store.js";
import { StepReads } from "./step-reads.js";
import { StepSnapshotWriter } from "./step-snapshot-writer.js";
import type {
  AppliedSnapshot,
  Page,
  RunRollup,
  SnapshotToApply,
  StallStore,
  StepStore,
  StoredStep,
  TerminalStepQuery,
  WatchedStep,
} from "./step-store.js";
import { Table } from "./table.js";
import { TerminalStepListing } from "./terminal-step-listing.js";

/** Settings of the DynamoDB-backed store. */
export interface DynamoStepStoreOptions {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Days a step is kept after its last update; 0 keeps it forever. */
  readonly retentionDays: number;
  /** Clock in Unix ms; injectable for tests. */
  readonly nowMs?: () => number;
  /** STALL_AFTER_S: in-progress steps are watched for this long; 0 (the default) watches none. */
  readonly stallAfterS?: number;
}

/**
 * DynamoDB-backed {@link StepStore} and {@link StallStore}: one conditional UpdateItem per event,
 * no read before it. Each concern is its own piece over one {@link Table}: the snapshot writer
 * (SPEC §4's state rules), the reads of steps and runs, the terminal listing across runs, and the
 * stall watchdog's watch queue.
 */
export class DynamoStepStore implements StepStore, StallStore {
  readonly #table: Table;
  readonly #writer: StepSnapshotWriter;
  readonly #reads: StepReads;
  readonly #terminal: TerminalStepListing;
  readonly #stalls: StallWatchStore;

  constructor(options: DynamoStepStoreOptions) {
    this.#table = new Table(options.client, options.tableName);
    this.#writer = new StepSnapshotWriter(this.#table, {
      retentionS: options.retentionDays * 86_400,
      nowMs: options.nowMs ?? Date.now,
      stallAfterMs: (options.stallAfterS ?? 0) * 1000,
    });
    this.#reads = new StepReads(this.#table);
    this.#terminal = new TerminalStepListing(this.#table);
    this.#stalls = new StallWatchStore(this.#table);
  }

  apply(snapshot: SnapshotToApply): Promise<AppliedSnapshot> {
    return this.#writer.apply(snapshot);
  }

  getStep(stepId: string): Promise<StoredStep | null> {
    return this.#reads.getStep(stepId);
  }

  getSteps(stepIds: readonly string[]): Promise<Map<string, StoredStep>> {
    return this.#reads.getSteps(stepIds);
  }

  listRunSteps(runId: string, limit: number, cursor: string | null): Promise<Page<StoredStep>> {
    return this.#reads.listRunSteps(runId, limit, cursor);
  }

  getRunRollup(runId: string): Promise<RunRollup | null> {
    return this.#reads.getRunRollup(runId);
  }

  listTerminal(query: TerminalStepQuery): Promise<Page<StoredStep>> {
    return this.#terminal.listTerminal(query);
  }

  ping(): Promise<void> {
    return this.#table.ping("ping");
  }

  dueForWatch(
    shard: number,
    watermark: number,
    upToMs: number,
    limit: number,
    after: WatchedStep | null,
  ): Promise<WatchedStep[]> {
    return this.#stalls.dueForWatch(shard, watermark, upToMs, limit, after);
  }

  watermark(shard: number): Promise<number> {
    return this.#stalls.watermark(shard);
  }

  advanceWatermark(shard: number, from: number, to: number): Promise<boolean> {
    return this.#stalls.advanceWatermark(shard, from, to);
  }

  markStalled(stepId: string, atMs: number): Promise<boolean> {
    return this.#stalls.markStalled(stepId, atMs);
  }
}
