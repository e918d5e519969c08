/**
 * The single definition of stepwatch's DynamoDB table: keys, attribute names, indexes with their
 * projections, TTL and the actions the code calls. The store, the tests, `bench/` and `infra/` all
 * read it from here.
 *
 * One table, four kinds of item, told apart by a key prefix no other kind can produce (sink names
 * cannot contain `#`):
 * - `S#<step id>`: a step. The RunStepObject as last applied plus what the indexes and the rollup
 *   read. A terminal transition also records, in the same conditional write, the sinks it owes
 *   (`snk`) and its `outbox` index entry (partition by status and shard, sorted by when it was
 *   applied): a sweeper finds there a transition whose instance died before it wrote any delivery,
 *   and `GET /v1/run-steps` lists terminal steps across runs, newest first.
 * - `D#<sink>#<step id>`: one notification of one step to one sink: its state, attempts and the
 *   last attempts' log. Small (well under 1 KB), so every delivery write costs one write unit and
 *   never rewrites the step's document.
 * - `K#<sink>`: the sink's health, shared by every instance.
 * - `M#...`: bookkeeping of sweepers (outbox watermarks, queue shard leases).
 * - `Q#<id>`: a signed request whose body was refused (the quarantine), in the `queue` index under
 *   `Q#` sorted by arrival; its raw body is a second item, `Q#<id>#body`, so that listing and
 *   reading the record never reads (or pays read units for) up to 350 KB of body.
 *
 * Indexes project only what their queries read: `by-run` what the run rollup sums (a listing reads
 * the documents from the table), `outbox` the owed sinks and the assistant, `queue` only the keys and the creation time
 * (a sweeper reads the deliveries themselves, consistently, before it attempts them).
 */
