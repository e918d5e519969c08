import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** A request the stand-in received. */
export interface FakeOpenAiRequest {
  readonly method: string;
  /** Path without the query, e.g. `/v1/responses/resp_1`. */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
}

/** A scripted failure for the next requests. */
export interface FakeOpenAiFailure {
  readonly status: number;
  /** Sent as `Retry-After` as is (seconds or an HTTP date). */
  readonly retryAfter?: string;
  /** OpenAI-style `error.message`. */
  readonly message?: string;
}

/**
 * A loopback stand-in of OpenAI's API for hydration: `GET /v1/responses/{id}`,
 * `GET /v1/agents/sessions/{id}` and `GET /v1/agents/sessions/{id}/items` (cursor pages, oldest
 * first, `limit` and `after` as the SDK sends them), served from maps the caller fills. It
 * answers 401 without the right Bearer key, 404 for unknown ids, OpenAI's error body shape, and
 * can be slowed, made to fail, or taken down. No test-framework import: the samples start it too.
 */
export interface FakeOpenAi {
  /** Base URL to give a client, ending in `/v1`. */
  readonly url: string;
  readonly responses: Map<string, unknown>;
  readonly sessions: Map<string, unknown>;
  readonly items: Map<string, readonly unknown[]>;
  /** Every request received, in order. */
  readonly requests: FakeOpenAiRequest[];
  /** Milliseconds before each answer. */
  latencyMs: number;
  /** Requests received and not yet answered (or closed), now and at most so far. */
  readonly inFlight: number;
  maxInFlight: number;
  /** Every request answers 401, the key notwithstanding (a revoked key). */
  unauthorized: boolean;
  /** `destroy`: sockets are destroyed on arrival; `hang`: requests are never answered. */
  outage: "off" | "destroy" | "hang";
  /** Most items per page whatever `limit` asks (default 100). */
  pageSize: number;
  /** Leave `Content-Length` off (bodies go chunked). */
  chunked: boolean;
  /** The next `count` requests fail with `failure`. */
  failNext(count: number, failure: FakeOpenAiFailure): void;
  /** Requests received per path (query excluded). */
  count(path: string): number;
  /** Stops the server and destroys every open socket (hung requests included). */
  close(): Promise<void>;
}

export interface FakeOpenAiOptions {
  /** The key requests must carry as `Authorization: Bearer`. */
  readonly apiKey: string;
  readonly responses?: Iterable<{ readonly id: string }>;
  readonly sessions?: Iterable<{
    readonly session: { readonly id: string };
    readonly items: readonly unknown[];
  }>;
  /** Port on 127.0.0.1 (default 0: a free one). */
  readonly port?: number;
  /**
   * Keep every request in `requests` and `count` (default true, for tests). A long-running
   * stand-in (`npm run openai-standin`) keeps none, so its memory stays bounded.
   */
  readonly recordRequests?: boolean;
  /** Called as each request arrives (before any answer), e.g. to log it once `res` finishes. */
  readonly onRequest?: (req: IncomingMessage, res: ServerResponse) => void;
}

