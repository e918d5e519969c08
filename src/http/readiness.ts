/** The answer of `/readyz`, kept for a moment so that a burst of checks costs one store call. */
export interface Readiness {
  /** Resolves when the store answered (now or within the last `ttlMs`), rejects with its error. */
  check(): Promise<void>;
  /** Drops a kept "ready": the store was just seen down, so the next check asks it again. */
  forget(): void;
}

/** How long `/readyz` keeps the store's answer: a second, well under any probe's interval. */
export const READY_CACHE_MS = 1_000;

/**
 * Readiness over `ping` (a DescribeTable): `/readyz` is public, so without this every
 * unauthenticated request would cost a call to the store. Concurrent checks share the one call in
 * flight, and its answer (ready or not) is kept for `ttlMs`; a store error seen by any route
 * drops a kept "ready" (see createApp), so readiness turns to 503 as soon as the store is known to be down.
 */
export function createReadiness(
  ping: () => Promise<void>,
  nowMs: () => number,
  ttlMs = READY_CACHE_MS,
): Readiness {
  let kept: { readonly at: number; readonly answer: Promise<void>; ready: boolean } | null = null;
  return {
    check() {
      const now = nowMs();
      if (kept === null || now - kept.at >= ttlMs || now < kept.at) {
        const entry = { at: now, answer: ping(), ready: false };
        // A kept refusal is awaited by each check; this keeps it from being "unhandled" meanwhile.
        entry.answer.then(
          () => {
            entry.ready = true;
          },
          () => undefined,
        );
        kept = entry;
      }
      return kept.answer;
    },
    forget() {
      // Only a kept "ready" is out of date; a kept refusal already says what the error says.
      if (kept?.ready) kept = null;
    },
  };
}