export const TABLE_SCHEMA = {
  partitionKey: "pk",
  ttlAttribute: "ttl",
  /** Written on the layout marker item; a table made for another layout is refused at start-up. */
  layoutVersion: 2,
  prefixes: {
    step: "S#",
    delivery: "D#",
    sink: "K#",
    /** Sweepers' bookkeeping: `M#outbox#<shard>`, `M#lease#<sink>#<shard>`, `M#layout`. */
    meta: "M#",
    /** Queue partitions: pending deliveries `P#<sink>#<shard>`, dead ones `X#<sink>#<shard>`. */
    pending: "P#",
    dead: "X#",
    /** Outbox partitions `O#<terminal status>#<shard>`. */
    outbox: "O#",
    /** Quarantined requests `Q#<id>` (and their bodies `Q#<id>#body`); also their `queue` partition. */
    quarantine: "Q#",
    /** Watched steps' `queue` partitions `W#<shard>` (the stalled-step watchdog). */
    watch: "W#",
    /** Responses `R#<response id>` (OpenAI's Responses API, SPEC §9). */
    response: "R#",
    /** OpenAI platform events `V#<event id>`: recorded once, with their hydration state. */
    event: "V#",
    /** Agent sessions `A#<session id>`: the newest fetched object. */
    session: "A#",
    /** Pending hydrations' `queue` partitions `H#<shard>`. */
    hydration: "H#",
  },
  attributes: {
    /** Partition key of every item. */
    key: "pk",
    ttl: "ttl",
    /** Item version: every fenced write of a delivery or lease is conditional on it. */
    version: "ver",
    // --- step items ---
    /**
     * The RunStepObject as last applied: its JSON, raw-deflated (B) when that is smaller, else as
     * text (S). Exact round trip, no 32-level nesting limit, and half the write units of text.
     */
    document: "doc",
    status: "st",
    /** `webhook-timestamp` of the applied snapshot: orders non-terminal snapshots. */
    sentAt: "sent",
    runId: "run",
    /** `<created_at, 11 digits>#<step id>`: orders a run's steps by creation, ties broken by id. */
    runSortKey: "rsk",
    createdAt: "ca",
    threadId: "thr",
    assistantId: "asst",
    promptTokens: "pt",
    completionTokens: "ct",
    totalTokens: "tt",
    receivedAt: "rcv",
    updatedAt: "upd",
    conflicts: "cfl",
    /** String set of the sinks a terminal transition owes a notification. */
    owedSinks: "snk",
    /** Outbox partition, present only on terminal steps. */
    outboxShard: "ob",
    /** Outbox sort key: `<Unix ms of the terminal apply, 13 digits>#<step id>`, unique and in time order. */
    appliedAtMs: "obt",
    /**
     * Unix ms the stalled-step watchdog found the step still in progress past STALL_AFTER_S. While
     * a step is watched, its `q` is `W#<shard>` and its `qt` when it is due to be looked at: set by
     * its first in_progress apply, in the same write, and never changed after (so later snapshots
     * and the terminal apply cost the `queue` index nothing).
     */
    stalledAt: "stl",
    // --- delivery items ---
    /** The subject's id (a step's, a response's, the event's of a session). */
    stepId: "sid",
    /** The subject's kind; absent on a run step's delivery (every delivery before there were kinds). */
    subjectKind: "kd",
    sink: "sink",
    event: "ev",
    deliveryState: "ds",
    attempts: "n",
    /** Attempts already made when the retry schedule last (re)started: a manual retry starts it again. */
    scheduleBase: "b",
    lastError: "err",
    /** Map of ring slot ("0".."9") → the attempt made in it. */
    attemptLog: "lg",
    /** Unix ms the delivery was created. */
    createdAtMs: "cms",
    /** Queue partition: `P#<sink>#<shard>` while pending, `X#<sink>#<shard>` while dead, else absent. */
    queue: "q",
    /** Unix ms: when a pending delivery is next due (or its operator's hold ends); when it died. */
    queueAt: "qt",
    // --- sink items ---
    health: "hs",
    failures: "cf",
    lastSuccessAt: "oka",
    lastSuccessStatus: "oks",
    lastFailureAt: "fla",
    lastFailureStatus: "fls",
    lastFailureError: "fle",
    /** Unix ms of the next probe of a failing sink. */
    probeAt: "npa",
    /** How many probes in a row failed: the probe backoff's exponent. */
    probeLevel: "plv",
    disabledReason: "dr",
    // --- meta items ---
    /** Lease end (Unix ms) of a queue shard or a probe. */
    leaseUntil: "lu",
    /** Outbox watermark: the sort key of the last entry a sweeper made sure of. */
    watermark: "wm",
    // --- quarantined requests (arrival time in `cms`, listed through `q`/`qt`) ---
    webhookId: "wid",
    webhookTimestamp: "wts",
    /** Map of the signature headers (and content type) as received. */
    headers: "hdr",
    /** The raw body (binary), on the `#body` item. */
    body: "bdy",
    bodyBytes: "bl",
    refusalStatus: "rs",
    refusalCode: "rc",
    refusalMessage: "rm",
    /** The refusal's issues as JSON text. */
    refusalIssues: "ri",
    replayedAt: "rpa",
    replayedStep: "rps",
    replayOutcome: "rpo",
    // --- OpenAI events (`V#`; subject id in `sid`, kind in `kd`, created_at in `ca`, received in `cms`) ---
    eventType: "et",
    /** Hydration state: pending, hydrated, not_found, invalid. */
    hydration: "hy",
    /** Unix ms it was hydrated. */
    hydratedAt: "hya",
    // --- responses (`R#`; the Response in `doc`, its status in `st`, run rollup fields as a step's) ---
    /** The response's status rank: 0 queued, 1 in_progress, 2 terminal. Conditions compare it. */
    statusRank: "rk",
    model: "mdl",
    promptId: "pid",
    /** String set of the OpenAI events whose hydration applied this object. */
    eventIds: "evs",
    /** An agent session's `last_active_at`: the newest object wins. */
    lastActiveAt: "lat",
  },
  indexes: {
    byRun: {
      name: "by-run",
      partitionKey: "run",
      sortKey: "rsk",
      keyTypes: { run: "S", rsk: "S" },
      projection: ["st", "ca", "upd", "thr", "asst", "pt", "ct", "tt"],
    },
    outbox: {
      name: "outbox",
      partitionKey: "ob",
      sortKey: "obt",
      keyTypes: { ob: "S", obt: "S" },
      projection: ["snk", "st", "run", "asst"],
    },
    queue: {
      name: "queue",
      partitionKey: "q",
      sortKey: "qt",
      keyTypes: { q: "S", qt: "N" },
      // A sweeper reads the deliveries themselves (consistently) before attempting; the index only
      // tells it which are due, and the operator API the age of the oldest.
      projection: ["cms"],
    },
  },
  /** Each terminal status's transitions are spread over this many outbox partitions, so none runs hot. */
  outboxShards: 16,
  /** Each sink's pending and dead deliveries are spread over this many queue partitions. */
  queueShards: 8,
  /** Watched in-progress steps are spread over this many `queue` partitions. */
  watchShards: 16,
  /** Pending hydrations are spread over this many `queue` partitions. */
  hydrationShards: 8,
  /** A response's terminal transitions are spread over this many outbox partitions per status. */
  responseOutboxShards: 4,
  /** Every DynamoDB action the application calls at run time; IAM grants exactly these. */
  runtimeActions: [
    "dynamodb:UpdateItem",
    "dynamodb:PutItem",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
  ],
  /** Actions the Node entry also needs to create the table on a local store. */
  bootstrapActions: ["dynamodb:CreateTable", "dynamodb:UpdateTimeToLive"],
} as const;
