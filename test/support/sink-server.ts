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

/** A scripted reply: status, optional headers and body. */
export interface Reply {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

/**
 * A real HTTP server on loopback standing in for a webhook receiver, Slack or PagerDuty. It records
 * every request and answers from a script (then with `fallback`).
 */
export interface SinkServer {
  readonly url: string;
  readonly port: number;
  readonly received: ReceivedRequest[];
  /** Replies used in order for the next requests. */
  script(...replies: Reply[]): void;
  /** The reply once the script is used up. */
  fallback: Reply;
  /** Resolves when at least `count` requests have arrived, or rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

export async function startSinkServer(port = 0): Promise<SinkServer> {
  const received: ReceivedRequest[] = [];
  const queue: Reply[] = [];
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const sink: SinkServer = {
    url: "",
    port: 0,
    received,
    fallback: { status: 200, body: "ok" },
    script: (...replies) => {
      queue.push(...replies);
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
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      received.push({
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        at: Date.now(),
      });
      const reply = queue.shift() ?? sink.fallback;
      res.writeHead(reply.status, reply.headers ?? {});
      res.end(reply.body ?? "");
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
