/**
 * Where the hydration of one recorded OpenAI event stands. `pending` is waiting for its fetch (the
 * first right after the answer, then the sweepers'); `hydrated` fetched and applied; `not_found`
 * the API answered 404 (the object is gone, or the key sees another project); `invalid` the API's
 * answer was not an object stepwatch can read. The last three never change again.
 */
export type HydrationState = "pending" | "hydrated" | "not_found" | "invalid";

/** The kinds of subject an OpenAI event names. */
export type OpenAiSubjectKind = "response" | "agent_session";

/**
 * One OpenAI platform event (SPEC §9), recorded once by its id before the `200`, whatever came of
 * it since: the durable promise that its subject will be fetched and applied.
 */
export interface OpenAiEventRecord {
  /** OpenAI's `evt_…` id: the record's identity, so a redelivery is a duplicate. */
  readonly id: string;
  readonly type: string;
  readonly kind: OpenAiSubjectKind;
  /** The response or session the event names (`data.id`). */
  readonly subjectId: string;
  /** The event's `created_at`, Unix seconds: orders a session's events when their objects tie. */
  readonly createdAt: number;
  readonly receivedAtMs: number;
  readonly hydration: HydrationState;
  /** Fetches made so far. */
  readonly attempts: number;
  /** Unix ms of the next fetch while pending; else null. */
  readonly nextAttemptMs: number | null;
  /** Why the last fetch failed (or why the event is not_found / invalid), safe to show. */
  readonly lastError: string | null;
  /** Unix ms it was hydrated; null until then. */
  readonly hydratedAtMs: number | null;
  /** Store version; every change is conditional on the version its writer read. */
  readonly version: number;
}

/** A newly received event, before any fetch. */
export function newEventRecord(
  event: Pick<OpenAiEventRecord, "id" | "type" | "kind" | "subjectId" | "createdAt">,
  nowMs: number,
): OpenAiEventRecord {
  return {
    ...event,
    receivedAtMs: nowMs,
    hydration: "pending",
    attempts: 0,
    nextAttemptMs: nowMs,
    lastError: null,
    hydratedAtMs: null,
    version: 1,
  };
}
