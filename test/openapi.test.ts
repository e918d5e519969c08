import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import SwaggerParser from "@apidevtools/swagger-parser";
import { Hono } from "hono";
import * as v from "valibot";
import { expect, it, describe as suite } from "vitest";
import { buildOpenApiDocument } from "../src/http/openapi-document.js";
import { describe, validate } from "../src/http/route-docs.js";
import {
  checkConformance,
  documentedRoutes,
  NonConformingResponseError,
} from "./support/openapi-conformance.js";
import { toolCheck } from "./support/tool-check.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FILE = `${ROOT}public/openapi.json`;

type Operation = {
  operationId?: string;
  security?: unknown[];
  parameters?: Array<{ name: string; in: string; schema?: { type?: string } }>;
  responses: Record<string, { $ref?: string }>;
};
type Document = {
  openapi: string;
  servers?: unknown[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; responses: Record<string, unknown> };
};

const operations = (doc: Document) =>
  Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ key: `${method.toUpperCase()} ${path}`, op })),
  );

suite("the OpenAPI document (public/openapi.json)", () => {
  it("is what the routes generate: run `npm run openapi` after changing a route or schema", async () => {
    const generated = JSON.parse(JSON.stringify(await buildOpenApiDocument()));
    expect(JSON.parse(readFileSync(FILE, "utf8"))).toEqual(generated);
  });

  it("is a valid OpenAPI 3.1 document to @apidevtools/swagger-parser", async () => {
    const doc = JSON.parse(readFileSync(FILE, "utf8"));
    await expect(SwaggerParser.validate(doc)).resolves.toMatchObject({ openapi: "3.1.0" });
  });

  it("passes `redocly lint` (redocly.yaml) with no errors and no warnings", async () => {
    // `redocly lint public/openapi.json --config redocly.yaml --format=json` (test/support/tool-checks.ts).
    const run = await toolCheck("redocly-lint");
    const report = JSON.parse(run.stdout) as {
      totals: { errors: number; warnings: number };
      problems: unknown[];
    };
    expect(report.problems).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  }, 180_000);

  it("names every operation, marks its security, and documents 401 wherever a token is needed", () => {
    const doc = JSON.parse(readFileSync(FILE, "utf8")) as Document;
    expect(doc.servers?.length).toBeGreaterThan(0);
    const ids = new Set<string>();
    for (const { key, op } of operations(doc)) {
      expect(op.operationId, key).toMatch(/^[a-z][A-Za-z]+$/);
      ids.add(op.operationId ?? "");
      expect(op.security, key).toBeDefined();
      const bearer = JSON.stringify(op.security) === JSON.stringify([{ bearer: [] }]);
      if (bearer) expect(op.responses["401"]?.$ref, key).toBe("#/components/responses/Unauthorized");
      // Only the public service routes go without a 4xx (redocly's rule is off for them alone).
      if (!Object.keys(op.responses).some((s) => s.startsWith("4")))
        expect(["GET /healthz", "GET /readyz", "GET /openapi.json"]).toContain(key);
    }
    expect(ids.size).toBe(operations(doc).length);
    for (const key of ["GET /healthz", "GET /readyz", "GET /openapi.json"])
      expect(operations(doc).find((o) => o.key === key)?.op.security).toEqual([]);
  });

  it("documents the statuses each route answers: 409 on retries, 503 where the store is read", () => {
    const doc = JSON.parse(readFileSync(FILE, "utf8")) as Document;
    const statuses = (key: string) =>
      Object.keys(operations(doc).find((o) => o.key === key)?.op.responses ?? {});
    expect(statuses("POST /v1/deliveries/{delivery_id}/retry")).toEqual(["200", "401", "404", "409", "503"]);
    expect(statuses("POST /v1/webhooks/run-steps")).toEqual([
      "200",
      "400",
      "401",
      "413",
      "415",
      "422",
      "503",
    ]);
    expect(statuses("POST /v1/quarantine/{id}/replay")).toEqual([
      "200",
      "400",
      "401",
      "404",
      "409",
      "413",
      "422",
      "503",
    ]);
    for (const key of ["GET /readyz", "GET /v1/run-steps/{step_id}", "GET /v1/sinks", "GET /metrics"])
      expect(statuses(key), key).toContain("503");
  });

  it("carries the webhook-* headers on ingest and query integers as integers", () => {
    const doc = JSON.parse(readFileSync(FILE, "utf8")) as Document;
    const ingest = doc.paths["/v1/webhooks/run-steps"]?.post;
    expect(ingest?.parameters?.filter((p) => p.in === "header").map((p) => p.name)).toEqual([
      "webhook-id",
      "webhook-timestamp",
      "webhook-signature",
    ]);
    const list = doc.paths["/v1/run-steps"]?.get?.parameters ?? [];
    for (const name of ["limit", "since", "until"])
      expect(list.find((p) => p.name === name)?.schema?.type, name).toBe("integer");
    // Only fractions are numbers (file_search scores); counts, times and statuses are integers.
    const numbers = [...JSON.stringify(doc).matchAll(/"(\w+)":\{"type":"number"/g)].map((m) => m[1]);
    expect(new Set(numbers)).toEqual(new Set(["score_threshold", "score"]));
  });

  it("refers to each named component, and names the shared ones", () => {
    const doc = JSON.parse(readFileSync(FILE, "utf8")) as Document;
    const text = JSON.stringify(doc);
    for (const kind of ["schemas", "responses"] as const)
      for (const name of Object.keys(doc.components[kind]))
        expect(text, `${kind}/${name}`).toContain(`"#/components/${kind}/${name}"`);
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(["Error", "Delivery", "Sink", "StoredStep", "RunStep", "RunStepWebhookEvent"]),
    );
  });
});

