/** Log levels, least to most severe. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Structured fields of a log line. Never put secrets, tokens, headers or bodies here. */
export type LogFields = Readonly<Record<string, string | number | boolean | null | undefined>>;

/** One JSON object per line, so any log pipeline can read it. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** Whether a line at `level` would be written. */
  enabled(level: LogLevel): boolean;
  /** A logger that adds `fields` (a request id, say) to every line it writes. */
  child(fields: LogFields): Logger;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A logger writing JSON lines at or above `level` through `write` (stdout by default). */
export function createLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => console.log(line),
  bound: LogFields = {},
): Logger {
  const threshold = RANK[level];
  const emit = (lineLevel: LogLevel) => (message: string, fields?: LogFields) => {
    if (RANK[lineLevel] < threshold) return;
    write(
      JSON.stringify({ time: new Date().toISOString(), level: lineLevel, msg: message, ...bound, ...fields }),
    );
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    enabled: (lineLevel) => RANK[lineLevel] >= threshold,
    child: (fields) => createLogger(level, write, { ...bound, ...fields }),
  };
}

/** Describes an error for a log line: its name and message, never its stack. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
