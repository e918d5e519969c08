/**
 * The single definition of stepwatch's DynamoDB table: key, attribute names, indexes, TTL and the
 * actions the code calls. The store, the tests and `infra/` all read it from here.
 *
 * One item per step, keyed by step id. Runs are read through the `by-run` index (steps in
 * `created_at` order); notifications live on the step item, so the write that applies a terminal
 * transition also records who must hear about it, and two sparse indexes find the deliveries that
 * are due or dead.
 */
export const TABLE_SCHEMA = {
  partitionKey: "pk",
  ttlAttribute: "ttl",
  attributes: {
    /** Step id (partition key). */
    stepId: "pk",
    /** The RunStepObject as last applied, as JSON text: exact round trip, no 32-level nesting limit. */
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
    ttl: "ttl",
    /** Map of sink name → delivery state. */
    deliveries: "dlv",
    /** Version of the delivery state: every claim and acknowledgement is conditional on it. */
    deliveryVersion: "dv",
    /** Shard of the due index, present only while a delivery is pending. */
    dueShard: "dsh",
    /** Unix ms at which the pending deliveries are next due (or the current lease ends). */
    dueAt: "due",
    /** Constant partition of the dead index, present only while a delivery is dead. */
    deadKey: "dpk",
    deadAt: "dat",
  },
  indexes: {
    byRun: { name: "by-run", partitionKey: "run", sortKey: "rsk", keyTypes: { run: "S", rsk: "S" } },
    due: { name: "due", partitionKey: "dsh", sortKey: "due", keyTypes: { dsh: "S", due: "N" } },
    dead: { name: "dead", partitionKey: "dpk", sortKey: "dat", keyTypes: { dpk: "S", dat: "N" } },
  },
  /** Pending deliveries are spread over this many index partitions so no single one runs hot. */
  dueShards: 4,
  /** Every DynamoDB action the application calls at run time; IAM grants exactly these. */
  runtimeActions: ["dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:DescribeTable"],
  /** Actions the Node entry also needs to create the table on a local store. */
  bootstrapActions: ["dynamodb:CreateTable", "dynamodb:UpdateTimeToLive"],
} as const;

/** The table definition's type. */
export type TableSchema = typeof TABLE_SCHEMA;

/** Name of one of the table's global secondary indexes. */
export type IndexName = (typeof TABLE_SCHEMA.indexes)[keyof typeof TABLE_SCHEMA.indexes]["name"];
