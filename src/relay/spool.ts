import type { RelayEvent } from "./run-step-events.js";

/**
 * Where accepted events wait until stepwatch has acknowledged them, so that an outage or a restart
 * of the relay loses nothing. Records are appended in acceptance order; the forwarder reads back
 * what did not fit in memory from an offset onwards (see forwarder.ts).
 */
export interface Spool {
  /** Appends an event; resolves with the offset its record starts at, once it is on disk. */
  append(event: RelayEvent): Promise<number>;
  /** Notes that stepwatch acknowledged an event (not waited for: losing it means one redelivery). */
  ack(id: string): void;
  /** The end of what is on disk. */
  readonly durableEnd: number;
  /** Up to `max` events whose records start in `[from, durableEnd)`, and the offset after the last. */
  read(from: number, max: number): Promise<{ events: RelayEvent[]; next: number }>;
  /** Empties the spool; only called when every accepted event is acknowledged. */
  clear(): Promise<void>;
  close(): Promise<void>;
}

/** The JSON line of an accepted event. */
export interface SpoolRecord {
  readonly id: string;
  readonly step: string;
  readonly event: string;
  readonly body: string;
}

/** Reads one spool line: an event record, an acknowledgement, or null for a torn or foreign line. */
export function parseSpoolLine(line: string): RelayEvent | { readonly ack: string } | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    // A torn last line (a crash mid-write): value stays undefined, read below as a foreign line.
  }
  // null, numbers, strings and booleans are foreign lines; an array has none of the fields below.
  if (!(value instanceof Object)) return null;
  const record = value as Partial<SpoolRecord> & { ack?: unknown };
  if (typeof record.ack === "string") return { ack: record.ack };
  if (
    typeof record.id === "string" &&
    typeof record.step === "string" &&
    typeof record.event === "string" &&
    typeof record.body === "string"
  ) {
    return { id: record.id, stepId: record.step, event: record.event, body: record.body };
  }
  return null;
}

/** The JSON line (with its newline) of an accepted event. */
export function spoolLine(event: RelayEvent): string {
  const record: SpoolRecord = { id: event.id, step: event.stepId, event: event.event, body: event.body };
  return `${JSON.stringify(record)}\n`;
}
