import type { AttemptResult } from "../domain/retry-policy.js";
import { FAILING_AFTER, probeDelayMs, type SinkHealth } from "../domain/sink-health.js";
import type { SinkHealthStore } from "../store/delivery-store.js";

/** How long an instance trusts the sink health it read for prompt decisions. */
const HEALTH_CACHE_MS = 1_000;
/** A healthy sink's "last success" is written at most this often per instance (each write costs a unit). */
const SUCCESS_WRITE_EVERY_MS = 10_000;

/** What a {@link HealthTracker} works with. */
export interface HealthTrackerOptions {
  readonly store: SinkHealthStore;
  /** Clock in Unix ms. */
  readonly nowMs: () => number;
}

/**
 * Each sink's health as this instance knows it: read from the store at most once per sink at a
 * time and trusted for a moment, and recorded after every attempt, with a healthy sink's successes
 * written only now and then (each write costs a unit).
 */
export class HealthTracker {
  readonly #store: SinkHealthStore;
  readonly #nowMs: () => number;
  readonly #health = new Map<string, { health: SinkHealth; readAtMs: number }>();
  readonly #reads = new Map<string, Promise<SinkHealth>>();
  readonly #successWrittenAt = new Map<string, number>();
  /** Sinks with a counted failure since this instance last wrote a success. */
  readonly #failedSince = new Set<string>();

  constructor(options: HealthTrackerOptions) {
    this.#store = options.store;
    this.#nowMs = options.nowMs;
  }

  /** The sink's health, at most `maxAgeMs` (a second by default) old. */
  async get(sink: string, maxAgeMs = HEALTH_CACHE_MS): Promise<SinkHealth> {
    // 0 asks for the store's word now (a sweep under its lease): neither a cached read from the same
    // millisecond nor one that started earlier and is still in flight.
    if (maxAgeMs === 0) return this.remember(await this.#store.get(sink));
    const cached = this.#health.get(sink);
    if (cached && this.#nowMs() - cached.readAtMs <= maxAgeMs) return cached.health;
    // One read at a time per sink: a burst of terminal events shares it instead of each reading.
    let read = this.#reads.get(sink);
    if (!read) {
      read = this.#store.get(sink).then((health) => this.remember(health));
      this.#reads.set(sink, read);
      const done = () => this.#reads.delete(sink);
      read.then(done, done);
    }
    return read;
  }

  /** The sink's health as last read or recorded here, however old; undefined before the first. */
  known(sink: string): SinkHealth | undefined {
    // Stryker disable next-line OptionalChaining: its callers ask only after a read of the sink's health, which remembered it; `?.` is for the type.
    return this.#health.get(sink)?.health;
  }

  /** Notes a sink's health as it stands now (read, recorded, or changed elsewhere); returns it. */
  remember(health: SinkHealth): SinkHealth {
    this.#health.set(health.name, { health, readAtMs: this.#nowMs() });
    return health;
  }

  /** Records what an attempt to the sink (a probe when `probe`) came to, ended at `atMs`. */
  async record(sink: string, result: AttemptResult, atMs: number, probe: boolean): Promise<void> {
    const store = this.#store;
    if (result.ok) {
      const known = this.#health.get(sink)?.health;
      const quiet =
        known?.state === "healthy" && known.consecutiveFailures === 0 && !this.#failedSince.has(sink);
      const writtenAt = this.#successWrittenAt.get(sink);
      if (quiet && writtenAt !== undefined && atMs - writtenAt < SUCCESS_WRITE_EVERY_MS) return;
      this.#successWrittenAt.set(sink, atMs);
      this.#failedSince.delete(sink);
      this.remember(await store.recordSuccess(sink, result.status ?? null, atMs));
      return;
    }
    if (result.gone) {
      this.remember(await store.disable(sink, `the endpoint answered ${result.error}`));
      return;
    }
    // Noted before the write returns: a success meanwhile must reset the count, not be skipped.
    if (result.retryable) this.#failedSince.add(sink);
    // Stryker disable next-line OptionalChaining: a probe follows the sweep's read of this sink's health, so it is remembered.
    const level = probe ? (this.#health.get(sink)?.health.probeLevel ?? 0) + 1 : 0;
    // Only retryable failures say the sink is down; a 4xx is the receiver refusing one message.
    const health = await store.recordFailure(
      sink,
      { status: result.status ?? null, error: result.error, atMs },
      {
        failingAfter: FAILING_AFTER,
        nextProbeAtMs: atMs + probeDelayMs(level),
        probe,
        counts: result.retryable,
      },
    );
    this.remember(health);
  }
}