suite("conformance of answers to their route's documentation", () => {
  const app = new Hono();
  const Thing = v.object({ id: v.string(), n: v.pipe(v.number(), v.integer()) });
  app.get(
    "/things/:id",
    describe({
      operationId: "getThing",
      summary: "a thing",
      tags: ["T"],
      security: "bearer",
      responses: { 200: { description: "it", schema: Thing } },
      errors: { 404: "none" },
    }),
    validate("query", v.object({ n: v.optional(v.pipe(v.string(), v.regex(/^\d+$/, "n must be digits"))) })),
    (c) => {
      const id = c.req.param("id");
      if (id === "missing") return c.json({ error: { code: "not_found", message: "no" } }, 404);
      if (id === "teapot") return c.json({ error: { code: "internal_error", message: "?" } }, 418 as 404);
      if (id === "bad") return c.json({ error: "not the error shape" }, 404);
      return c.json({ id, n: id === "float" ? 1.5 : 1 });
    },
  );
  const routes = documentedRoutes(app);
  const check = async (path: string) => checkConformance(routes, "GET", path, await app.request(path));

  it("accepts documented answers: a body its schema parses, a documented error, 401 of a bearer route", async () => {
    await expect(check("/things/a")).resolves.toBeUndefined();
    await expect(check("/things/missing")).resolves.toBeUndefined();
    const unauthorized = Response.json({ error: { code: "unauthorized", message: "x" } }, { status: 401 });
    await expect(checkConformance(routes, "GET", "/things/a", unauthorized)).resolves.toBeUndefined();
    await expect(check("/elsewhere")).resolves.toBeUndefined();
  });

  it("refuses a status not documented, a body its schema refuses, and an error without the error body", async () => {
    await expect(check("/things/teapot")).rejects.toThrow(/418, a status it does not document/);
    await expect(check("/things/float")).rejects.toThrow(NonConformingResponseError);
    await expect(check("/things/bad")).rejects.toThrow(/without the error body/);
  });

  it("a validator's refusal is the API's 400 invalid_request with the schema's message", async () => {
    const response = await app.request("/things/a?n=x");
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: { code: "invalid_request", message: "n must be digits" },
    });
  });
});
