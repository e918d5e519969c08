import { createWebhookSigner, type WebhookSigner } from "../domain/webhook-signer.js";
import { postJson } from "../notify/post-json.js";
import type { RelayEvent } from "./run-step-events.js";
import type { Spool } from "./spool.js";

/** Why the forwarder stopped: stepwatch refuses every request (wrong secret or URL), or stayed unreachable. */
export class RelayFailedError extends Error {
  override readonly name = "RelayFailedError";
}

/** An event stepwatch refused for good (a 4xx other than 408/429): reported, never retried. */
export interface RefusedEvent {
  readonly id: string;
  readonly stepId: string;
  readonly event: string;
  readonly status: number;
  readonly error: string;
}

/** Counters of one forwarder. */
export interface RelayStats {
  /** Events accepted (on disk, when there is a spool). */
  accepted: number;
  /** Events stepwatch acknowledged with a 2xx. */
  acknowledged: number;
  /** Events stepwatch refused for good. */
  refused: number;
  /** Attempts that failed and were tried again. */
  retries: number;
  /** Events a push source produced while the relay had no room and no spool to take them. */
  dropped: number;
}

/** How the forwarder sends. */
export interface ForwarderOptions {
  /** stepwatch's base URL; events go to `<url>/v1/webhooks/run-steps`. */
  readonly url: string;
  /** The `whsec_…` secret stepwatch verifies (its WEBHOOK_SECRET). */
  readonly secret: string;
  /** Steps sent at once (events of one step are always sent one after another). Default 8. */
  readonly concurrency?: number;
  /** Events held in memory; beyond it accepting waits, or spills to the spool. Default 1000. */
  readonly maxQueued?: number;
  /** Per-attempt time-out. Default 10 s. */
  readonly timeoutMs?: number;
  /** First retry delay, doubled each time up to `maxDelayMs`, with jitter. Default 250 ms. */
  readonly initialDelayMs?: number;
  /** Longest retry delay (and longest `Retry-After` honoured). Default 30 s. */
  readonly maxDelayMs?: number;
  /** Gives up (and stops) when one event has been failing this long. Default: never. */
  readonly giveUpAfterMs?: number;
  /** Keeps accepted events on disk until acknowledged; unsent ones from a previous run go first. */
  readonly spool?: Spool;
  /** Told about each event stepwatch refuses for good. */
  readonly onRefused?: (refused: RefusedEvent) => void;
  /** Told about each failed attempt that will be retried (no secrets in `error`). */
  readonly onRetry?: (event: RelayEvent, error: string, delayMs: number) => void;
  /** Jitter source in [0, 1). */
  readonly random?: () => number;
}

/** Sends relay events to stepwatch, signed, in order per step, with retries. */
export interface Forwarder {
  /**
   * Takes an event; resolves once it is accepted (on disk when there is a spool). Without a spool,
   * waits while `maxQueued` events are in memory: a pulled source is slowed down, not buffered.
   */
  accept(event: RelayEvent): Promise<void>;
  /**
   * Resolves when every event accepted so far is acknowledged or refused; rejects if the forwarder
   * failed, or was closed with events left.
   */
  idle(): Promise<void>;
  /** Whether an event would be held in memory right now without waiting. */
  hasRoom(): boolean;
  readonly stats: Readonly<RelayStats>;
  /** Counts an event a push source had to drop (see forward-run-steps.ts). */
  noteDropped(): void;
  /**
   * Stops sending (what is left stays in the spool) and closes the spool: attempts in flight are
   * waited for, backoffs are not.
   */
  close(): Promise<void>;
}

/** HTTP answers that mean every request would be refused: the URL or the secret is wrong (so do 3xx). */
const FATAL_STATUSES = new Set([401, 403, 404, 405]);

/**
 * Creates a forwarder. Events of one step form a lane sent one event at a time; up to
 * `concurrency` lanes are sent at once, round-robin. Each event is signed afresh at every attempt
 * (a spooled event may be sent hours later, past the signature tolerance) with a `webhook-id` that
 * never changes, so stepwatch sees a redelivery as the same message. Memory holds at most
 * `maxQueued` events; with a spool, what does not fit stays on disk and is read back in order.
 */
