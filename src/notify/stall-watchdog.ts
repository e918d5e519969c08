import { newDelivery } from "../domain/delivery.js";
import { selectStallIntents } from "../domain/notification-routing.js";
import { shuffled } from "../domain/shuffled.js";
import type { SinkConfig } from "../domain/sink-config-schema.js";
import { RUN_STEP_KIND } from "../domain/subjects/run-step-kind.js";
import type { Logger } from "../observability/logger.js";
import type { DeliveryStore } from "../store/delivery-store.js";
import type { StallStore, StepStore, StoredStep, WatchedStep } from "../store/step-store.js";
import { TABLE_SCHEMA } from "../store/table-schema.js";

/** What the watchdog needs. */
export interface StallWatchdogOptions {
  readonly steps: StallStore & Pick<StepStore, "getStep" | "getSteps">;
  readonly deliveries: DeliveryStore;
  readonly sinkConfigs: readonly SinkConfig[];
  /** STALL_AFTER_S; 0 turns the watchdog off. */
  readonly stallAfterS: number;
  readonly logger: Logger;
  readonly nowMs?: () => number;
}

/** What one watchdog run did. */
export interface WatchReport {
  /** Watched steps looked at (due, whatever they turned out to be). */
  readonly checked: number;
  /** Steps this run found stalled and marked. */
  readonly stalled: number;
  /** Stall notices it recorded (pending, for the sinks' sweeps to deliver). */
  readonly notices: number;
}

const PAGE = 100;
const SHARDS = Array.from({ length: TABLE_SCHEMA.watchShards }, (_, i) => i);

/**
 * The stalled-step watchdog. A step's first in_progress apply puts it in a watch partition, due
 * STALL_AFTER_S later (in the same write: nothing more per event). A run reads each partition from
 * its watermark up to now: a step still in progress is marked stalled by a conditional write, so
 * exactly one sweeper wins however many race, and a `run_step.stalled` notice is recorded for each
 * subscribed sink, keyed so that it exists once. Recording is idempotent and the watermark moves
 * only after it, so a sweeper that dies midway leaves the rest to the next run.
 */
export class StallWatchdog {
  readonly #o: StallWatchdogOptions;
  readonly #nowMs: () => number;
  #closing = false;

  constructor(options: StallWatchdogOptions) {
    this.#o = options;
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /** For a shutdown: runs stop at their next page; what they leave, the next run does. */
  close(): void {
    this.#closing = true;
  }

  /** Looks at every watched step now due, until done or `deadlineMs`. */
  async run(deadlineMs = Number.POSITIVE_INFINITY): Promise<WatchReport> {
    const report = { checked: 0, stalled: 0, notices: 0 };
    if (this.#o.stallAfterS === 0) return report;
    for (const shard of shuffled(SHARDS)) {
      if (this.#closing || this.#nowMs() >= deadlineMs) break;
      await this.#watchShard(shard, deadlineMs, report);
    }
    if (report.stalled > 0 || report.notices > 0) this.#o.logger.info("stalled steps", { ...report });
    return report;
  }

  async #watchShard(
    shard: number,
    deadlineMs: number,
    report: { -readonly [K in keyof WatchReport]: number },
  ) {
    const { steps } = this.#o;
    const from = await steps.watermark(shard);
    const upTo = this.#nowMs();
    let mark = from;
    let after: WatchedStep | null = null;
    while (!this.#closing && this.#nowMs() < deadlineMs) {
      const due = await steps.dueForWatch(shard, from, upTo, PAGE, after);
      const last = due.at(-1);
      if (!last) {
        // The previous page was full and nothing followed: its last due time is done too.
        // Stryker disable next-line ConditionalExpression,EqualityOperator: after a full page the watermark is below its last due time, so this holds whenever after is set.
        if (after && after.dueMs > mark) await steps.advanceWatermark(shard, mark, after.dueMs);
        return;
      }
      // One batch read per page rather than a read per step.
      const stored = await steps.getSteps(due.map((watched) => watched.stepId));
      for (const watched of due) {
        const step = stored.get(watched.stepId);
        if (!step) continue;
        report.checked++;
        const outcome = await this.#decide(step);
        report.stalled += outcome.marked ? 1 : 0;
        report.notices += outcome.notices;
      }
      // A full page may end among steps sharing its last due time: the watermark stays just below
      // that time until the rest are read, so a run that dies here leaves none of them unchecked.
      const full = due.length === PAGE;
      const to = full ? last.dueMs - 1 : last.dueMs;
      if (to > mark) {
        // Another sweeper moved the watermark meanwhile: it is working here, so this one stops.
        if (!(await steps.advanceWatermark(shard, mark, to))) return;
        mark = to;
      }
      if (!full) return;
      after = last;
    }
  }

  async #decide(stored: StoredStep): Promise<{ marked: boolean; notices: number }> {
    const now = this.#nowMs();
    let stalledAtMs = stored.stalledAtMs;
    let marked = false;
    if (stored.status === "in_progress" && stalledAtMs === null) {
      marked = await this.#o.steps.markStalled(String(stored.document.id), now);
      stalledAtMs = marked
        ? now
        : ((await this.#o.steps.getStep(String(stored.document.id)))?.stalledAtMs ?? null);
    }
    // Ended in time: nothing to say. Stalled (by this run or an earlier one that may have died
    // before recording its notices): the notices must exist, and creating them twice is a no-op.
    if (stalledAtMs === null) return { marked, notices: 0 };
    // Read leniently, as every delivery is: a step stored under an older schema still stalls.
    const step = RUN_STEP_KIND.view(stored.document);
    let notices = 0;
    for (const intent of selectStallIntents(step, this.#o.sinkConfigs)) {
      const created = await this.#o.deliveries.create(
        newDelivery(intent, { kind: "run_step", id: step.id, runId: step.runId }, now),
      );
      if (created) notices++;
    }
    return { marked, notices };
  }
}
