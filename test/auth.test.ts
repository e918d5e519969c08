import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { consoleRoutes } from "../src/http/routes/console-routes.js";
import { createPromMetrics } from "../src/runtime/prom-metrics.js";
import { createTestApp, TEST_TOKEN, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// SPEC §5: every API route but the health checks and the signed ingest needs a bearer token. The
// table is whatever the served OpenAPI document lists, read generically (however it is produced), so
// a new documented route is covered the day it is added; and a route the app serves without
// documenting it fails below unless it is one of the deliberate exceptions named here.

interface Operation {
  readonly method: string;
  /** OpenAPI template, e.g. /v1/runs/{run_id}. */
  readonly path: string;
  readonly schemes: readonly string[];
}

const HTTP_METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

// Routes the app serves that the document leaves out on purpose, each with its own auth story.
const UNDOCUMENTED: Readonly<Record<string, "public" | "bearer">> = {
  "GET /openapi.json": "public", // the document itself
  "GET /metrics": "bearer", // Prometheus scrape (METRICS_TOKEN, else API_TOKEN): not part of the API
};
// The operator console's static files are public (they hold no data; the API they call needs a token).
const CONSOLE_PREFIX = "/console";

let store: TestStore;
let app: TestApp;
let document: { paths: Record<string, Record<string, unknown>>; security?: unknown; components?: unknown };
let operations: Operation[];

beforeAll(async () => {
  store = await startTestStore();
  // Every optional part configured, so the app serves every route the document lists (the
  // OpenAI producer's included).
  app = await createTestApp(
    store,
    { OPENAI_WEBHOOK_SECRET: generateWebhookSecret() },
    {
      metrics: createPromMetrics(),
      consoleRoutes: consoleRoutes(async () => ({ body: "" })),
    },
  );
  const served = await app.app.request("/openapi.json");
  expect(served.status).toBe(200);
  document = (await served.json()) as typeof document;
  operations = operationsOf(document);
});

afterAll(async () => {
  await app?.close();
  await store?.close();
});

function operationsOf(doc: typeof document): Operation[] {
  const globalSecurity = Array.isArray(doc.security) ? doc.security : [];
  const found: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method] as { security?: unknown } | undefined;
      if (!operation) continue;
      const security = Array.isArray(operation.security) ? operation.security : globalSecurity;
      const schemes = security.flatMap((requirement) => Object.keys(requirement as object));
      found.push({ method: method.toUpperCase(), path, schemes });
    }
  }
  return found;
}

function webhookSchemes(doc: typeof document): Set<string> {
  const components = doc.components as { securitySchemes?: Record<string, { type?: string; name?: string }> };
  const schemes = components?.securitySchemes ?? {};
  // The Standard Webhooks scheme is the one carried in the webhook-signature header.
  return new Set(
    Object.entries(schemes)
      .filter(([, scheme]) => scheme.type === "apiKey" && scheme.name?.toLowerCase() === "webhook-signature")
      .map(([name]) => name),
  );
}

function protectedOperations(): Operation[] {
  const signed = webhookSchemes(document);
  return operations.filter(
    (operation) => operation.schemes.length > 0 && !operation.schemes.some((scheme) => signed.has(scheme)),
  );
}

// A concrete URL for an OpenAPI path template: any value reaches the auth check before validation.
function concrete(path: string): string {
  return path.replace(/\{[^}]+\}/g, "zz-auth-probe");
}

// Hono route pattern (/v1/runs/:run_id) to OpenAPI template (/v1/runs/{run_id}).
function templateOf(honoPath: string): string {
  return honoPath.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, "{$1}");
}

