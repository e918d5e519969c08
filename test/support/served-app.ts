import { type ServerType, serve } from "@hono/node-server";
import type { TestApp } from "./test-app.js";

/** A test app served over loopback HTTP, whose listener can be closed and reopened on its port. */
export interface ServedApp {
  readonly url: string;
  readonly port: number;
  /** Closes the listener and every connection: clients see connection refused. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function serveApp(app: TestApp, port = 0): Promise<ServedApp> {
  let server: ServerType | null = null;
  let bound = port;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = serve({ fetch: app.app.fetch, port: bound, hostname: "127.0.0.1" }, (info) => {
        bound = info.port;
        resolve();
      });
      s.once("error", reject);
      server = s;
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = null;
      if (!s) return resolve();
      s.close(() => resolve());
      if ("closeAllConnections" in s) s.closeAllConnections();
    });
  await listen();
  return {
    get url() {
      return `http://127.0.0.1:${bound}`;
    },
    get port() {
      return bound;
    },
    stop,
    start: listen,
    close: stop,
  };
}
