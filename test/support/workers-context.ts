import type { ExecutionContext } from "hono";

/** What a Workers runtime gives a request: work handed to `waitUntil` outlives the answer. */
export function workersContext(): { ctx: ExecutionContext; tasks: Promise<unknown>[] } {
  const tasks: Promise<unknown>[] = [];
  const ctx = {
    waitUntil: (task: Promise<unknown>) => {
      tasks.push(task);
    },
    passThroughOnException: () => undefined,
    props: {},
  } as ExecutionContext;
  return { ctx, tasks };
}