const BAD_HEADERS: ReadonlyArray<readonly [string, Record<string, string>, string]> = [
  ["no Authorization header", {}, "missing bearer token"],
  ["a wrong token", { authorization: `Bearer not-${TEST_TOKEN}` }, "invalid bearer token"],
  [
    "a token differing only in its last character",
    { authorization: `Bearer ${TEST_TOKEN.slice(0, -1)}X` },
    "invalid bearer token",
  ],
  [
    "the Basic scheme",
    { authorization: `Basic ${btoa(`user:${TEST_TOKEN}`)}` },
    "malformed Authorization header",
  ],
  ["Bearer without a token", { authorization: "Bearer" }, "malformed Authorization header"],
  [
    "a token with a space inside",
    { authorization: `Bearer ${TEST_TOKEN} extra` },
    "malformed Authorization header",
  ],
];

async function call(operation: Operation, headers: Record<string, string>): Promise<Response> {
  const init: RequestInit = { method: operation.method, headers: { ...headers } };
  if (operation.method !== "GET" && operation.method !== "HEAD" && operation.method !== "DELETE") {
    init.headers = { ...headers, "content-type": "application/json" };
    init.body = "{}";
  }
  return await app.app.request(concrete(operation.path), init);
}

describe("bearer auth on every protected route of the OpenAPI document", () => {
  it("the document lists protected routes, and the ingest route under the webhook scheme only", () => {
    const protectedOnes = protectedOperations();
    // Guards the reading itself: a document the reader misunderstood must not pass as "nothing to check".
    expect(protectedOnes.length).toBeGreaterThanOrEqual(10);
    const ingest = operations.find((operation) => operation.path === "/v1/webhooks/run-steps");
    expect(ingest?.schemes.length).toBeGreaterThan(0);
    expect(protectedOnes).not.toContainEqual(ingest);
  });

  it.each(BAD_HEADERS)("answers 401 to %s on each of them", async (_label, headers, message) => {
    const answers = await Promise.all(
      [...protectedOperations(), ...undocumentedBearer()].map(async (operation, i) => {
        // Like every answer, a refusal is JSON and carries the caller's request id.
        const requestId = `auth-probe-${i}`;
        const response = await call(operation, { ...headers, "x-request-id": requestId });
        const body = (await response.json()) as { error?: { code?: string; message?: string } };
        return {
          route: `${operation.method} ${operation.path}`,
          status: response.status,
          type: response.headers.get("content-type"),
          echoed: response.headers.get("x-request-id") === requestId,
          error: body.error,
        };
      }),
    );
    for (const answer of answers) {
      expect(answer, answer.route).toEqual({
        route: answer.route,
        status: 401,
        type: "application/json",
        echoed: true,
        error: { code: "unauthorized", message },
      });
    }
  });

  it("lets the right token through on each of them (the 401s above are the auth, not the route)", async () => {
    for (const operation of [...protectedOperations(), ...undocumentedBearer()]) {
      const response = await call(operation, { authorization: `Bearer ${TEST_TOKEN}` });
      expect(response.status, `${operation.method} ${operation.path}`).not.toBe(401);
    }
  });

  it("serves no route that the document does not list, except the named public ones", () => {
    const documented = new Set(operations.map((operation) => `${operation.method} ${operation.path}`));
    const served = new Set(
      app.app.routes
        .filter((route) => route.method !== "ALL")
        .map((route) => `${route.method} ${templateOf(route.path)}`),
    );
    const undocumented = [...served].filter(
      (route) =>
        !documented.has(route) &&
        !(route in UNDOCUMENTED) &&
        !route.split(" ")[1]?.startsWith(CONSOLE_PREFIX),
    );
    expect(undocumented).toEqual([]);
    // And the reverse: a documented route the app does not serve is a stale document.
    expect([...documented].filter((route) => !served.has(route))).toEqual([]);
  });

  it("keeps the public routes public", async () => {
    for (const path of ["/healthz", "/readyz", "/openapi.json"]) {
      expect((await app.app.request(path)).status, path).toBe(200);
    }
  });
});

function undocumentedBearer(): Operation[] {
  return Object.entries(UNDOCUMENTED)
    .filter(([, kind]) => kind === "bearer")
    .map(([route]) => {
      const [method = "GET", path = "/"] = route.split(" ");
      return { method, path, schemes: ["bearer"] };
    });
}
