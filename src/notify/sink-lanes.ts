import pLimit, { type LimitFunction } from "p-limit";

/**
 * Every sink's lane, and the notifier's work in flight across them. A lane is the sink's own
 * concurrency limit, shared by prompt attempts and sweeps in this process: a sink that hangs or fails
 * fills only its own lane, so it never delays another sink or ingest.
 */
export class SinkLanes {
  readonly #concurrency: number;
  readonly #limiters = new Map<string, LimitFunction>();
  readonly #inFlight = new Set<Promise<unknown>>();
  #closing = false;

  /** @param concurrency attempts in flight to one sink from this process, prompt and sweep together. */
  constructor(concurrency: number) {
    this.#concurrency = concurrency;
  }

  /** The sink's lane, made on first use. */
  lane(sink: string): LimitFunction {
    let lane = this.#limiters.get(sink);
    if (!lane) {
      lane = pLimit(this.#concurrency);
      this.#limiters.set(sink, lane);
    }
    return lane;
  }

  /** Counts `task` as in flight until it settles (see {@link drain}); returns it. */
  track<T>(task: Promise<T>): Promise<T> {
    this.#inFlight.add(task);
    const done = () => this.#inFlight.delete(task);
    task.then(done, done);
    return task;
  }

  /** Resolves when every task tracked so far has settled, those tracked meanwhile included. */
  async drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** Winds down for a shutdown: from now on, work waiting for a lane is left for a later sweep. */
  close(): void {
    this.#closing = true;
  }

  /** Whether {@link close} was called. */
  get closing(): boolean {
    return this.#closing;
  }
}
