// Child process: an in-memory dynalite for the bench, so its CPU can be measured and pinned apart
// from the server's. Prints BENCH_READY {"endpoint"} and runs until it is terminated.
import { startEmbeddedDynamo } from "../src/runtime/embedded-dynamo.js";
import { announce, exitWithParent, READY } from "./child-process.js";

const store = await startEmbeddedDynamo();
announce(READY, { endpoint: store.endpoint });
const stop = () => {
  store.close().then(() => process.exit(0));
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
exitWithParent(stop);
