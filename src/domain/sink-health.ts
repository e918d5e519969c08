/** Where a sink stands, shared by every instance (SPEC §6). */
export type SinkState = "healthy" | "failing" | "disabled";

/** A sink's health as stored. */
export interface SinkHealth {
  readonly name: string;
  readonly state: SinkState;
  /** Failed attempts in a row, across steps and instances. */
  readonly consecutiveFailures: number;
  readonly lastSuccess: { readonly atMs: number; readonly status: number | null } | null;
  readonly lastFailure: {
    readonly atMs: number;
    readonly status: number | null;
    readonly error: string;
  } | null;
  /** Unix ms of the next probe while failing. */
  readonly nextProbeAtMs: number | null;
  /** Probes that failed in a row: the probe backoff's exponent. */
  readonly probeLevel: number;
  /** Why the sink is disabled: `410 Gone` or an operator. */
  readonly disabledReason: string | null;
  /** Store version. */
  readonly version: number;
}

/** Retryable failures in a row (network, time-out, 5xx, 408, 429) after which a sink is `failing`. */
export const FAILING_AFTER = 5;

const FIRST_PROBE_MS = 5_000;
const LONGEST_PROBE_MS = 300_000;

/** How long a failing sink waits before its next probe: 5 s, doubling per failed probe, at most 5 min. */
export function probeDelayMs(probeLevel: number): number {
  return Math.min(FIRST_PROBE_MS * 2 ** Math.max(0, probeLevel), LONGEST_PROBE_MS);
}

/** The health of a sink nothing has been recorded for. */
export function unknownSinkHealth(name: string): SinkHealth {
  return {
    name,
    state: "healthy",
    consecutiveFailures: 0,
    lastSuccess: null,
    lastFailure: null,
    nextProbeAtMs: null,
    probeLevel: 0,
    disabledReason: null,
    version: 0,
  };
}
