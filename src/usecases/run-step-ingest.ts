import {
  isQuarantineId,
  type QuarantinedRequest,
  type Refusal,
  type Replay,
} from "../domain/quarantined-request.js";
import { parseRunStepEvent } from "../domain/run-step-event.js";
import { isTerminalStatus, type RunStepStatus } from "../domain/run-step-schema.js";
import type { ApplyOutcome } from "../domain/state-rules.js";
import { RUN_STEP_KIND } from "../domain/subjects/run-step-kind.js";
import type { Notifier } from "../notify/notifier.js";
import type { Logger } from "../observability/logger.js";
import type { QuarantineStore } from "../store/quarantine-store.js";
import type { AppliedSnapshot, Page, StepStore } from "../store/step-store.js";
import { ItemTooLargeError } from "../store/store-errors.js";
import { keepRefused, readJsonBody, refusal, type SignedRequest } from "./keep-refused.js";

export type { SignedRequest } from "./keep-refused.js";

/** What became of a body: applied to its step, acknowledged (a delta), or refused. */
export type IngestResult =
  | {
      readonly kind: "applied";
      readonly stepId: string;
      readonly runId: string;
      readonly status: RunStepStatus;
      readonly outcome: ApplyOutcome;
      /** The prompt notifications it set off; they run after the answer. */
      readonly notifications: Promise<void> | null;
    }
  | { readonly kind: "ignored"; readonly stepId: string }
  | { readonly kind: "refused"; readonly refusal: Refusal };

/** A refused signed request: its refusal and where it is kept. */
export type IngestAnswer =
  | Exclude<IngestResult, { kind: "refused" }>
  | { readonly kind: "refused"; readonly refusal: Refusal; readonly quarantineId: string };

/** What a replay of a quarantined request did. */
export type ReplayResult =
  | { readonly kind: "replayed"; readonly result: Exclude<IngestResult, { kind: "refused" }> }
  | { readonly kind: "not_found" }
  | { readonly kind: "already_replayed" }
  /** Today's rules still refuse it; the record stays. */
  | { readonly kind: "refused"; readonly refusal: Refusal };

/** What ingest needs. */
export interface RunStepIngestDeps {
  readonly store: StepStore;
  readonly quarantine: QuarantineStore;
  readonly logger: Logger;
  /** Fans out notifications; absent, terminal transitions notify no one. */
  readonly notifier?: Notifier | undefined;
  /** Days a refused signed request is kept. */
  readonly quarantineDays: number;
  readonly nowMs?: () => number;
}

/**
 * Ingest of a run step event (SPEC §3) and replay of quarantined requests, between the HTTP edge
 * (which checks the media type, size and signature) and the stores. A signed body that is refused
 * is kept in the quarantine before the refusal is answered: what a trusted sender signed is never
 * lost, and its sender's retries of the same message are one record.
 */
export class RunStepIngest {
  readonly #deps: RunStepIngestDeps;
  readonly #nowMs: () => number;

  constructor(deps: RunStepIngestDeps) {
    this.#deps = deps;
    this.#nowMs = deps.nowMs ?? Date.now;
  }

