import { createServer } from "node:http";
import { listenOnLoopback } from "./loopback.js";

/** A loopback webhook receiver that notes when each step's notification arrived. */
export interface LatencySink {
  readonly url: string;
  /** performance.now() at which the notification for each step id was fully received. */
  readonly receivedAt: Map<string, number>;
  /** Notifications received in total, duplicates included. */
  received(): number;
  close(): Promise<void>;
}

/** Starts the sink on 127.0.0.1; it answers 204 at once, as a healthy receiver does. */
export async function startLatencySink(): Promise<LatencySink> {
  const receivedAt = new Map<string, number>();
  let count = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const at = performance.now();
      count++;
      try {
        const payload = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { data?: { id?: unknown } };
        if (typeof payload.data?.id === "string" && !receivedAt.has(payload.data.id)) {
          receivedAt.set(payload.data.id, at);
        }
      } catch {
        // Counted, but without a step id it cannot be matched; the report shows the shortfall.
      }
      res.writeHead(204).end();
    });
  });
  const url = await listenOnLoopback(server);
  return {
    url,
    receivedAt,
    received: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
