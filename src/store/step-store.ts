import type { DeliveryIntent } from "../domain/delivery.js";
import type { RunStep, RunStepStatus, TerminalStatus } from "../domain/run-step-schema.js";
import type { ApplyOutcome } from "../domain/state-rules.js";

/** One snapshot to apply, as the ingest path hands it to the store. */
export interface SnapshotToApply {
  readonly step: RunStep;
  /** The step exactly as received, unknown fields included. */
  readonly document: Record<string, unknown>;
  /** `webhook-timestamp` of the delivery, Unix seconds. */
  readonly sentAt: number;
  /** When we received it, Unix seconds. */
  readonly receivedAt: number;
  /** Notifications owed if this snapshot is the step's terminal transition. */
  readonly intents: readonly DeliveryIntent[];
}

/** A step as stored. */
export interface StoredStep {
  readonly document: Record<string, unknown>;
  readonly status: RunStepStatus;
  readonly receivedAt: number;
  readonly updatedAt: number;
  readonly conflicts: number;
  /** The sinks its terminal transition owes a notification, by name. */
  readonly owedSinks: readonly string[];
  /** Unix ms the stalled-step watchdog found it stalled; null when it never did. */
  readonly stalledAtMs: number | null;
}

/** A page of a list, with an opaque cursor for the next one. */
export interface Page<T> {
  readonly items: readonly T[];
  readonly nextCursor: string | null;
}

/** Counts and token sums of a run's steps, each step counted once. */
export interface RunRollup {
  readonly runId: string;
  readonly threadId: string;
  readonly assistantId: string;
  readonly steps: Record<"total" | RunStepStatus, number>;
  readonly usage: {
    readonly prompt_tokens: number;
    readonly completion_tokens: number;
    readonly total_tokens: number;
  };
  readonly firstCreatedAt: number;
  readonly lastUpdatedAt: number;
}

/** Which terminal steps to list across runs, newest first. */
export interface TerminalStepQuery {
  readonly statuses: readonly TerminalStatus[];
  /** Unix ms: when stepwatch applied the terminal status, both ends included. */
  readonly sinceMs: number;
  readonly untilMs: number;
  readonly assistantId?: string | undefined;
  readonly limit: number;
  readonly cursor: string | null;
}

/** What applying a snapshot did. */
export interface AppliedSnapshot {
  readonly outcome: ApplyOutcome;
  /** Unix ms the watchdog had found the step stalled, when a terminal snapshot ends a stalled step. */
  readonly stalledAtMs: number | null;
}

/** An in-progress step the watchdog is due to look at. */
export interface WatchedStep {
  readonly stepId: string;
  /** Unix ms it is due (first seen in progress + STALL_AFTER_S): its position in its partition. */
  readonly dueMs: number;
}

/** Where steps are kept. Implementations enforce the state rules with conditional writes. */
export interface StepStore {
  /** Applies one snapshot with a single conditional write and names what it did. */
  apply(snapshot: SnapshotToApply): Promise<AppliedSnapshot>;
  getStep(stepId: string): Promise<StoredStep | null>;
  /** Several steps at once (strongly consistent), by id; the ones not stored are absent. */
  getSteps(stepIds: readonly string[]): Promise<Map<string, StoredStep>>;
  listRunSteps(runId: string, limit: number, cursor: string | null): Promise<Page<StoredStep>>;
  getRunRollup(runId: string): Promise<RunRollup | null>;
  /** Terminal steps across runs, newest first (by when their terminal status was applied). */
  listTerminal(query: TerminalStepQuery): Promise<Page<StoredStep>>;
  /** Resolves when the table is reachable. */
  ping(): Promise<void>;
}

/** What the stalled-step watchdog needs of the store (SPEC-silent: README, "Stalled steps"). */
export interface StallStore {
  /**
   * Watched steps of one partition due in `(watermark, upToMs]`, oldest first, at most `limit`,
   * continuing after `after` (the last step of the previous page) when given; `watermark` is the
   * partition's, as {@link watermark} read it. Many steps can share one due time, so a page ends
   * anywhere among them: only `after` says where the next one starts.
   */
  dueForWatch(
    shard: number,
    watermark: number,
    upToMs: number,
    limit: number,
    after: WatchedStep | null,
  ): Promise<WatchedStep[]>;
  /** The partition's watermark: every watched step due at or before it has been looked at. */
  watermark(shard: number): Promise<number>;
  /** Moves the watermark from `from` to `to`; false when another sweeper moved it first. */
  advanceWatermark(shard: number, from: number, to: number): Promise<boolean>;
  /**
   * Marks a step stalled at `atMs` if it is still in progress and not marked yet; true only for
   * the one caller that marked it, however many race.
   */
  markStalled(stepId: string, atMs: number): Promise<boolean>;
}
