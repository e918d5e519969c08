import * as v from "valibot";
import { describeFetchError } from "../domain/fetch-error.js";
import { checkJsonValues } from "../domain/json-value-check.js";
import {
  type AgentSessionItem,
  AgentSessionItemsPageSchema,
  type AgentSessionObject,
  AgentSessionSchema,
} from "../domain/openai/agent-session-object.js";
import { issuesOf } from "../domain/openai/openai-fields.js";
import { type ResponseObject, ResponseObjectSchema } from "../domain/openai/response-object.js";
import { parseRetryAfter } from "../domain/retry-after.js";

/** Why a call did not return the object. */
export type ApiFailureKind = "not_found" | "unauthorized" | "retryable" | "invalid";

/**
 * The outcome of one call: the validated value and the body exactly as received (`raw`: what is
 * stored), or a classified failure whose `message` is safe to log and show (never the key).
 */
export type ApiResult<T> =
  | { readonly ok: true; readonly value: T; readonly raw: unknown }
  | {
      readonly ok: false;
      readonly kind: ApiFailureKind;
      /** The HTTP status, or null when no answer came (network error, time-out). */
      readonly status: number | null;
      /** How long the API asked to be left alone (`Retry-After`), capped; null when it did not say. */
      readonly retryAfterMs: number | null;
      readonly message: string;
    };

/** A session's items, oldest first. `truncated`: more pages remained after `maxItemPages`. */
export interface SessionItems {
  readonly items: readonly AgentSessionItem[];
  readonly truncated: boolean;
}

/** How to reach OpenAI's API (or Azure OpenAI v1, or any compatible server). */
export interface OpenAiApiClientOptions {
  /** Default `https://api.openai.com/v1`. */
  readonly baseUrl?: string;
  readonly apiKey: string;
  readonly organization?: string;
  readonly project?: string;
  /** Per request, body included. Default 10,000. */
  readonly timeoutMs?: number;
  /** Default `globalThis.fetch`, looked up at call time (Node, Workers and Lambda all have it). */
  readonly fetch?: (request: Request) => Promise<Response>;
  /** Most pages of session items followed. Default 50. */
  readonly maxItemPages?: number;
  /** Clock for `Retry-After` dates. */
  readonly nowMs?: () => number;
}

/** Raised for options that could never make a request; the message never contains the key. */
export class OpenAiApiClientConfigError extends Error {
  override readonly name = "OpenAiApiClientConfigError";
}

/** The default API root. */
export const DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1";
/**
 * Largest body read. A response with long outputs and many items is large but not this large;
 * beyond it the answer is refused (`invalid`) while streaming in, so memory stays bounded.
 */
export const MAX_API_BODY_BYTES = 8 * 1024 * 1024;
/** Longest `Retry-After` honoured: a wrong header must not park hydration for days. */
export const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;
/** How much of an OpenAI error message is quoted. */
export const MAX_ERROR_MESSAGE_CHARS = 300;
const MAX_ERROR_BODY_BYTES = 16 * 1024;
const ITEMS_PAGE_SIZE = 100;
// The SDK sends this on every Agents API call; the API may refuse calls without it.
const AGENTS_BETA_HEADER = "agents=v1";
// Header values fetch accepts and that cannot smuggle a second header line.
const HEADER_VALUE = /^[\x21-\x7e]+$/;

type Failure = Extract<ApiResult<never>, { ok: false }>;
type Fetched = { readonly ok: true; readonly json: unknown } | Failure;

/**
 * Reads responses, agent sessions and session items from OpenAI's API for hydration (SPEC §9).
 * Every call classifies its outcome for the sweepers: network errors, time-outs, 408, 429 and
 * 5xx are `retryable` (with `Retry-After`), 404 `not_found`, 401/403 `unauthorized`, and anything
 * else, an oversize body or an answer the schema refuses included, `invalid`. Redirects are not
 * followed (the Bearer key goes to the configured host only). No `node:` import: it runs as is
 * on Node, Workers and Lambda.
 */
export class OpenAiApiClient {
  readonly #base: string;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #apiKey: string;
  readonly #timeoutMs: number;
  readonly #fetch: (request: Request) => Promise<Response>;
  readonly #maxItemPages: number;
  readonly #nowMs: () => number;