/** Starts the stand-in on 127.0.0.1 (on a free port unless `options.port`). */
export async function startFakeOpenAi(options: FakeOpenAiOptions): Promise<FakeOpenAi> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const failures: FakeOpenAiFailure[] = [];
  const counts = new Map<string, number>();
  let inFlight = 0;
  let received = 0;

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    received++;
    options.onRequest?.(req, res);
    if (options.recordRequests !== false) {
      fake.requests.push({
        method: req.method ?? "",
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
      });
      counts.set(url.pathname, (counts.get(url.pathname) ?? 0) + 1);
    }
    inFlight++;
    fake.maxInFlight = Math.max(fake.maxInFlight, inFlight);
    res.on("close", () => {
      inFlight--;
    });
    if (fake.outage === "destroy") {
      req.socket.destroy();
      return;
    }
    if (fake.outage === "hang") return;
    const answer = () => route(req.method ?? "", url, req.headers, res);
    if (fake.latencyMs > 0) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        answer();
      }, fake.latencyMs);
      timers.add(timer);
    } else {
      answer();
    }
  });
  // Bounded like the server it stands in for: a client that never finishes its request, or an idle
  // keep-alive connection, is cut off rather than held for Node's defaults (60 s and 300 s).
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  const send = (
    res: ServerResponse,
    status: number,
    value: unknown,
    headers: Record<string, string> = {},
  ) => {
    if (res.destroyed) return;
    const text = JSON.stringify(value);
    res.writeHead(status, {
      "content-type": "application/json",
      "x-request-id": `req_fake_${received}`,
      ...(fake.chunked ? {} : { "content-length": String(Buffer.byteLength(text)) }),
      ...headers,
    });
    res.end(text);
  };
  const error = (
    res: ServerResponse,
    status: number,
    message: string,
    type: string,
    headers?: Record<string, string>,
  ) => send(res, status, { error: { message, type, param: null, code: null } }, headers);

  function route(method: string, url: URL, headers: IncomingHttpHeaders, res: ServerResponse) {
    const failure = failures.shift();
    if (failure) {
      return error(
        res,
        failure.status,
        failure.message ?? `scripted ${failure.status}`,
        failure.status === 429 ? "rate_limit_exceeded" : "server_error",
        failure.retryAfter === undefined ? {} : { "retry-after": failure.retryAfter },
      );
    }
    if (fake.unauthorized || headers.authorization !== `Bearer ${options.apiKey}`) {
      // OpenAI masks the key it quotes; so does the stand-in.
      return error(
        res,
        401,
        "Incorrect API key provided: sk-****. You can find your API key at …",
        "invalid_request_error",
      );
    }
    if (method !== "GET")
      return error(res, 405, `${method} is not served by the stand-in`, "invalid_request_error");
    const parts = url.pathname.split("/").map((part) => decodeURIComponent(part));
    // ["", "v1", "responses", id] | ["", "v1", "agents", "sessions", id, ("items")?]
    if (parts.length === 4 && parts[1] === "v1" && parts[2] === "responses") {
      const found = fake.responses.get(parts[3] ?? "");
      return found === undefined
        ? error(res, 404, `No response found with id '${parts[3]}'.`, "invalid_request_error")
        : send(res, 200, found);
    }
    if (parts[1] === "v1" && parts[2] === "agents" && parts[3] === "sessions" && parts[4]) {
      const id = parts[4];
      const session = fake.sessions.get(id);
      if (session === undefined)
        return error(res, 404, `No session found with id '${id}'.`, "invalid_request_error");
      if (parts.length === 5) return send(res, 200, session);
      if (parts.length === 6 && parts[5] === "items") return send(res, 200, itemsPage(id, url.searchParams));
    }
    return error(res, 404, `Unknown path ${url.pathname}`, "invalid_request_error");
  }

  // A CursorPage: items after the `after` id, oldest first, at most min(limit, pageSize).
  function itemsPage(id: string, query: URLSearchParams) {
    const all = fake.items.get(id) ?? [];
    const ordered = query.get("order") === "desc" ? [...all].reverse() : [...all];
    const after = query.get("after");
    const start =
      after === null ? 0 : ordered.findIndex((item) => (item as { id?: unknown }).id === after) + 1;
    const limit = Math.min(Number(query.get("limit") ?? 20) || 20, fake.pageSize);
    const data = ordered.slice(start, start + limit);
    const ids = data.map((item) => (item as { id?: string | null }).id ?? null);
    return {
      object: "list",
      data,
      first_id: ids[0] ?? null,
      last_id: ids.at(-1) ?? null,
      has_more: start + limit < ordered.length,
    };
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const fake: FakeOpenAi = {
    url: `http://127.0.0.1:${port}/v1`,
    responses: new Map([...(options.responses ?? [])].map((r) => [r.id, r])),
    sessions: new Map([...(options.sessions ?? [])].map((s) => [s.session.id, s.session])),
    items: new Map([...(options.sessions ?? [])].map((s) => [s.session.id, s.items])),
    requests: [],
    latencyMs: 0,
    get inFlight() {
      return inFlight;
    },
    maxInFlight: 0,
    unauthorized: false,
    outage: "off",
    pageSize: 100,
    chunked: false,
    failNext(count, failure) {
      for (let i = 0; i < count; i++) failures.push(failure);
    },
    count: (path) => counts.get(path) ?? 0,
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
  return fake;
}
