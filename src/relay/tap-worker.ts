/**
 * The tap as a Cloudflare Worker (`wrangler.tap.toml`): the same handler as `npm run tap`, with
 * run steps forwarded inside `ctx.waitUntil`. There is no spool on Workers: events are retried
 * while the invocation lives (bounded by `giveUpAfterMs`), so a long stepwatch outage can lose some.
 */
import { createForwarder, type Forwarder } from "./forwarder.js";
import { createTapHandler, type TapHandler } from "./tap-handler.js";

/** The Worker's vars and secrets. */
export interface TapEnv {
  readonly TAP_UPSTREAM_URL: string;
  readonly STEPWATCH_URL: string;
  readonly STEPWATCH_WEBHOOK_SECRET: string;
}

interface Context {
  waitUntil(promise: Promise<unknown>): void;
}

let tap: Promise<{ handler: TapHandler; forwarder: Forwarder }> | null = null;

const setUp = (env: TapEnv) =>
  (tap ??= createForwarder({
    url: env.STEPWATCH_URL,
    secret: env.STEPWATCH_WEBHOOK_SECRET,
    // A Worker's waitUntil lasts about 30 s after the response.
    giveUpAfterMs: 25_000,
  }).then((forwarder) => ({
    forwarder,
    handler: createTapHandler({
      upstream: env.TAP_UPSTREAM_URL,
      forwarder,
      onError: (message) => console.warn(JSON.stringify({ level: "warn", msg: message })),
    }),
  })));

export default {
  async fetch(request: Request, env: TapEnv, ctx: Context): Promise<Response> {
    const { handler } = await setUp(env);
    return await handler(request, (promise) => ctx.waitUntil(promise));
  },
};
