import { readFileSync } from "node:fs";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import {
  CONSOLE_FILES,
  CONSOLE_HEADERS,
  type ConsoleFileName,
  consoleRoutes,
} from "../src/http/routes/console-routes.js";
import { consoleFilesIn } from "../src/runtime/console-files.js";

const DIR = new URL("../public/console/", import.meta.url);
const onDisk = (name: string) => readFileSync(new URL(name, DIR), "utf8");

// The console's routes over the real files, recording every name the reader was asked for.
function appOverFiles() {
  const asked: string[] = [];
  const read = consoleFilesIn(DIR);
  const app = new Hono();
  app.route(
    "/",
    consoleRoutes((name) => {
      asked.push(name);
      return read(name);
    }),
  );
  return { app, asked };
}

describe("console routes (Node and Lambda)", () => {
  it.each(Object.entries(CONSOLE_FILES))(
    "serves %s with its type and the security headers",
    async (name, type) => {
      const { app } = appOverFiles();
      const response = await app.request(`/console/${name}`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe(type);
      for (const [header, value] of Object.entries(CONSOLE_HEADERS)) {
        expect(response.headers.get(header), header).toBe(value);
      }
      expect(response.headers.get("set-cookie")).toBeNull();
      expect(await response.text()).toBe(onDisk(name));
    },
  );

  it("serves the page at /console/ and redirects /console there", async () => {
    const { app } = appOverFiles();
    const page = await app.request("/console/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("content-security-policy")).toBe(CONSOLE_HEADERS["content-security-policy"]);
    expect(await page.text()).toBe(onDisk("index.html"));
    const bare = await app.request("/console");
    expect(bare.status).toBe(308);
    expect(bare.headers.get("location")).toBe("/console/");
  });

  it("reads only its own files: other names, encoded paths and prototype keys are 404s that never reach the disk", async () => {
    const { app, asked } = appOverFiles();
    for (const path of [
      "/console/..%2F..%2Fpackage.json",
      "/console/%2e%2e%2Fopenapi.json",
      "/console/..%5C..%5Cpackage.json",
      "/console/_headers",
      "/console/console.js.map",
      "/console/Console.js",
      "/console/constructor",
      "/console/__proto__",
      "/console/hasOwnProperty",
      "/console/index.html%00.js",
    ]) {
      const response = await app.request(path);
      expect(response.status, path).toBe(404);
      expect(await response.json(), path).toMatchObject({ error: { code: "not_found" } });
    }
    expect(asked).toEqual([]);
  });

  it("answers 404 when the runtime has no such file", async () => {
    const app = new Hono();
    app.route(
      "/",
      consoleRoutes(async () => undefined),
    );
    const response = await app.request("/console/");
    expect(response.status).toBe(404);
    // The API's own 404 answer, as for any path it has no route for.
    expect(await response.json()).toEqual({
      error: { code: "not_found", message: "no route for GET /console/" },
    });
  });

  it("a missing directory is a 404, not a failure", async () => {
    const read = consoleFilesIn(new URL("./no-such-dir/", DIR));
    expect(await read("index.html" satisfies ConsoleFileName)).toBeUndefined();
  });
});

describe("console page (a strict CSP holds; data is never markup)", () => {
  const html = onDisk("index.html");
  const script = onDisk("console.js");

  it("has no inline script, handler or style, and loads only its own files", () => {
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts).toHaveLength(1);
    expect(scripts[0]?.[1]).toContain('src="/console/console.js"');
    expect(scripts[0]?.[2]).toBe("");
    expect(html).not.toMatch(/\son[a-z]+\s*=/i);
    expect(html).not.toMatch(/\sstyle\s*=/i);
    expect(html).not.toMatch(/<style/i);
    const references = [...html.matchAll(/\s(?:src|href)="([^"#][^"]*)"/g)].map((m) => m[1]);
    expect(references.sort()).toEqual(["/console/console.css", "/console/console.js", "data:,"]);
  });

  it("never builds markup from strings and keeps the token out of cookies and localStorage", () => {
    expect(script).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
    expect(script).not.toMatch(/document\.cookie|localStorage/);
    expect(script).toContain("sessionStorage");
  });
});
