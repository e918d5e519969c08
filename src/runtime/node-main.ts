import { constants } from "node:os";
import { printBanner } from "./banner.js";
import { type NodeServer, startNodeServer } from "./node-server.js";
import { startupErrorMessage } from "./startup.js";

// A signal this soon after the first is the same one delivered twice, not a second request: a
// process group signal (Ctrl-C, docker stop, systemd) reaches npm too, which forwards it again.
const REPEAT_WINDOW_MS = 1_000;

// `npm start` / `node dist/node-main.js`: the Node server, on the embedded store unless
// DYNAMODB_ENDPOINT is set.
let server: NodeServer;
try {
  server = await startNodeServer(process.env);
} catch (error) {
  console.error(startupErrorMessage(error));
  process.exit(1);
}
printBanner(server);

let firstAt: number | undefined;
const onSignal = (signal: NodeJS.Signals) => {
  const { logger, stepwatch } = server;
  if (firstAt === undefined) {
    firstAt = Date.now();
    logger.info("shutdown: draining", { signal, drain_timeout_ms: server.drainTimeoutMs });
    // A drain that hangs must still end the process, in a bounded time.
    setTimeout(() => {
      logger.error("shutdown: drain timed out, exiting", {
        notifications_to_resend: stepwatch.notifier.attemptsInFlight,
      });
      process.exit(1);
    }, server.drainTimeoutMs).unref();
    server.close().then(
      () => {
        logger.info("shutdown: complete");
        process.exit(0);
      },
      (error: unknown) => {
        logger.error("shutdown: failed", { error: String(error) });
        process.exit(1);
      },
    );
    return;
  }
  if (Date.now() - firstAt < REPEAT_WINDOW_MS) return;
  // The operator insists: exit now. What was being sent is still owed in the store, and a later
  // sweep (this process's successor, or another instance) sends it again.
  logger.warn("shutdown: second signal, exiting without waiting", {
    signal,
    notifications_to_resend: stepwatch.notifier.attemptsInFlight,
  });
  process.exit(128 + (constants.signals[signal] ?? 0));
};
process.on("SIGTERM", onSignal);
process.on("SIGINT", onSignal);
