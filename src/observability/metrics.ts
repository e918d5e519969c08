/** The most quarantined requests a scrape counts: the gauge must stay cheap however many there are. */
export const QUARANTINE_COUNT_LIMIT = 10_000;

/** A sink's gauges, read from the store when metrics are scraped. */
export interface SinkGauges {
  readonly name: string;
  readonly state: "healthy" | "failing" | "disabled";
  readonly pending: number;
  readonly dead: number;
  /** Seconds since the oldest pending delivery was created; null without any. */
  readonly oldestPendingAgeS: number | null;
}

/**
 * What stepwatch counts. A runtime whose process lives long enough for counters to mean something
 * (the Node server) provides one; on Workers and Lambda the request and attempt log lines carry the
 * same facts for a log platform to count.
 */
export interface Metrics {
  /** One answered HTTP request. */
  httpRequest(method: string, route: string, status: number, seconds: number): void;
  /** One ingest request's outcome: an apply outcome, or the error code it was refused with. */
  ingest(outcome: string, stepStatus: string | null): void;
  /** One OpenAI platform event: accepted, duplicate, ignored, or the error code it was refused with. */
  openAiEvent(type: string, outcome: string): void;
  /** One hydration fetch of an OpenAI event's subject: hydrated, retry, not_found, unauthorized, invalid. */
  hydration(kind: string, outcome: string, seconds: number): void;
  /** One delivery attempt: delivered, retry, dead or parked. */
  deliveryAttempt(sink: string, outcome: string, seconds: number): void;
  /** One sweep: how long, how many attempts, how many deliveries the outbox recovery wrote. */
  sweep(seconds: number, attempts: number, recovered: number): void;
  /**
   * The exposition in the Prometheus text format, with the store's gauges as given: each sink's,
   * and how many requests the quarantine holds.
   */
  render(sinks: readonly SinkGauges[], quarantined: number): Promise<{ contentType: string; body: string }>;
}
