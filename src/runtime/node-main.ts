import { printBanner } from "./banner.js";
import { startNodeServer } from "./node-server.js";
import { startupErrorMessage } from "./startup.js";

// `npm start`: the Node server, on the embedded store unless DYNAMODB_ENDPOINT is set.
try {
  const server = await startNodeServer(process.env);
  printBanner(server);
  const shutdown = (signal: string) => {
    console.log(`${signal}: draining in-flight requests and notifications…`);
    // A second signal, or a drain that hangs, must still end the process.
    setTimeout(() => process.exit(1), 15_000).unref();
    server.close().then(() => process.exit(0));
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
} catch (error) {
  console.error(startupErrorMessage(error));
  process.exit(1);
}
