import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import dynalite from "dynalite";

/** A dynalite server on loopback. */
export interface EmbeddedDynamo {
  readonly endpoint: string;
  close(): Promise<void>;
}

/**
 * Starts dynalite (a DynamoDB-compatible server from npm) on a free loopback port, persisted under
 * `path` so a restart loses nothing, or in memory when `path` is omitted.
 */
export async function startEmbeddedDynamo(path?: string, port = 0): Promise<EmbeddedDynamo> {
  if (path) mkdirSync(path, { recursive: true });
  const server = dynalite({
    ...(path ? { path } : {}),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
