/**
 * What a notification is about. stepwatch started with run steps; today's producers (OpenAI's
 * Responses and Agents APIs) speak of responses and agent sessions. The pipeline (state rules,
 * intents, deliveries, routing, renderings, attempt log, sweeps, watchdog, metrics) works over a
 * small set of subject kinds, each declared once in `src/domain/subjects/` (see {@link SubjectKind}).
 */

/** The kinds of subject stepwatch knows. */
export const SUBJECT_KIND_NAMES = ["run_step", "response", "agent_session"] as const;

/** A kind of subject. */
export type SubjectKindName = (typeof SUBJECT_KIND_NAMES)[number];

/** How loud a person-facing rendering is: PagerDuty's severities, which the others map. */
export type Severity = "info" | "warning" | "error" | "critical";

/** What a person must act on when a subject waits for them (an agent session's required action). */
export interface RequiredAction {
  /** `function_call`, `computer_use_approval_request`, `mcp_approval_request`, … */
  readonly type: string;
  /** A short, safe description: the function's name, the approval asked for. */
  readonly detail: string | null;
}

/**
 * The facts every sink renders and every filter matches, read from a subject's stored document by
 * its kind. Read leniently: a document that was valid when stored is never refused later because a
 * schema was tightened since, so a queued delivery always sends what its intent was written for.
 */
export interface SubjectView {
  readonly kind: SubjectKindName;
  /** The subject's own id: a step id, a response id, an agent session id. */
  readonly id: string;
  /** The run it belongs to (a response is its own run; a session's run is the session). */
  readonly runId: string;
  readonly threadId: string;
  /** The assistant, prompt or agent that produced it (what `filter.assistant_id` matches). */
  readonly assistantId: string;
  readonly status: string;
  readonly model: string | null;
  readonly promptId: string | null;
  /** What went wrong, for a failed subject (or why it is incomplete). */
  readonly error: { readonly code: string; readonly message: string } | null;
  readonly usage: {
    readonly prompt_tokens: number;
    readonly completion_tokens: number;
    readonly total_tokens: number;
  } | null;
  readonly metadata: Readonly<Record<string, string>> | null;
  readonly requiredAction: RequiredAction | null;
  /** Unix seconds it was created. */
  readonly createdAt: number;
  /** Unix seconds it reached its status, when the document says. */
  readonly statusAt: number | null;
}

/**
 * One kind of subject: its statuses, which of them end it, which notifications it can owe, how its
 * stored document reads as a {@link SubjectView}, and how person-facing sinks word it. A producer
 * (OpenAI's Responses, its Agents API, the next one) is one such declaration plus its ingest.
 */
export interface SubjectKind {
  readonly name: SubjectKindName;
  /** How a person calls one: "Run step", "Response", "Agent session". */
  readonly label: string;
  /** What its notification names start with: `run_step`, `response`, `agent.session`. */
  readonly eventPrefix: string;
  /** Every status, in the order the subject moves through them where it does. */
  readonly statuses: readonly string[];
  /** Statuses after which it never changes again (empty for a kind that cycles). */
  readonly terminal: readonly string[];
  /** Statuses whose reaching owes a notification to the sinks subscribed to it. */
  readonly notifiable: readonly string[];
  /** Whether the stalled-subject watchdog looks after it while it is in this status. */
  readonly watched: readonly string[];
  /** The notifiable statuses a person-facing pager hears about when a sink names none. */
  readonly pagerDefault: readonly string[];
  /** How loud each notifiable status (and `stalled`) is. */
  readonly severity: Readonly<Record<string, Severity>>;
  /** A Slack emoji per notifiable status (and `stalled`). */
  readonly icon: Readonly<Record<string, string>>;
  /** Reads a stored document; never throws (missing fields read as empty). */
  view(document: Readonly<Record<string, unknown>>): SubjectView;
}

/** The watchdog's notice: the status word of every kind's stall notification. */
export const STALLED = "stalled";
