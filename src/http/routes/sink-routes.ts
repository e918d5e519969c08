import { type Context, Hono } from "hono";
import type { DeliveryOperations, SinkView } from "../../usecases/delivery-operations.js";
import type { SinkResponse, SinkTestResponse } from "../api-schemas.js";
import { fail, toSinkResponse, toSinkTestResponse } from "../responses.js";

/**
 * `/v1/sinks`: every sink's state and backlog; disable, enable and test one. Mounted behind the
 * API's bearer auth.
 */
export function sinkRoutes(ops: DeliveryOperations, nowMs: () => number): Hono {
  const routes = new Hono();
  const one = (c: Context, view: SinkView | null) =>
    view
      ? c.json<SinkResponse>(toSinkResponse(view, nowMs()))
      : fail(c, 404, "not_found", `no sink ${c.req.param("name")}`);

  routes.get("/", async (c) => {
    const now = nowMs();
    return c.json({ data: (await ops.sinks()).map((view) => toSinkResponse(view, now)), next_cursor: null });
  });
  routes.get("/:name", async (c) => one(c, await ops.sink(c.req.param("name"))));
  routes.post("/:name/disable", async (c) => one(c, await ops.disable(c.req.param("name"))));
  routes.post("/:name/enable", async (c) => one(c, await ops.enable(c.req.param("name"))));
  routes.post("/:name/test", async (c) => {
    const name = c.req.param("name");
    const result = await ops.test(name);
    if (!result) return fail(c, 404, "not_found", `no sink ${name}`);
    return c.json<SinkTestResponse>(toSinkTestResponse(name, result));
  });
  return routes;
}
