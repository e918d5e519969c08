import { type Context, Hono } from "hono";
import { fail } from "../responses.js";

/** A file of the operator console, as its runtime reads it. */
export interface ConsoleFile {
  readonly body: string | Uint8Array<ArrayBuffer>;
}

/** Reads one file of `public/console/` by name (only names of CONSOLE_FILES are asked for). */
export type ConsoleFiles = (name: ConsoleFileName) => Promise<ConsoleFile | undefined>;

/** The console's files and their media types: the only names ever read, so no path reaches the disk. */
export const CONSOLE_FILES = {
  "index.html": "text/html; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
  "console.css": "text/css; charset=utf-8",
} as const;

/** A name of CONSOLE_FILES. */
export type ConsoleFileName = keyof typeof CONSOLE_FILES;

/**
 * Headers of every console file: never cached stale, no script, style or connection but the page's
 * own origin (the page has no inline script, so `default-src 'self'`-style rules hold), never framed,
 * no referrer. public/_headers gives the Worker's static assets the same.
 */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  "cache-control": "no-cache",
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

const isConsoleFile = (name: string): name is ConsoleFileName => Object.hasOwn(CONSOLE_FILES, name);

/**
 * `/console/`: the operator console's static files (the page holds no data; every API call it makes
 * carries the operator's bearer token). `/console` redirects to `/console/`, as Workers' static
 * assets do, so the page has one address. Mounted at the root (a sub-app mounted at `/console` could
 * not tell `/console/` from `/console`).
 */
export function consoleRoutes(files: ConsoleFiles): Hono {
  const routes = new Hono();
  const serve = async (c: Context, name: string) => {
    const file = isConsoleFile(name) ? await files(name) : undefined;
    if (!file || !isConsoleFile(name))
      return fail(c, 404, "not_found", `no route for ${c.req.method} ${c.req.path}`);
    return c.body(file.body, 200, { ...CONSOLE_HEADERS, "content-type": CONSOLE_FILES[name] });
  };
  routes.get("/console", (c) => c.redirect("/console/", 308));
  routes.get("/console/", (c) => serve(c, "index.html"));
  routes.get("/console/:name", (c) => serve(c, c.req.param("name")));
  return routes;
}