  /** @throws {OpenAiApiClientConfigError} for a base URL that is not http(s), or a key or id fetch could not send. */
  constructor(options: OpenAiApiClientOptions) {
    const base = options.baseUrl ?? DEFAULT_OPENAI_BASE_URL;
    let url: URL;
    try {
      url = new URL(base);
    } catch (error) {
      throw new OpenAiApiClientConfigError("baseUrl must be an absolute URL", { cause: error });
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new OpenAiApiClientConfigError("baseUrl must be an http(s) URL");
    }
    // A trailing slash would double up with the paths' own.
    this.#base = base.replace(/\/+$/, "");
    for (const [name, value] of [
      ["apiKey", options.apiKey],
      ["organization", options.organization],
      ["project", options.project],
    ] as const) {
      if (value !== undefined && !HEADER_VALUE.test(value)) {
        throw new OpenAiApiClientConfigError(`${name} must be printable ASCII without spaces`);
      }
    }
    this.#apiKey = options.apiKey;
    this.#headers = {
      authorization: `Bearer ${options.apiKey}`,
      accept: "application/json",
      "user-agent": "stepwatch",
      ...(options.organization ? { "openai-organization": options.organization } : {}),
      ...(options.project ? { "openai-project": options.project } : {}),
    };
    const timeoutMs = options.timeoutMs ?? 10_000;
    const maxItemPages = options.maxItemPages ?? 50;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1)
      throw new OpenAiApiClientConfigError("timeoutMs must be a positive integer");
    if (!Number.isInteger(maxItemPages) || maxItemPages < 1)
      throw new OpenAiApiClientConfigError("maxItemPages must be a positive integer");
    this.#timeoutMs = timeoutMs;
    this.#maxItemPages = maxItemPages;
    // Looked up per call and never called as a method: workerd throws "Illegal invocation" for a
    // fetch detached from globalThis, and tests may replace the global.
    this.#fetch = options.fetch ?? ((request) => globalThis.fetch(request));
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /** `GET /responses/{id}`. */
  async getResponse(id: string): Promise<ApiResult<ResponseObject>> {
    const path = `/responses/${encodeURIComponent(id)}`;
    const fetched = await this.#get(path, false);
    return fetched.ok ? validated(ResponseObjectSchema, fetched.json, path) : fetched;
  }

  /** `GET /agents/sessions/{id}`. */
  async getSession(id: string): Promise<ApiResult<AgentSessionObject>> {
    const path = `/agents/sessions/${encodeURIComponent(id)}`;
    const fetched = await this.#get(path, true);
    return fetched.ok ? validated(AgentSessionSchema, fetched.json, path) : fetched;
  }

  /**
   * `GET /agents/sessions/{id}/items`, oldest first, following the cursor (`after` = the last
   * item's id, as the SDK's CursorPage does) until `has_more` is false or `maxItemPages` pages
   * were read (then `truncated`). A page that says there is more but gives no cursor, or repeats
   * one, is `invalid`: following it would loop or silently drop items. `raw` is the list of
   * items exactly as received.
   */
  async listSessionItems(id: string): Promise<ApiResult<SessionItems>> {
    const path = `/agents/sessions/${encodeURIComponent(id)}/items`;
    const items: AgentSessionItem[] = [];
    const raw: unknown[] = [];
    const seen = new Set<string>();
    let after: string | null = null;
    for (let page = 0; page < this.#maxItemPages; page++) {
      const query = new URLSearchParams({ order: "asc", limit: String(ITEMS_PAGE_SIZE) });
      if (after !== null) query.set("after", after);
      const fetched = await this.#get(`${path}?${query}`, true);
      if (!fetched.ok) return fetched;
      const parsed = v.safeParse(AgentSessionItemsPageSchema, fetched.json);
      if (!parsed.success) return invalid(path, parsed.issues);
      items.push(...parsed.output.data);
      raw.push(...(fetched.json as { data: unknown[] }).data);
      if (!parsed.output.has_more) return { ok: true, value: { items, truncated: false }, raw };
      const cursor = parsed.output.data.at(-1)?.id ?? parsed.output.last_id ?? null;
      if (cursor === null || seen.has(cursor)) {
        return failure("invalid", 200, null, `GET ${path}: has_more without a new cursor`);
      }
      seen.add(cursor);
      after = cursor;
    }
    return { ok: true, value: { items, truncated: true }, raw };
  }

  async #get(pathAndQuery: string, agents: boolean): Promise<Fetched> {
    const what = `GET ${pathAndQuery.split("?")[0]}`;
    const request = new Request(`${this.#base}${pathAndQuery}`, {
      method: "GET",
      headers: agents ? { ...this.#headers, "openai-beta": AGENTS_BETA_HEADER } : this.#headers,
      redirect: "manual",
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    let response: Response;
    try {
      response = await this.#fetch(request);
    } catch (error) {
      return failure("retryable", null, null, `${what}: ${describeFetchError(error, this.#timeoutMs)}`);
    }
    const status = response.status;
    if (status >= 200 && status < 300) return this.#readJson(response, what);

    const detail = this.#errorDetail(await readBounded(response, MAX_ERROR_BODY_BYTES));
    const message = `${what}: HTTP ${status}${detail ? `: ${detail}` : ""}`;
    if (status === 404) return failure("not_found", status, null, message);
    if (status === 401 || status === 403) return failure("unauthorized", status, null, message);
    if (status === 408 || status === 429 || status >= 500) {
      const asked = parseRetryAfter(response.headers.get("retry-after"), this.#nowMs());
      return failure(
        "retryable",
        status,
        asked === undefined ? null : Math.min(asked, MAX_RETRY_AFTER_MS),
        message,
      );
    }
    return failure(
      "invalid",
      status,
      null,
      status < 400 ? `${what}: HTTP ${status}: redirects are not followed` : message,
    );
  }

  async #readJson(response: Response, what: string): Promise<Fetched> {
    const status = response.status;
    const declared = Number(response.headers.get("content-length") ?? Number.NaN);
    if (declared > MAX_API_BODY_BYTES) {
      await response.body?.cancel().catch(() => undefined);
      return failure(
        "invalid",
        status,
        null,
        `${what}: body of ${declared} bytes is over ${MAX_API_BODY_BYTES}`,
      );
    }
    const body = await readBounded(response, MAX_API_BODY_BYTES);
    if (body.kind === "broken") {
      return failure(
        "retryable",
        status,
        null,
        `${what}: ${describeFetchError(body.error, this.#timeoutMs)} while reading the body`,
      );
    }
    if (body.kind === "too_large") {
      return failure("invalid", status, null, `${what}: body is over ${MAX_API_BODY_BYTES} bytes`);
    }
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body.bytes));
    } catch {
      return failure("invalid", status, null, `${what}: body is not JSON`);
    }
    // What the store must not keep (lone surrogates, 1e400, absurd depth) is refused here too.
    const issues = checkJsonValues(json);
    if (issues.length > 0) {
      return failure(
        "invalid",
        status,
        null,
        `${what}: ${issues.map((i) => `${i.path || "(root)"} ${i.message}`).join("; ")}`,
      );
    }
    return { ok: true, json };
  }

  // OpenAI's `error.message`, one line, clipped, and with the key blanked should a server echo it.
  #errorDetail(body: Body): string {
    if (body.kind !== "complete" && body.kind !== "too_large") return "";
    let message: unknown;
    try {
      message = (JSON.parse(new TextDecoder().decode(body.bytes)) as { error?: { message?: unknown } }).error
        ?.message;
    } catch {
      return "";
    }
    if (typeof message !== "string") return "";
    const flat = message.split(this.#apiKey).join("[redacted]").replace(/\s+/g, " ").trim();
    return flat.length > MAX_ERROR_MESSAGE_CHARS ? `${flat.slice(0, MAX_ERROR_MESSAGE_CHARS)}…` : flat;
  }
}

