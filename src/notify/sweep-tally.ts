import type { Delivery } from "../domain/delivery.js";

/** What a sweep did so far: every attempt counts once, under exactly one outcome. */
export class SweepTally {
  /** Attempts made (probes included). */
  attempts = 0;
  delivered = 0;
  /** Failed and scheduled again. */
  retrying = 0;
  dead = 0;
  /** Answered `410 Gone`: the sink is disabled and the delivery parked. */
  parked = 0;
  /** Attempts that were probes of a failing sink. */
  probes = 0;

  /** The counts of these tallies added up. */
  static sum(tallies: readonly SweepTally[]): SweepTally {
    const total = new SweepTally();
    for (const tally of tallies) {
      total.attempts += tally.attempts;
      total.delivered += tally.delivered;
      total.retrying += tally.retrying;
      total.dead += tally.dead;
      total.parked += tally.parked;
      total.probes += tally.probes;
    }
    return total;
  }

  /** Counts one attempt under the outcome `after` (the delivery after it) shows. */
  count(after: Delivery): void {
    this.attempts++;
    if (after.state === "delivered") this.delivered++;
    else if (after.state === "dead") this.dead++;
    // Stryker disable next-line OptionalChaining: a pending delivery after an attempt always has that attempt in its log.
    else if (after.log.at(-1)?.status === 410) this.parked++;
    else this.retrying++;
  }
}
