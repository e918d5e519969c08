import { type ServerType, serve } from "@hono/node-server";
import { openFileSpool } from "./file-spool.js";
import { createForwarder, type Forwarder, type ForwarderOptions } from "./forwarder.js";
import type { ExtractOptions } from "./run-step-events.js";
import { createTapHandler } from "./tap-handler.js";

/** Settings of a tap running on Node. */
export interface NodeTapOptions extends ExtractOptions, Omit<ForwarderOptions, "spool"> {
  readonly upstream: string;
  readonly port: number;
  readonly host?: string;
  /** Spool directory (created when missing); null for none. */
  readonly spoolDir: string | null;
  readonly onError?: (message: string) => void;
}

/** A running tap. */
export interface NodeTap {
  /** The base URL clients use as `OPENAI_BASE_URL`. */
  readonly url: string;
  readonly forwarder: Forwarder;
  /** Stops listening, lets open streams end, then stops forwarding (the spool keeps the rest). */
  close(): Promise<void>;
}

/** Starts the tap proxy on Node: @hono/node-server over the Web-standard handler. */
export async function startNodeTap(options: NodeTapOptions): Promise<NodeTap> {
  const spool = options.spoolDir ? await openFileSpool(options.spoolDir) : undefined;
  const forwarder = await createForwarder({ ...options, ...(spool ? { spool } : {}) });
  const handler = createTapHandler({
    upstream: options.upstream,
    forwarder,
    ...(options.includeDeltas !== undefined ? { includeDeltas: options.includeDeltas } : {}),
    ...(options.onError ? { onError: options.onError } : {}),
  });
  const host = options.host ?? "127.0.0.1";
  let server: ServerType;
  try {
    server = await new Promise<ServerType>((resolve, reject) => {
      const s = serve({ fetch: (request) => handler(request), port: options.port, hostname: host }, () =>
        resolve(s),
      );
      s.once("error", reject);
    });
  } catch (error) {
    await forwarder.close();
    throw error;
  }
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  return {
    url: `http://${host}:${port}`,
    forwarder,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ("closeIdleConnections" in server) server.closeIdleConnections();
      });
      await forwarder.close();
    },
  };
}