function failure(
  kind: ApiFailureKind,
  status: number | null,
  retryAfterMs: number | null,
  message: string,
): Failure {
  return { ok: false, kind, status, retryAfterMs, message };
}

function invalid(path: string, issues: readonly v.BaseIssue<unknown>[]): Failure {
  const listed = issuesOf(issues)
    .slice(0, 5)
    .map((issue) => `${issue.path || "(root)"} ${issue.message}`)
    .join("; ");
  return failure("invalid", 200, null, `GET ${path}: answer is not a valid object: ${listed}`);
}

function validated<T>(schema: v.GenericSchema<unknown, T>, json: unknown, path: string): ApiResult<T> {
  const parsed = v.safeParse(schema, json);
  return parsed.success ? { ok: true, value: parsed.output, raw: json } : invalid(path, parsed.issues);
}

type Body =
  | { readonly kind: "complete"; readonly bytes: Uint8Array }
  | { readonly kind: "too_large"; readonly bytes: Uint8Array }
  | { readonly kind: "broken"; readonly error: unknown };

/**
 * Reads a body up to `max` bytes. Past it, reading stops and the stream is cancelled (the
 * connection is dropped rather than drained), so a huge or endless body never sits in memory.
 */
async function readBounded(response: Response, max: number): Promise<Body> {
  if (!response.body) return { kind: "complete", bytes: new Uint8Array(0) };
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      total += read.value.byteLength;
      if (total > max) {
        await reader.cancel().catch(() => undefined);
        return { kind: "too_large", bytes: concat(chunks, total - read.value.byteLength) };
      }
      chunks.push(read.value);
    }
  } catch (error) {
    await reader.cancel().catch(() => undefined);
    return { kind: "broken", error };
  }
  return { kind: "complete", bytes: concat(chunks, total) };
}

function concat(chunks: readonly Uint8Array[], length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}
