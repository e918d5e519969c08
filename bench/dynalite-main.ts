// Child process: an in-memory dynalite for the bench, so its CPU can be measured and pinned apart
// from the server's. Prints BENCH_READY {"endpoint"} and runs until it is terminated.
import { startEmbeddedDynamo } from "../src/runtime/embedded-dynamo.js";
import { announce, exitWithParent, READY } from "./child-process.js";

// The key pair every bench client signs with (the store refuses any other).
const store = await startEmbeddedDynamo(undefined, 0, undefined, {
  accessKeyId: "bench",
  secretAccessKey: "bench",
});
announce(READY, { endpoint: store.endpoint });
const stop = () => {
  store.close().then(() => process.exit(0));
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
exitWithParent(stop);
