import type { AttemptResult } from "./sink.js";

const MAX_ERROR_BODY = 200;

/**
 * POSTs a JSON body and classifies the answer (SPEC §6): 2xx delivered; network errors, time-outs,
 * 408, 429 and 5xx retryable (with `Retry-After` when given); `410 Gone` gone; anything else,
 * redirects included, final. A request that cannot even be built (a header value fetch refuses,
 * a URL it cannot parse) is final too: sending it again would fail the same way.
 * Error texts carry the status and a clipped response body, never the URL (it may hold a token).
 */
export async function postJson(
  url: string,
  body: string,
  headers: Readonly<Record<string, string>>,
  timeoutMs: number,
  nowMs: () => number = Date.now,
): Promise<AttemptResult> {
  let request: Request;
  try {
    request = new Request(url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "stepwatch", ...headers },
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    return { ok: false, retryable: false, error: `request could not be built: ${(error as Error).name}` };
  }
  let response: Response;
  try {
    response = await fetch(request);
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
  const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), nowMs());
  const error =
    status >= 300 && status < 400
      ? `HTTP ${status}: redirects are not followed`
      : `HTTP ${status}${text ? `: ${text}` : ""}`;
  return {
    ok: false,
    retryable,
    error,
    status,
    ...(status === 410 ? { gone: true } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  };
}

/** Reads `Retry-After` as whole seconds or an HTTP date, in ms from `nowMs`. */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
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
