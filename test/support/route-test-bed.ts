import { generateWebhookSecret } from "../../src/domain/webhook-secret.js";
import { webhookSink } from "./deliveries.js";
import { type SinkServer, startSinkServer } from "./sink-server.js";
import { createTestApp, type TestApp } from "./test-app.js";
import { startTestStore, type TestStore } from "./test-store.js";
import { type ThrottleableStore, throttleable } from "./throttling.js";

/** What the route tests run against: an app over a throttleable store, and a loopback sink. */
export interface RouteTestBed {
  readonly store: TestStore;
  readonly throttling: ThrottleableStore;
  readonly sink: SinkServer;
  readonly app: TestApp;
  close(): Promise<void>;
}

/**
 * Starts a store, a sink server and an app whose sinks are a webhook `hook` posting to that server's
 * `/in`, then `extraSinks`; `env` and `options` go to {@link createTestApp} as they are.
 */
export async function startRouteTestBed(
  setup: {
    extraSinks?: readonly unknown[];
    env?: Record<string, string>;
    options?: Parameters<typeof createTestApp>[2];
  } = {},
): Promise<RouteTestBed> {
  const [store, sink] = await Promise.all([startTestStore(), startSinkServer()]);
  const throttling = throttleable(store);
  const app = await createTestApp(
    throttling.store,
    {
      NOTIFY_SINKS: JSON.stringify([
        webhookSink("hook", `${sink.url}/in`, generateWebhookSecret()),
        ...(setup.extraSinks ?? []),
      ]),
      ...setup.env,
    },
    setup.options,
  );
  return {
    store,
    throttling,
    sink,
    app,
    close: async () => {
      await app.drain();
      await Promise.all([store.close(), sink.close()]);
    },
  };
}
