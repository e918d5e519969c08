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

/** Where steps are kept. Implementations enforce the state rules with conditional writes. */
export interface StepStore {
  /** Applies one snapshot with a single conditional write and names what it did. */
  apply(snapshot: SnapshotToApply): Promise<ApplyOutcome>;
  getStep(stepId: string): Promise<StoredStep | null>;
  listRunSteps(runId: string, limit: number, cursor: string | null): Promise<Page<StoredStep>>;
  getRunRollup(runId: string): Promise<RunRollup | null>;
  /** Terminal steps across runs, newest first (by when their terminal status was applied). */
  listTerminal(query: TerminalStepQuery): Promise<Page<StoredStep>>;
  /** Resolves when the table is reachable. */
  ping(): Promise<void>;
}
