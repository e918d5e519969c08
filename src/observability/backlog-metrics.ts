/**
 * CloudWatch Embedded Metric Format (EMF) lines for the delivery backlog: CloudWatch Logs turns a
 * JSON log line of this shape into metrics by itself, so no metric filter has to parse our lines
 * and the names below are the only contract between the Lambda sweeper and infra/'s alarms.
 */
export const BACKLOG_METRICS = {
  namespace: "Stepwatch",
  /** Dimension naming the deployment (two stacks in one account have two tables). */
  tableDimension: "Table",
  sinkDimension: "Sink",
  pending: "PendingDeliveries",
  dead: "DeadDeliveries",
  oldestPendingAge: "OldestPendingAgeSeconds",
} as const;

/** One sink's backlog, as the store reports it. */
export interface SinkBacklogSample {
  readonly name: string;
  readonly pending: number;
  readonly dead: number;
  /** Unix ms the oldest pending delivery was created; null without any. */
  readonly oldestPendingCreatedMs: number | null;
}

const M = BACKLOG_METRICS;

function ageS(oldestMs: number | null, nowMs: number): number {
  return oldestMs === null ? 0 : Math.max(0, Math.round((nowMs - oldestMs) / 1000));
}

// One EMF document: the metric values sit at the top level beside `_aws`, as EMF requires.
function emfLine(
  nowMs: number,
  dimensions: Record<string, string>,
  values: { pending: number; dead: number; ageS: number },
): string {
  return JSON.stringify({
    time: new Date(nowMs).toISOString(),
    level: "info",
    msg: "delivery backlog",
    _aws: {
      Timestamp: nowMs,
      CloudWatchMetrics: [
        {
          Namespace: M.namespace,
          Dimensions: [Object.keys(dimensions)],
          Metrics: [
            { Name: M.pending, Unit: "Count" },
            { Name: M.dead, Unit: "Count" },
            { Name: M.oldestPendingAge, Unit: "Seconds" },
          ],
        },
      ],
    },
    ...dimensions,
    [M.pending]: values.pending,
    [M.dead]: values.dead,
    [M.oldestPendingAge]: values.ageS,
  });
}

/**
 * The backlog gauges of one sweep: a line for the whole table (what alarms watch: total pending,
 * total dead, the oldest pending delivery's age in seconds, 0 without any) and one per sink (to
 * see which sink it is). Always written, zeros included, so an alarm sees its data and clears.
 */
export function backlogMetricLines(
  table: string,
  sinks: readonly SinkBacklogSample[],
  nowMs: number,
): string[] {
  const oldest = sinks.reduce<number | null>(
    (min, s) =>
      s.oldestPendingCreatedMs === null
        ? min
        : min === null
          ? s.oldestPendingCreatedMs
          : Math.min(min, s.oldestPendingCreatedMs),
    null,
  );
  const total = emfLine(
    nowMs,
    { [M.tableDimension]: table },
    {
      pending: sinks.reduce((sum, s) => sum + s.pending, 0),
      dead: sinks.reduce((sum, s) => sum + s.dead, 0),
      ageS: ageS(oldest, nowMs),
    },
  );
  return [
    total,
    ...sinks.map((s) =>
      emfLine(
        nowMs,
        { [M.tableDimension]: table, [M.sinkDimension]: s.name },
        { pending: s.pending, dead: s.dead, ageS: ageS(s.oldestPendingCreatedMs, nowMs) },
      ),
    ),
  ];
}
