import type { AttemptResult } from "./sink.js";

const MAX_ERROR_BODY = 200;

/**
 * POSTs a JSON body and classifies the answer: 2xx delivered; network errors, time-outs, 408, 429
 * and 5xx retryable (with `Retry-After` when given); anything else, redirects included, final.
 * Error texts carry the status and a clipped response body, never the URL (it may hold a token).
 */
export async function postJson(
  url: string,
  body: string,
  headers: Readonly<Record<string, string>>,
  timeoutMs: number,
): Promise<AttemptResult> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "stepwatch", ...headers },
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    return { ok: false, retryable: true, error: describeFetchError(error, timeoutMs) };
  }
  const status = response.status;
  if (status >= 200 && status < 300) {
    await response.body?.cancel();
    return { ok: true, status };
  }
  const text = clip(await response.text().catch(() => ""));
  const retryable = status === 408 || status === 429 || status >= 500;
  const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
  const error =
    status >= 300 && status < 400
      ? `HTTP ${status}: redirects are not followed`
      : `HTTP ${status}${text ? `: ${text}` : ""}`;
  return { ok: false, retryable, error, status, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
}

/** Reads `Retry-After` as seconds or an HTTP date, in ms from now. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function describeFetchError(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return `timed out after ${timeoutMs} ms`;
  }
  const cause = (error as { cause?: { code?: unknown } }).cause;
  const code = typeof cause?.code === "string" ? cause.code : error instanceof Error ? error.name : "error";
  return `network error (${code})`;
}

function clip(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > MAX_ERROR_BODY ? `${flat.slice(0, MAX_ERROR_BODY)}…` : flat;
}