export async function createForwarder(options: ForwarderOptions): Promise<Forwarder> {
  const signer: WebhookSigner = await createWebhookSigner(options.secret);
  const endpoint = `${options.url.replace(/\/+$/, "")}/v1/webhooks/run-steps`;
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const maxQueued = Math.max(1, options.maxQueued ?? 1000);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const initialDelayMs = options.initialDelayMs ?? 250;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  const giveUpAfterMs = options.giveUpAfterMs ?? Number.POSITIVE_INFINITY;
  const random = options.random ?? Math.random;
  const spool = options.spool;

  const stats: RelayStats = { accepted: 0, acknowledged: 0, refused: 0, retries: 0, dropped: 0 };
  const lanes = new Map<string, RelayEvent[]>();
  const ready: string[] = [];
  let queued = 0;
  let running = 0;
  let appending = 0;
  let failure: RelayFailedError | null = null;
  let closed = false;
  // With a spool: the offset of the first record not yet in memory, or null when all of it is.
  let spillFrom: number | null = spool && spool.durableEnd > 0 ? 0 : null;
  let refilling: Promise<void> | null = null;
  const roomWaiters: Array<() => void> = [];
  const idleWaiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  const sleepers = new Set<{ timer: ReturnType<typeof setTimeout>; wake: () => void }>();

  // A send counts in `queued` until its event is acknowledged or refused, so no separate check of
  // `running` is needed: nothing is in flight once `queued` is 0.
  const isIdle = () => queued === 0 && appending === 0 && spillFrom === null;
  // The spool's clear() under way: an append waits for it, so a record written meanwhile is never
  // truncated away after being reported on disk.
  let clearing: Promise<void> | null = null;

  const settleIdle = () => {
    if (failure) {
      for (const w of idleWaiters.splice(0)) w.reject(failure);
      return;
    }
    if (!isIdle()) {
      // Closed with events left: they will not be sent by this forwarder.
      if (closed)
        for (const w of idleWaiters.splice(0)) w.reject(new RelayFailedError("the relay was closed"));
      return;
    }
    if (!spool || closed) {
      for (const w of idleWaiters.splice(0)) w.resolve();
      return;
    }
    // Everything is acknowledged: the spool can start again from nothing.
    clearing ??= spool.clear().finally(() => {
      clearing = null;
    });
    clearing.then(
      () => {
        if (isIdle()) for (const w of idleWaiters.splice(0)) w.resolve();
      },
      (error: unknown) => {
        for (const w of idleWaiters.splice(0)) w.reject(error);
      },
    );
  };

  const enqueue = (event: RelayEvent) => {
    let lane = lanes.get(event.stepId);
    if (!lane) {
      lane = [];
      lanes.set(event.stepId, lane);
      ready.push(event.stepId);
    }
    lane.push(event);
    queued++;
    pump();
  };

  const pump = () => {
    // After a failure or close(), deliver() returns at once: the lanes stay as they are.
    while (running < concurrency && ready.length > 0) {
      const stepId = ready.shift() as string;
      running++;
      void sendHead(stepId).finally(() => {
        running--;
        pump();
        settleIdle();
      });
    }
  };

  const sendHead = async (stepId: string) => {
    // A ready step always has a lane with an event in it: a lane is deleted once it is empty.
    const lane = lanes.get(stepId) as RelayEvent[];
    const event = lane[0] as RelayEvent;
    const delivered = await deliver(event);
    if (!delivered) return;
    lane.shift();
    queued--;
    spool?.ack(event.id);
    // The lane goes to the back, so one busy step cannot starve the others.
    if (lane.length > 0) ready.push(stepId);
    else lanes.delete(stepId);
    roomWaiters.shift()?.();
    refill();
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      // Stopped during the attempt (after wakeAll() ran): no backoff to wait out.
      if (failure || closed) {
        resolve();
        return;
      }
      const sleeper = {
        timer: setTimeout(() => {
          sleepers.delete(sleeper);
          resolve();
        }, ms),
        wake: resolve,
      };
      sleepers.add(sleeper);
    });

  /** Sends one event until it is acknowledged or refused (true), or the forwarder stops (false). */
  const deliver = async (event: RelayEvent): Promise<boolean> => {
    let attempt = 0;
    let failingSince: number | null = null;
    for (;;) {
      if (failure || closed) return false;
      const now = Date.now();
      const headers = await signer.sign(event.id, now / 1000, event.body);
      const result = await postJson(endpoint, event.body, { ...headers }, timeoutMs);
      if (result.ok) {
        stats.acknowledged++;
        return true;
      }
      if (!result.retryable) {
        // fetch answers no 1xx and a 2xx is ok: under 400 is a redirect, and no status at all (0) is
        // a request that could not even be built (a URL fetch cannot use), which no event gets past.
        const status = result.status ?? 0;
        if (FATAL_STATUSES.has(status) || status < 400) {
          fail(
            status === 0
              ? `${event.event} for step ${event.stepId} could not be sent (${result.error}): check the URL`
              : `stepwatch refused ${event.event} for step ${event.stepId} with ${result.error}: check the URL and the secret`,
          );
          return false;
        }
        stats.refused++;
        options.onRefused?.({
          id: event.id,
          stepId: event.stepId,
          event: event.event,
          status,
          error: result.error,
        });
        return true;
      }
      failingSince ??= now;
      if (Date.now() - failingSince >= giveUpAfterMs) {
        fail(
          `stepwatch unreachable after ${attempt + 1} attempts over ${Math.round((Date.now() - failingSince) / 1000)} s: ${result.error}`,
        );
        return false;
      }
      const backoff = Math.min(maxDelayMs, initialDelayMs * 2 ** attempt);
      const jittered = backoff * (0.5 + random() / 2);
      const delayMs = Math.round(Math.max(jittered, Math.min(result.retryAfterMs ?? 0, maxDelayMs)));
      attempt++;
      stats.retries++;
      options.onRetry?.(event, result.error, delayMs);
      await sleep(delayMs);
    }
  };

  // Ends every backoff and every wait for room at once: sends and accepts see why and return.
  const wakeAll = () => {
    for (const s of sleepers) {
      clearTimeout(s.timer);
      s.wake();
    }
    sleepers.clear();
    for (const w of roomWaiters.splice(0)) w();
  };

  const fail = (reason: string) => {
    failure ??= new RelayFailedError(reason);
    wakeAll();
    settleIdle();
  };

  /** Reads spilled events back from the spool while memory has room. */
  const refill = () => {
    if (!spool || spillFrom === null || refilling || failure || closed) return;
    const room = maxQueued - queued;
    if (room <= 0) return;
    refilling = (async () => {
      try {
        const from = spillFrom ?? 0;
        const { events, next } = await spool.read(from, room);
        for (const event of events) enqueue(event);
        spillFrom = next >= spool.durableEnd ? null : next;
      } catch (error) {
        fail(`the spool could not be read: ${(error as Error).message}`);
      } finally {
        refilling = null;
      }
      // Records appended while reading are not in `events`: read on (refill stops when nothing is left).
      refill();
      settleIdle();
    })();
  };

  refill();

  return {
    async accept(event) {
      if (failure) throw failure;
      if (closed) throw new RelayFailedError("the relay is closed");
      if (!spool) {
        while (queued >= maxQueued && !failure && !closed) {
          await new Promise<void>((resolve) => roomWaiters.push(resolve));
        }
        if (failure) throw failure;
        if (closed) throw new RelayFailedError("the relay is closed");
        stats.accepted++;
        enqueue(event);
        return;
      }
      appending++;
      try {
        while (clearing) await clearing.catch(() => undefined);
        const start = await spool.append(event);
        stats.accepted++;
        // Order is kept: once something is left on disk, everything after it waits there too.
        if (spillFrom === null && queued < maxQueued) enqueue(event);
        else spillFrom ??= start;
      } finally {
        appending--;
      }
      refill();
      settleIdle();
    },
    idle() {
      return new Promise<void>((resolve, reject) => {
        idleWaiters.push({ resolve, reject });
        settleIdle();
      });
    },
    hasRoom: () => !failure && (spool !== undefined || queued < maxQueued),
    stats,
    noteDropped() {
      stats.dropped++;
    },
    async close() {
      if (closed) return;
      closed = true;
      wakeAll();
      while (running > 0 || refilling) await new Promise((resolve) => setTimeout(resolve, 5));
      settleIdle();
      await spool?.close();
    },
  };
}
