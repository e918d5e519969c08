// Child process: the HTTP ingest path without the store, or a bare Hono handler, served by
// @hono/node-server exactly as the Node runtime serves stepwatch. Prints BENCH_READY {"url"}.

import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createSignatureVerifier } from "../src/domain/signature-verifier.js";
import { createApp } from "../src/http/create-app.js";
import { createLogger } from "../src/observability/logger.js";
import { nodeHmacSha256 } from "../src/runtime/node-hmac.js";
import type { QuarantineStore } from "../src/store/quarantine-store.js";
import type { StepStore } from "../src/store/step-store.js";
import { RunStepIngest } from "../src/usecases/run-step-ingest.js";
import { announce, exitWithParent, READY } from "./child-process.js";

const { values } = parseArgs({ options: { mode: { type: "string", default: "nostore" } } });

// Every call but apply is outside the ingest path; they fail loudly if the bench ever reaches them.
const unused = () => Promise.reject(new Error("not used by the bench"));
const noStore: StepStore = {
  apply: async () => ({ outcome: "created", stalledAtMs: null }),
  getStep: unused,
  getSteps: unused,
  listRunSteps: unused,
  getRunRollup: unused,
  listTerminal: unused,
  ping: async () => undefined,
};
// The bench's events are all valid: nothing is quarantined.
const noQuarantine: QuarantineStore = {
  keep: unused,
  get: unused,
  body: unused,
  list: unused,
  markReplayed: unused,
  delete: unused,
  count: unused,
};

async function buildApp(): Promise<Hono> {
  if (values.mode === "bare") {
    const app = new Hono();
    app.post("/v1/webhooks/run-steps", async (c) => {
      const body = await c.req.arrayBuffer();
      return c.json({
        step_id: "step_bare",
        status: "in_progress",
        outcome: "created",
        bytes: body.byteLength,
      });
    });
    return app;
  }
  const secret = process.env.WEBHOOK_SECRET ?? "";
  const logger = createLogger("warn");
  return createApp({
    store: noStore,
    ingest: new RunStepIngest({ store: noStore, quarantine: noQuarantine, logger, quarantineDays: 14 }),
    // As the Node runtime verifies (runtime/node-server.ts): node:crypto's HMAC.
    verifier: await createSignatureVerifier([secret], 300, nodeHmacSha256),
    logger,
    apiTokens: [],
    maxBodyBytes: 262_144,
  });
}

const app = await buildApp();
const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
  announce(READY, { url: `http://127.0.0.1:${info.port}` });
});
const stop = () => {
  server.close(() => process.exit(0));
  if ("closeAllConnections" in server) server.closeAllConnections();
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
exitWithParent(stop);
