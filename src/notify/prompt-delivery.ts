import { type DeliveryIntent, newDelivery } from "../domain/delivery.js";
import { describeError, type Logger } from "../observability/logger.js";
import type { DeliveryStore } from "../store/delivery-store.js";
import type { DeliveryAttempts } from "./delivery-attempts.js";
import type { HealthTracker } from "./health-tracker.js";
import type { AppliedTransition } from "./notifier.js";
import type { Sink } from "./sink.js";
import type { SinkLanes } from "./sink-lanes.js";
import { subjectLogFields } from "./subject-log-fields.js";

/** Prompt attempts waiting for one sink beyond this are left to the sweeper instead of queueing in memory. */
const MAX_WAITING_PER_SINK = 1_000;

/** What a {@link PromptDelivery} works with. */
export interface PromptDeliveryOptions {
  readonly sinks: ReadonlyMap<string, Sink>;
  readonly deliveries: DeliveryStore;
  readonly logger: Logger;
  readonly lanes: SinkLanes;
  readonly health: HealthTracker;
  readonly attempts: DeliveryAttempts;
  /** Clock in Unix ms. */
  readonly nowMs: () => number;
}

/**
 * The first attempts of a just-applied transition's deliveries, from the instance that applied it,
 * each in its sink's lane, then each delivery recorded. What it does not attempt (a failing or
 * disabled sink, a full lane, a shutdown) it records pending for a sweep.
 */
export class PromptDelivery {
  readonly #o: PromptDeliveryOptions;

  constructor(options: PromptDeliveryOptions) {
    this.#o = options;
  }

  /** Delivers the transition's notifications, starting on the next turn of the event loop; never rejects. */
  deliver(transition: AppliedTransition): Promise<unknown> {
    // Started on the next turn of the event loop, so the webhook's answer goes out first.
    return nextTurn().then(() =>
      Promise.all(transition.intents.map((intent) => this.#deliverPromptly(transition, intent))),
    );
  }

  async #deliverPromptly(transition: AppliedTransition, intent: DeliveryIntent): Promise<void> {
    const { subject, document, ref } = transition;
    const fresh = newDelivery(intent, ref, this.#o.nowMs());
    const sink = this.#o.sinks.get(intent.sink);
    try {
      const lane = this.#o.lanes.lane(intent.sink);
      const health = await this.#o.health.get(intent.sink);
      // A failing or disabled sink is not attempted here: the delivery waits for its probe or its
      // enabling. Nor is one whose lane is full: the sweeper takes it, rather than memory piling up.
      if (!sink || health.state !== "healthy" || lane.pendingCount >= MAX_WAITING_PER_SINK) {
        await this.#o.deliveries.create(fresh);
        return;
      }
      await lane(async () => {
        // Shutting down, or the sink turned failing or disabled while this waited for the lane:
        // record it pending rather than attempt it now.
        // Stryker disable next-line OptionalChaining: health.get() above remembered this sink before resolving, and nothing forgets one; `?.` is for the type.
        if (this.#o.lanes.closing || this.#o.health.known(intent.sink)?.state !== "healthy") {
          await this.#o.deliveries.create(fresh);
          return;
        }
        const notification = {
          event: intent.event,
          subjectId: ref.id,
          subject,
          document,
          stalledAtMs: transition.stalledAtMs ?? null,
        };
        const after = await this.#o.attempts.attempt(sink, fresh, notification, false, {
          request_id: transition.requestId,
        });
        if (!(await this.#o.deliveries.create(after))) {
          // Only when this instance was so slow that the outbox recovery already recorded it.
          this.#o.logger.warn("delivery was recorded by a sweeper meanwhile", {
            request_id: transition.requestId,
            ...subjectLogFields(ref.kind, ref.id),
            sink: intent.sink,
          });
        }
      });
    } catch (error) {
      // The outbox still lists this transition: a sweeper records it after the prompt lease.
      this.#o.logger.error("could not record delivery attempt", {
        request_id: transition.requestId,
        ...subjectLogFields(ref.kind, ref.id),
        sink: intent.sink,
        error: describeError(error),
      });
    }
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