  /** Validates and applies a signed body; a refused one is quarantined (a store failure throws). */
  async ingest(request: SignedRequest): Promise<IngestAnswer> {
    const result = await this.#apply(request.body, request.timestamp, request.requestId);
    if (result.kind !== "refused") return result;
    const { quarantine, quarantineDays } = this.#deps;
    const id = await keepRefused(quarantine, request, result.refusal, quarantineDays, this.#nowMs());
    return { ...result, quarantineId: id };
  }

  /** Quarantined requests, newest first. */
  list(limit: number, cursor: string | null): Promise<Page<QuarantinedRequest>> {
    return this.#deps.quarantine.list(limit, cursor);
  }

  /** A quarantined request with its raw body; null when there is none. */
  async inspect(id: string): Promise<{ record: QuarantinedRequest; body: Uint8Array } | null> {
    if (!isQuarantineId(id)) return null;
    const [record, body] = await Promise.all([this.#deps.quarantine.get(id), this.#deps.quarantine.body(id)]);
    return record && body ? { record, body } : null;
  }

  /** How many requests the quarantine holds, counting at most `max`. */
  countQuarantined(max: number): Promise<number> {
    return this.#deps.quarantine.count(max);
  }

  /** Deletes a quarantined request; false when there was none. */
  discard(id: string): Promise<boolean> {
    return isQuarantineId(id) ? this.#deps.quarantine.delete(id) : Promise.resolve(false);
  }

  /**
   * Re-validates a quarantined request with today's rules and, when they accept it, applies it with
   * its original `webhook-timestamp`, as if it had arrived then. Replayed once: a second replay, or
   * one racing it, is told so (applying twice would be harmless anyway: the state rules see to it).
   */
  async replay(id: string, requestId: string): Promise<ReplayResult> {
    const { quarantine } = this.#deps;
    const found = await this.inspect(id);
    if (!found) return { kind: "not_found" };
    const { record, body } = found;
    if (record.replay) return { kind: "already_replayed" };
    const result = await this.#apply(body, record.webhookTimestamp, requestId);
    if (result.kind === "refused") return { kind: "refused", refusal: result.refusal };
    const replay: Replay = {
      atMs: this.#nowMs(),
      stepId: result.stepId,
      outcome: result.kind === "applied" ? result.outcome : "ignored",
    };
    if (!(await quarantine.markReplayed(record, replay))) {
      // Another replay marked it first, or it was deleted meanwhile.
      return (await quarantine.get(id)) ? { kind: "already_replayed" } : { kind: "not_found" };
    }
    return { kind: "replayed", result };
  }

  async #apply(body: Uint8Array, sentAt: number, requestId: string): Promise<IngestResult> {
    const read = readJsonBody(body);
    if (!read.ok) return { kind: "refused", refusal: read.refusal };
    const parsed = parseRunStepEvent(read.json);
    if (!parsed.ok) return refused(422, "invalid_payload", "not a valid run step event", parsed.issues);
    const { event } = parsed;
    if (event.kind === "delta") return { kind: "ignored", stepId: event.stepId };

    const { step, document } = event;
    const { notifier, store, logger } = this.#deps;
    // Only a terminal snapshot can owe notifications: the subject is read for routing only then.
    const subject = notifier && isTerminalStatus(step.status) ? RUN_STEP_KIND.view(document) : null;
    const intents = notifier && subject ? notifier.intentsFor(subject, step.status) : [];
    let applied: AppliedSnapshot;
    try {
      applied = await store.apply({
        step,
        document,
        sentAt,
        receivedAt: Math.floor(this.#nowMs() / 1000),
        intents,
      });
    } catch (error) {
      if (!(error instanceof ItemTooLargeError)) throw error;
      // Numbers are stored in canonical form, so a body under MAX_BODY_BYTES can still be too large.
      return refused(413, "payload_too_large", `${error.message} (numbers are stored in canonical form)`);
    }
    const { outcome, stalledAtMs } = applied;
    if (outcome === "conflict") {
      logger.warn("conflicting terminal status ignored", {
        request_id: requestId,
        step_id: step.id,
        status: step.status,
      });
    }
    const notifies = notifier && intents.length > 0 && (outcome === "created" || outcome === "updated");
    return {
      kind: "applied",
      stepId: step.id,
      runId: step.run_id,
      status: step.status,
      outcome,
      notifications:
        notifies && subject
          ? notifier.deliverPrompt({
              ref: { kind: "run_step", id: step.id, runId: step.run_id },
              subject,
              document,
              intents,
              requestId,
              stalledAtMs,
            })
          : null,
    };
  }
}

function refused(...args: Parameters<typeof refusal>): IngestResult {
  return { kind: "refused", refusal: refusal(...args) };
}
