/**
 * Says why fetch failed without the URL. A time-out rejects with `TimeoutError` (Node, workerd) or
 * `AbortError` (runtimes without abort reasons); Node's network errors carry a `cause` with a
 * `code` (`ECONNREFUSED`), workerd's are a bare `Error`.
 */
export function describeFetchError(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return `timed out after ${timeoutMs} ms`;
  }
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === "string" ? cause.code : error instanceof Error ? error.name : "error";
  return `network error (${code})`;
}
