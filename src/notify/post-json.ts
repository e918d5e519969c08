import { describeFetchError } from "../domain/fetch-error.js";
import { parseRetryAfter } from "../domain/retry-after.js";
import type { AttemptResult } from "./sink.js";

// Shared with the producers' API clients (src/sources); re-exported where they used to live.
export { describeFetchError, parseRetryAfter };

const MAX_ERROR_BODY = 200;
/**
 * How much of an error response's body is read before the rest is dropped: plenty for the clipped
 * quote, and a huge or endless body costs neither memory nor the rest of the attempt's time.
 */
const MAX_ERROR_READ_CHARS = 4096;

/**
 * POSTs a JSON body and classifies the answer (SPEC §6): 2xx delivered; network errors, time-outs,
 * 408, 429 and 5xx retryable (with `Retry-After` when given); `410 Gone` gone; anything else,
 * redirects included, final. A request that cannot even be built (a header value fetch refuses,
 * a URL it cannot parse) is final too: sending it again would fail the same way.
 * Error texts carry the status and a clipped response body, never the URL (it may hold a token);
 * no more of that body is read than the quote needs.
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
  if (response.ok) {
    await response.body?.cancel();
    return { ok: true, status };
  }
  const text = clip(await readStart(response.body));
  const retryable = status === 408 || status === 429 || status >= 500;
  const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), nowMs());
  // Not ok and under 400 is a redirect: fetch answers no 1xx status.
  const error =
    status < 400 ? `HTTP ${status}: redirects are not followed` : `HTTP ${status}${text ? `: ${text}` : ""}`;
  return {
    ok: false,
    retryable,
    error,
    status,
    ...(status === 410 ? { gone: true } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  };
}

// The first MAX_ERROR_READ_CHARS or so of a body, or what arrived before it broke off or timed out.
async function readStart(body: ReadableStream<Uint8Array> | null): Promise<string> {
  // Stryker disable next-line StringLiteral: only a 304 comes without a body, and a redirect's error never quotes it.
  if (!body) return "";
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      text += decoder.decode(read.value, { stream: true });
      if (text.length >= MAX_ERROR_READ_CHARS) break;
    }
  } catch {
    // Broken off or timed out mid-body: what arrived still says something.
  }
  // Drops the rest: the connection closes instead of carrying on with a body nobody reads.
  await reader.cancel().catch(() => undefined);
  return text;
}

function clip(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > MAX_ERROR_BODY ? `${flat.slice(0, MAX_ERROR_BODY)}…` : flat;
}
