import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ed from "@noble/ed25519";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildWorker, GZIP_BUDGET_BYTES } from "../scripts/build-worker.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { buildOpenApiDocument } from "../src/http/openapi-document.js";
import { CONSOLE_HEADERS } from "../src/http/routes/console-routes.js";
import worker from "../src/runtime/worker.js";
import { failedResponse } from "./fixtures/openai-objects.js";
import { type FakeOpenAi, startFakeOpenAi } from "./support/fake-openai.js";
import { makeStep } from "./support/run-steps.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";
import { TEST_TOKEN } from "./support/test-app.js";
import { startTestStore, TEST_AWS, type TestStore } from "./support/test-store.js";
import { toolCheck } from "./support/tool-check.js";
import { COMMITTED_WORKER_TYPES } from "./support/tool-checks.js";
import { startWorkerRuntime, type WorkerRuntime } from "./support/worker-runtime.js";

const ROOT_DIR = fileURLToPath(new URL("..", import.meta.url));

interface StepBody {
  id: string;
  status: string;
  deliveries: Array<{ sink: string; state: string; attempts: number; next_attempt_at: number | null }>;
}

const secret = generateWebhookSecret();
const sinkSecret = generateWebhookSecret();
const openAiSecret = generateWebhookSecret();
const OPENAI_KEY = "sk-worker-test-0123456789";
// Ed25519 keys made by @noble/ed25519: a sender signing v1a to the Worker, and the "ed" sink's key.
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const sender = await ed.keygenAsync();
const sinkKeys = await ed.keygenAsync();
let store: TestStore;
let sink: SinkServer;
let api: FakeOpenAi;
let runtime: WorkerRuntime;
let seq = 0;
const uid = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${seq++}`;

beforeAll(async () => {
  [store, sink, api] = await Promise.all([
    startTestStore("stepwatch-worker"),
    startSinkServer(),
    startFakeOpenAi({ apiKey: OPENAI_KEY }),
  ]);
  runtime = await startWorkerRuntime({
    WEBHOOK_SECRET: `${secret} whpk_${b64(sender.publicKey)}`,
    API_TOKEN: TEST_TOKEN,
    DYNAMODB_TABLE: store.tableName,
    DYNAMODB_ENDPOINT: store.endpoint,
    ...TEST_AWS,
    NOTIFY_SINKS: JSON.stringify([
      { name: "hook", type: "webhook", url: `${sink.url}/hook`, secret: sinkSecret },
      {
        name: "ed",
        type: "webhook",
        url: `${sink.url}/ed`,
        signing_key: `whsk_${b64(sinkKeys.secretKey)}`,
        filter: { metadata: { sig: "v1a" } },
      },
    ]),
    NOTIFY_RETRY_SCHEDULE: "0.5",
    NOTIFY_TIMEOUT_MS: "2000",
    // OpenAI's platform webhooks, hydrated from the loopback stand-in of its API.
    OPENAI_WEBHOOK_SECRET: openAiSecret,
    OPENAI_API_KEY: OPENAI_KEY,
    OPENAI_BASE_URL: api.url,
    LOG_LEVEL: process.env.WORKER_LOG_LEVEL ? "debug" : "warn",
  });
});

afterAll(async () => {
  await runtime?.dispose();
  await Promise.all([store?.close(), sink?.close(), api?.close()]);
});

// A webhook delivery signed by the third-party `standardwebhooks` library.
function signed(body: unknown, signWith = secret): RequestInit {
  const payload = JSON.stringify(body);
  const id = uid("msg");
  const now = new Date();
  return {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
      "webhook-signature": new Webhook(signWith).sign(id, now, payload),
    },
    body: payload,
  };
}

const post = (init: RequestInit) => fetch(new URL("/v1/webhooks/run-steps", runtime.url), init);
const send = (body: unknown, signWith = secret) => post(signed(body, signWith));

const read = (path: string) =>
  fetch(new URL(path, runtime.url), { headers: { authorization: `Bearer ${TEST_TOKEN}` } });

const stepOf = async (id: string) => (await (await read(`/v1/run-steps/${id}`)).json()) as StepBody;

const requestsFor = (stepId: string) => sink.received.filter((r) => r.body.includes(`"${stepId}"`));

/** A failed response under a fresh id, served by the stand-in, and the thin event OpenAI sends for it. */
function failedOnOpenAi() {
  const response = { ...failedResponse, id: uid("resp_w") };
  api.responses.set(response.id, response);
  const event = {
    id: uid("evt_w"),
    object: "event",
    created_at: Math.floor(Date.now() / 1000),
    type: "response.failed",
    data: { id: response.id },
  };
  return { response, event };
}

const postOpenAi = (event: unknown) =>
  fetch(new URL("/v1/webhooks/openai", runtime.url), signed(event, openAiSecret));

// The hook sink's notifications about one response, verified with the sink's secret.
const notificationsOf = (responseId: string) =>
  sink.received
    .filter((r) => r.path === "/hook" && r.body.includes(`"${responseId}"`))
    .map(
      (r) =>
        new Webhook(sinkSecret).verify(r.body, {
          "webhook-id": String(r.headers["webhook-id"]),
          "webhook-timestamp": String(r.headers["webhook-timestamp"]),
          "webhook-signature": String(r.headers["webhook-signature"]),
        }) as { type: string; data: Record<string, unknown> },
    );

describe("the Worker in workerd (wrangler's local runtime)", () => {
  it("stores a signed event and serves the same step from the read API", async () => {
    const step = makeStep({ id: uid("step_w"), run_id: uid("run_w"), metadata: { relay: "edge" } });
    const delivery = signed({ event: "thread.run.step.in_progress", data: step });
    const ingest = await post(delivery);
    expect(ingest.status).toBe(200);
    expect(await ingest.json()).toEqual({ step_id: step.id, status: "in_progress", outcome: "created" });

    const stored = await read(`/v1/run-steps/${step.id}`);
    expect(stored.status).toBe(200);
    expect(await stored.json()).toMatchObject({ ...step, deliveries: [] });

    // The sender's retry of the same delivery changes nothing.
    const again = await post(delivery);
    expect(await again.json()).toEqual({ step_id: step.id, status: "in_progress", outcome: "stale" });
  });

  it("serves the OpenAPI document from its static assets, outside the bundle", async () => {
    const response = await fetch(new URL("/openapi.json", runtime.url));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual(JSON.parse(JSON.stringify(await buildOpenApiDocument())));
  });

  it("serves the operator console from its static assets, with the console's security headers", async () => {
    const page = await fetch(new URL("/console/", runtime.url));
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await page.text()).toBe(
      readFileSync(new URL("../public/console/index.html", import.meta.url), "utf8"),
    );
    const script = await fetch(new URL("/console/console.js", runtime.url));
    expect(script.headers.get("content-type")).toMatch(/^(text|application)\/javascript/);
    expect(await script.text()).toContain("sessionStorage");
    for (const response of [page, script]) {
      for (const [name, value] of Object.entries(CONSOLE_HEADERS)) {
        expect(response.headers.get(name), name).toBe(value);
      }
    }
    // Workers' html_handling gives the page one address, as the Node and Lambda routes do.
    const bare = await fetch(new URL("/console", runtime.url), { redirect: "manual" });
    await bare.body?.cancel();
    expect(bare.status).toBeGreaterThanOrEqual(301);
    expect(bare.status).toBeLessThanOrEqual(308);
    expect(new URL(bare.headers.get("location") ?? "", runtime.url).pathname).toBe("/console/");
  });

  it("refuses a bad signature with 401 and stores nothing", async () => {
    const step = makeStep({ id: uid("step_bad") });
    const response = await send(step, generateWebhookSecret());
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { code: "invalid_signature" } });
    expect((await read(`/v1/run-steps/${step.id}`)).status).toBe(404);
  });

  it("delivers a terminal step's notification after answering, under ctx.waitUntil", async () => {
    const step = makeStep({ id: uid("step_done"), status: "completed" });
    const response = await send(step);
    expect(await response.json()).toMatchObject({ outcome: "created" });

    const [request] = await eventually(async () => {
      const found = requestsFor(step.id as string);
      return found.length > 0 ? found : undefined;
    });
    // Signed with the sink's own secret: a receiver using any Standard Webhooks library accepts it.
    const payload = new Webhook(sinkSecret).verify(request?.body ?? "", {
      "webhook-id": String(request?.headers["webhook-id"]),
      "webhook-timestamp": String(request?.headers["webhook-timestamp"]),
      "webhook-signature": String(request?.headers["webhook-signature"]),
    });
    expect(payload).toMatchObject({ type: "run_step.completed", data: { id: step.id } });
    const settled = await eventually(async () => {
      const stored = await stepOf(step.id as string);
      return stored.deliveries[0]?.state === "delivered" ? stored : undefined;
    });
    expect(settled.deliveries).toMatchObject([{ sink: "hook", state: "delivered", attempts: 1 }]);
  });

  it("v1a both ways with workerd's Web Crypto Ed25519, checked against noble", async () => {
    const step = makeStep({ id: uid("step_ed"), status: "completed", metadata: { sig: "v1a" } });
    const payload = JSON.stringify(step);
    const id = uid("msg");
    const ts = Math.floor(Date.now() / 1000);
    const signature = await ed.signAsync(
      new TextEncoder().encode(`${id}.${ts}.${payload}`),
      sender.secretKey,
    );
    const init = (sig: string): RequestInit => ({
      method: "POST",
      headers: {
        "content-type": "application/json",
        "webhook-id": id,
        "webhook-timestamp": String(ts),
        "webhook-signature": sig,
      },
      body: payload,
    });
    const forged = await ed.signAsync(new TextEncoder().encode(`${id}.${ts}.${payload}`), sinkKeys.secretKey);
    expect((await post(init(`v1a,${b64(forged)}`))).status).toBe(401);
    const accepted = await post(init(`v1,AAAA v1a,${b64(signature)}`));
    expect(await accepted.json()).toMatchObject({ step_id: step.id, outcome: "created" });

    const published = ((await (await read("/v1/sinks/ed")).json()) as { public_key: string }).public_key;
    expect(published).toBe(`whpk_${b64(sinkKeys.publicKey)}`);
    const request = await eventually(async () =>
      sink.received.find((r) => r.path === "/ed" && r.body.includes(`"${step.id}"`)),
    );
    const v1a = String(request.headers["webhook-signature"]);
    expect(v1a).toMatch(/^v1a,[^ ]+$/);
    const content = `${request.headers["webhook-id"]}.${request.headers["webhook-timestamp"]}.${request.body}`;
    expect(
      await ed.verifyAsync(
        Buffer.from(v1a.slice(4), "base64"),
        new TextEncoder().encode(content),
        sinkKeys.publicKey,
      ),
    ).toBe(true);
  });

  it("sweeps a due delivery to the sink from the scheduled (cron) handler", async () => {
    sink.script({ status: 503, body: "try later" });
    const step = makeStep({ id: uid("step_retry"), status: "failed" });
    expect((await send(step)).status).toBe(200);

    // The prompt attempt fails; the delivery waits, pending, for its retry to fall due.
    const pending = await eventually(async () => {
      const stored = await stepOf(step.id as string);
      const delivery = stored.deliveries[0];
      return delivery?.attempts === 1 &&
        delivery.next_attempt_at !== null &&
        delivery.next_attempt_at <= Date.now() / 1000
        ? stored
        : undefined;
    });
    expect(pending.deliveries).toMatchObject([{ state: "pending", attempts: 1 }]);
    expect(requestsFor(step.id as string)).toHaveLength(1);

    // Nothing runs a Worker between requests but its cron: only `scheduled` can deliver the retry.
    expect(await runtime.scheduled()).toEqual({ status: 200, outcome: "ok" });
    expect(requestsFor(step.id as string)).toHaveLength(2);
    expect((await stepOf(step.id as string)).deliveries).toMatchObject([
      { sink: "hook", state: "delivered", attempts: 2 },
    ]);
  });

  it("records a signed thin OpenAI event, hydrates it from the API under ctx.waitUntil, and notifies once", async () => {
    const { response, event } = failedOnOpenAi();
    const answer = await postOpenAi(event);
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ event_id: event.id, type: "response.failed", outcome: "accepted" });

    // Fetched from the stand-in through workerd's fetch (with the key: it answers 401 otherwise).
    const [notification] = await eventually(async () => {
      const found = notificationsOf(response.id);
      return found.length > 0 ? found : undefined;
    });
    expect(notification).toMatchObject({ type: "response.failed", data: response });
    expect(api.count(`/v1/responses/${response.id}`)).toBe(1);
    const stored = await eventually(async () => {
      const body = (await (await read(`/v1/responses/${response.id}`)).json()) as {
        deliveries?: Array<{ sink: string; state: string }>;
        events?: Array<{ hydration: string }>;
      };
      // The notification goes out before the event is marked hydrated: wait for both.
      const delivered = body.deliveries?.some((d) => d.sink === "hook" && d.state === "delivered");
      return delivered && body.events?.[0]?.hydration === "hydrated" ? body : undefined;
    });
    expect(stored).toMatchObject({
      ...response,
      events: [{ id: event.id, type: "response.failed", hydration: "hydrated", attempts: 1 }],
    });
    // OpenAI's redelivery of the same event is a duplicate: no second fetch, no second notification.
    expect(await (await postOpenAi(event)).json()).toMatchObject({ outcome: "duplicate" });
    expect(await runtime.scheduled()).toEqual({ status: 200, outcome: "ok" });
    expect(notificationsOf(response.id)).toHaveLength(1);
    expect(api.count(`/v1/responses/${response.id}`)).toBe(1);
  });

  it("retries a failed hydration from the scheduled (cron) handler", async () => {
    const { response, event } = failedOnOpenAi();
    // The first hydration (after the answer) meets a 503: the event waits for its retry (~1 s).
    api.failNext(1, { status: 503 });
    expect((await postOpenAi(event)).status).toBe(200);
    await eventually(async () => (api.count(`/v1/responses/${response.id}`) === 1 ? true : undefined));
    expect((await read(`/v1/responses/${response.id}`)).status).toBe(404);

    // Only the cron runs a Worker between requests: only `scheduled` can make the retry.
    const [notification] = await eventually(
      async () => {
        expect(await runtime.scheduled()).toEqual({ status: 200, outcome: "ok" });
        const found = notificationsOf(response.id);
        return found.length > 0 ? found : undefined;
      },
      15_000,
      500,
    );
    expect(notification).toMatchObject({ type: "response.failed", data: { id: response.id } });
    expect(api.count(`/v1/responses/${response.id}`)).toBe(2);
    expect(await (await read(`/v1/responses/${response.id}`)).json()).toMatchObject({
      id: response.id,
      status: "failed",
      events: [{ id: event.id, hydration: "hydrated", attempts: 2 }],
    });
  });

  it("answers 503 with Retry-After while the store is unreachable", async () => {
    await store.stop();
    try {
      const response = await send(makeStep({ id: uid("step_down") }));
      expect(response.status).toBe(503);
      expect(response.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(await response.json()).toMatchObject({ error: { code: "store_unavailable" } });
    } finally {
      await store.restart();
    }
  });
});

describe("the Worker entry's configuration", () => {
  it("answers 500 without details when bindings lack what the SDK cannot look up on Workers", async () => {
    const logged: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => logged.push(...args);
    try {
      const response = await worker.fetch(
        new Request("http://worker.test/healthz") as never,
        // A misconfigured deployment's bindings: fewer than the generated Env says, plus a --var.
        {
          WEBHOOK_SECRET: secret,
          DYNAMODB_ENDPOINT: store.endpoint,
          AWS_REGION: "us-east-1",
        } as unknown as Env,
        { waitUntil: () => undefined, passThroughOnException: () => undefined } as never,
      );
      expect(response.status).toBe(500);
      const body = await response.text();
      expect(JSON.parse(body)).toMatchObject({ error: { code: "internal_error" } });
      expect(body).not.toContain("AWS_ACCESS_KEY_ID");
      expect(logged).toEqual([
        "Invalid configuration: AWS_ACCESS_KEY_ID is required on Workers (a secret or var)",
      ]);
    } finally {
      console.error = original;
    }
  });
});

describe("npm run types:worker", () => {
  it("has committed what `wrangler types` generates from wrangler.toml and .dev.vars.example", async () => {
    // `npm run types:worker` to a dotfile beside the committed one (test/support/tool-checks.ts).
    const run = await toolCheck("wrangler-types");
    expect(run.status, `${run.error ?? ""}\n${run.stdout}\n${run.stderr}`).toBe(0);
    // The header names the command (and so the output path); everything after it must be equal.
    const body = (text: string | null) => (text ?? "").split("\n").slice(2).join("\n");
    const committed = body(readFileSync(join(ROOT_DIR, COMMITTED_WORKER_TYPES), "utf8"));
    expect(committed).toBe(body(run.files.types ?? null));
    // Every secret the README tells operators to put is typed.
    for (const name of [
      "WEBHOOK_SECRET",
      "API_TOKEN",
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "NOTIFY_SINKS",
      "OPENAI_WEBHOOK_SECRET",
      "OPENAI_API_KEY",
    ]) {
      expect(committed).toMatch(new RegExp(`\\b${name}: string;`));
    }
  }, 180_000);
});

describe("npm run build:worker", () => {
  it("builds the minified Worker within the gzip budget", () => {
    const outDir = mkdtempSync(join(tmpdir(), "stepwatch-worker-build-"));
    try {
      const build = buildWorker(outDir);
      expect(build.gzipBytes).toBeGreaterThan(10 * 1024);
      expect(build.gzipBytes).toBeLessThanOrEqual(GZIP_BUDGET_BYTES);
      // The Worker's own DynamoDB client (wrangler.toml [alias]) instead of the AWS SDK, and no Node
      // polyfill layer.
      const names = build.contributors.map((c) => c.name);
      expect(names).toContain("aws4fetch");
      expect(names.filter((n) => n.startsWith("@aws-sdk/") || n.startsWith("@smithy/"))).toEqual([]);
      const meta = JSON.parse(readFileSync(join(outDir, "meta.json"), "utf8")) as { inputs: object };
      const inputs = Object.keys(meta.inputs);
      expect(inputs).toContain("src/runtime/worker-dynamodb.ts");
      expect(inputs.filter((path) => /@aws-sdk\/|@smithy\//.test(path))).toEqual([]);
      // OpenAI's API is read with Workers' fetch (src/sources/): its SDK is for types and tests only.
      expect(inputs).toContain("src/sources/openai-api-client.ts");
      expect(names).not.toContain("openai");
      expect(inputs.filter((path) => /node_modules\/openai\//.test(path))).toEqual([]);
      expect(names.some((n) => n === "unenv" || n.startsWith("@cloudflare/unenv"))).toBe(false);
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  }, 120_000);
});
