import type { Context } from "hono";

/**
 * Keeps work that runs after the answer (prompt notifications) alive: Workers must be told with
 * `waitUntil`, or the isolate may stop once the response is sent; Node and Lambda simply run it.
 */
export function runAfterResponse(c: Context, task: Promise<void>): void {
  let ctx: { waitUntil(promise: Promise<unknown>): void };
  try {
    ctx = c.executionCtx;
  } catch {
    // Hono's getter throws where the runtime passed no execution context: the promise runs by itself.
    return;
  }
  ctx.waitUntil(task);
}
