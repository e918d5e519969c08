import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** A request a sink server received. */
export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly at: number;
}

/** A scripted reply: status, optional headers and body, optionally late or never. */
export interface Reply {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** Answers only after this many ms. */
  readonly delayMs?: number;
  /** Never answers: the request hangs until the client gives up or the server is closed. */
  readonly hang?: boolean;
}

/**
 * A real HTTP server on loopback standing in for a webhook receiver, Slack or PagerDuty. It records
 * every request and answers from `respond` when it gives a reply, else from a script (then with
 * `fallback`). It also counts the requests it is answering at once (`inFlight`, `maxInFlight`).
 */
export interface SinkServer {
  readonly url: string;
  readonly port: number;
  readonly received: ReceivedRequest[];
  /** Replies used in order for the next requests. */
  script(...replies: Reply[]): void;
  /** Scripts one reply per status, in order (bodies empty). */
  scriptStatuses(...statuses: number[]): void;
  /** The reply once the script is used up. */
  fallback: Reply;
  /** Picks the reply for a request before the script; undefined falls through to the script. */
  respond: ((request: ReceivedRequest) => Reply | undefined) | null;
  /** Requests received and not yet answered (or given up by their client). */
  readonly inFlight: number;
  /** The most requests in flight at once since the start or the last `reset`. */
  readonly maxInFlight: number;
  /** Forgets the script and the in-flight maximum, and the received requests. */
  reset(): void;
  /** Resolves when at least `count` requests have arrived, or rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

export async function startSinkServer(port = 0): Promise<SinkServer> {
  const received: ReceivedRequest[] = [];
  const queue: Reply[] = [];
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const timers = new Set<NodeJS.Timeout>();
  let inFlight = 0;
  let maxInFlight = 0;
  const sink: SinkServer = {
    url: "",
    port: 0,
    received,
    fallback: { status: 200, body: "ok" },
    respond: null,
    script: (...replies) => {
      queue.push(...replies);
    },
    scriptStatuses: (...statuses) => {
      queue.push(...statuses.map((status) => ({ status })));
    },
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    reset() {
      queue.length = 0;
      received.length = 0;
      maxInFlight = inFlight;
    },
    waitFor(count, timeoutMs = 10_000) {
      if (received.length >= count) return Promise.resolve(received);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`expected ${count} requests, got ${received.length}`)),
          timeoutMs,
        );
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve(received);
          },
        });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    // Answered (finish) or given up (close), whichever comes first, counts once.
    let done = false;
    const settle = () => {
      if (!done) inFlight--;
      done = true;
    };
    res.once("finish", settle);
    res.once("close", settle);
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const request: ReceivedRequest = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        at: Date.now(),
      };
      received.push(request);
      const reply = sink.respond?.(request) ?? queue.shift() ?? sink.fallback;
      const answer = () => {
        if (res.destroyed) return;
        res.writeHead(reply.status, reply.headers ?? {});
        res.end(reply.body ?? "");
      };
      if (reply.hang) {
        // Nothing is written: the client's time-out (or close()) ends it.
      } else if (reply.delayMs) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          answer();
        }, reply.delayMs);
        timers.add(timer);
      } else {
        answer();
      }
      for (const w of [...waiters]) {
        if (received.length >= w.count) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return Object.assign(sink, { url: `http://127.0.0.1:${bound}`, port: bound });
}

/** Polls `check` until it returns a value, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 10_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
