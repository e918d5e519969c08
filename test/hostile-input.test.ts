import { createHmac } from "node:crypto";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseRunStepEvent } from "../src/domain/run-step-event.js";
import { MAX_SIGNATURES } from "../src/domain/signature-verifier.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { makeStep } from "./support/run-steps.js";
import { createTestApp, TEST_TOKEN, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// Served over real HTTP by @hono/node-server, as the Node runtime serves it: connection handling
// (keep-alive after an early refusal) is part of what is tested.
// The largest MAX_BODY_BYTES there is: stored forms that outgrow the item limit need room to be sent.
const MAX_BODY = 358_400;
let store: TestStore;
let app: TestApp;
let server: ServerType;
let base: string;
let seq = 0;
const uid = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${seq++}`;

beforeAll(async () => {
  store = await startTestStore("stepwatch-hostile");
  app = await createTestApp(store, { MAX_BODY_BYTES: String(MAX_BODY) });
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
      base = `http://127.0.0.1:${info.port}`;
      resolve();
    });
  });
});

afterAll(async () => {
  await new Promise<void>((resolve) => {
    server?.close(() => resolve());
    if (server && "closeAllConnections" in server) server.closeAllConnections();
  });
  await store?.close();
});

interface Attempt {
  readonly body: string | Uint8Array;
  readonly headers?: Record<string, string>;
  /** Sign with these headers' values instead of fresh ones. */
  readonly id?: string;
  /** Seconds from now of the `webhook-timestamp` (0 when absent), or a fixed value. */
  readonly skewS?: number;
  readonly timestamp?: number;
  readonly secret?: string;
  /** Replaces the signature header entirely (undefined: a valid one). */
  readonly signature?: (valid: string) => string | null;
}

async function post(
  attempt: Attempt,
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const text = typeof attempt.body === "string" ? attempt.body : new TextDecoder().decode(attempt.body);
  const id = attempt.id ?? uid("msg");
  const timestamp = attempt.timestamp ?? Math.floor(Date.now() / 1000) + (attempt.skewS ?? 0);
  // standardwebhooks signs text; a body that is not UTF-8 is signed over its bytes by hand.
  const valid =
    typeof attempt.body === "string"
      ? new Webhook(attempt.secret ?? app.secret).sign(id, new Date(timestamp * 1000), text)
      : signBytes(attempt.secret ?? app.secret, id, timestamp, attempt.body);
  const signature = attempt.signature ? attempt.signature(valid) : valid;
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    ...(signature === null ? {} : { "webhook-signature": signature }),
    ...attempt.headers,
  };
  const response = await fetch(`${base}/v1/webhooks/run-steps`, {
    method: "POST",
    headers,
    body: attempt.body as string | Uint8Array<ArrayBuffer>,
  });
  const raw = await response.text();
  return {
    status: response.status,
    body: raw ? (JSON.parse(raw) as Record<string, unknown>) : {},
    headers: response.headers,
  };
}

function signBytes(secret: string, id: string, timestamp: number, body: Uint8Array): string {
  const mac = createHmac("sha256", Buffer.from(secret.slice("whsec_".length), "base64"));
  mac.update(`${id}.${timestamp}.`);
  mac.update(body);
  return `v1,${mac.digest("base64")}`;
}

const withStep = (overrides: Record<string, unknown>) =>
  JSON.stringify(makeStep({ id: uid("step"), ...overrides }));
const raw = (json: string) => json;

// Every class of hostile input: what it is, the request, the status and error code it must get, and
// (for 422s) the path the issue names. A signed body that is refused is also quarantined.
const CASES: Array<[string, Attempt, number, string, string?]> = [
  ["no content type", { body: withStep({}), headers: { "content-type": "" } }, 415, "unsupported_media_type"],
  [
    "text/plain",
    { body: withStep({}), headers: { "content-type": "text/plain" } },
    415,
    "unsupported_media_type",
  ],
  [
    "JSON in another charset",
    { body: withStep({}), headers: { "content-type": "application/json; charset=latin1" } },
    415,
    "unsupported_media_type",
  ],
  ["no signature", { body: withStep({}), signature: () => null }, 401, "invalid_signature"],
  [
    "signed with another secret",
    { body: withStep({}), secret: generateWebhookSecret() },
    401,
    "invalid_signature",
  ],
  [
    "a signature of the wrong length",
    { body: withStep({}), signature: (s) => `${s}AAAA` },
    401,
    "invalid_signature",
  ],
  [
    "a captured request replayed outside the tolerance",
    { body: withStep({}), skewS: -301 },
    401,
    "invalid_signature",
  ],
  ["a timestamp from the future", { body: withStep({}), skewS: 301 }, 401, "invalid_signature"],
  ["a timestamp in milliseconds", { body: withStep({}), timestamp: Date.now() }, 401, "invalid_signature"],
  [
    "a webhook-id of 10,000 characters",
    { body: withStep({}), id: "m".repeat(10_000) },
    401,
    "invalid_signature",
  ],
  [
    `${MAX_SIGNATURES + 1} signatures, the valid one last`,
    { body: withStep({}), signature: (s) => `${"v1,AAAA ".repeat(MAX_SIGNATURES)}${s}` },
    401,
    "invalid_signature",
  ],
  ["not JSON", { body: "{not json" }, 400, "invalid_json"],
  ["not UTF-8", { body: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) }, 400, "invalid_json"],
  ["an empty body", { body: "" }, 400, "invalid_json"],
  ["a JSON array", { body: "[1,2,3]" }, 422, "invalid_payload", ""],
  ["a JSON string", { body: '"step"' }, 422, "invalid_payload", ""],
  [
    "a number beyond double range (1e400)",
    { body: withStep({}).replace('"created_at":1764000000', '"created_at":1e400') },
    422,
    "invalid_payload",
    "created_at",
  ],
  [
    "a token count beyond DynamoDB's range (1e200)",
    {
      body: withStep({
        status: "completed",
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      }).replace('"prompt_tokens":1', '"prompt_tokens":1e200'),
    },
    422,
    "invalid_payload",
    "usage.prompt_tokens",
  ],
  [
    "a lone surrogate",
    { body: withStep({}).replace('"msg_abc123"', '"\\ud800"') },
    422,
    "invalid_payload",
    "step_details.message_creation.message_id",
  ],
  [
    "nesting 100,000 levels deep",
    { body: raw(`${withStep({}).slice(0, -1)},"x":${"[".repeat(100_000)}${"]".repeat(100_000)}}`) },
    422,
    "invalid_payload",
  ],
  [
    "nesting 200 levels deep",
    { body: raw(`${withStep({}).slice(0, -1)},"x":${"[".repeat(200)}${"]".repeat(200)}}`) },
    422,
    "invalid_payload",
  ],
  [
    "a step id of 3,000 characters (beyond a key)",
    { body: withStep({ id: "s".repeat(3000) }) },
    422,
    "invalid_payload",
    "id",
  ],
  [
    "a run id of 1,500 characters (beyond an index key)",
    { body: withStep({ run_id: "r".repeat(1500) }) },
    422,
    "invalid_payload",
    "run_id",
  ],
  [
    "a thread id of 60 KB copied into attributes",
    { body: withStep({ thread_id: "t".repeat(60_000) }) },
    422,
    "invalid_payload",
    "thread_id",
  ],
  [
    "metadata with __proto__ holding a number",
    { body: withStep({}).replace('"metadata":{}', '"metadata":{"__proto__":1}') },
    422,
    "invalid_payload",
    "metadata.__proto__",
  ],
  ["metadata as an array", { body: withStep({ metadata: ["a"] }) }, 422, "invalid_payload", "metadata"],
  [
    "file_search as an array",
    {
      body: JSON.stringify(
        makeStep({
          id: uid("step"),
          type: "tool_calls",
          step_details: {
            type: "tool_calls",
            tool_calls: [{ id: "c", type: "file_search", file_search: [] }],
          },
        }),
      ),
    },
    422,
    "invalid_payload",
    "step_details.tool_calls.0.file_search",
  ],
  [
    "a delta whose envelope has an invalid created_at",
    {
      body: JSON.stringify({
        id: "evt",
        object: "event",
        type: "thread.run.step.delta",
        created_at: "x",
        data: { id: "step_d", object: "thread.run.step.delta", delta: {} },
      }),
    },
    422,
    "invalid_payload",
    "created_at",
  ],
  [
    "an event name that disagrees with the status",
    { body: JSON.stringify({ event: "thread.run.step.completed", data: makeStep({ id: uid("step") }) }) },
    422,
    "invalid_payload",
    "data",
  ],
  [
    "a body one byte over MAX_BODY_BYTES",
    { body: `${withStep({}).slice(0, -1)},"pad":"${"p".repeat(MAX_BODY)}"}` },
    413,
    "payload_too_large",
  ],
];

describe("hostile input: every class is a documented 4xx, and the server still serves", () => {
  it.each(CASES)("%s → %i %s", async (_name, attempt, status, code, path) => {
    const answer = await post(attempt);
    expect(answer.status).toBe(status);
    const error = answer.body.error as {
      code: string;
      issues?: Array<{ path: string }>;
      quarantine_id?: string;
    };
    expect(error.code).toBe(code);
    if (path !== undefined) expect(error.issues?.map((i) => i.path)).toContain(path);
    // Signed and refused for its body: kept. Refused before the body was trusted: not.
    const signedAndRead = status === 400 || status === 422 || (status === 413 && !_name.includes("MAX_BODY"));
    expect(error.quarantine_id !== undefined, "quarantined").toBe(signedAndRead);

    const valid = await post({ body: withStep({}) });
    expect(valid.status).toBe(200);
  });
});

describe("inputs that look hostile but are valid are stored exactly", () => {
  it("__proto__, constructor and prototype as keys of unknown fields are data, not prototypes", async () => {
    const id = uid("step");
    const body = `${JSON.stringify(makeStep({ id })).slice(0, -1)},"extra":{"__proto__":{"polluted":true},"constructor":{"prototype":1}}}`;
    expect((await post({ body })).status).toBe(200);
    const stored = (await (await app.get(`/v1/run-steps/${id}`)).json()) as Record<string, unknown>;
    expect(JSON.stringify(stored.extra)).toBe(
      '{"__proto__":{"polluted":true},"constructor":{"prototype":1}}',
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("numbers that grow fivefold when stored (1e20 → 21 digits) still fit: the snapshot is stored deflated", async () => {
    const id = uid("step");
    const numbers = Array.from({ length: 70_000 }, () => "1e20").join(",");
    const body = `${JSON.stringify(makeStep({ id })).slice(0, -1)},"n":[${numbers}]}`;
    expect((await post({ body })).status).toBe(200);
    const stored = (await (await app.get(`/v1/run-steps/${id}`)).json()) as { n: number[] };
    expect(stored.n).toHaveLength(70_000);
    expect(stored.n.every((value) => value === 1e20)).toBe(true);
  });

  it("the store still refuses, before writing, an item DynamoDB could not hold", async () => {
    // 700 KB of random base64 (6 bits a character): no compression brings it under 400 KB. Only
    // reachable below the HTTP edge (MAX_BODY_BYTES ≤ 358,400 always fits), so the store is called.
    const id = uid("step");
    const chunks = Array.from({ length: 8 }, () =>
      Buffer.from(crypto.getRandomValues(new Uint8Array(65_536))),
    );
    const document = makeStep({ id, noise: Buffer.concat(chunks).toString("base64") });
    const step = parseRunStepEvent(document);
    if (!step.ok || step.event.kind !== "snapshot") throw new Error("not a snapshot");
    await expect(
      app.store.apply({ step: step.event.step, document, sentAt: 1, receivedAt: 1, intents: [] }),
    ).rejects.toMatchObject({ name: "ItemTooLargeError", limit: 409_600 });
    expect((await app.get(`/v1/run-steps/${id}`)).status).toBe(404);
  });

  it("a body of exactly MAX_BODY_BYTES is accepted", async () => {
    const id = uid("step");
    const head = `${JSON.stringify(makeStep({ id })).slice(0, -1)},"pad":"`;
    const body = `${head}${"p".repeat(MAX_BODY - head.length - 2)}"}`;
    expect(Buffer.byteLength(body)).toBe(MAX_BODY);
    expect((await post({ body })).status).toBe(200);
  });

  it("a redelivered webhook-id is harmless: the state rules make it unchanged (or stale)", async () => {
    const id = uid("msg");
    const terminal = withStep({ status: "completed" });
    expect((await post({ body: terminal, id })).body).toMatchObject({ outcome: "created" });
    expect((await post({ body: terminal, id })).body).toMatchObject({ outcome: "unchanged" });
    const progress = withStep({});
    const at = Math.floor(Date.now() / 1000);
    expect((await post({ body: progress, id: "m2", timestamp: at })).body).toMatchObject({
      outcome: "created",
    });
    expect((await post({ body: progress, id: "m2", timestamp: at })).body).toMatchObject({
      outcome: "stale",
    });
  });

  it("svix-* header names are accepted like webhook-* ones", async () => {
    const body = withStep({});
    const id = uid("msg");
    const timestamp = Math.floor(Date.now() / 1000);
    const signature = new Webhook(app.secret).sign(id, new Date(timestamp * 1000), body);
    const response = await fetch(`${base}/v1/webhooks/run-steps`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "svix-id": id,
        "svix-timestamp": String(timestamp),
        "svix-signature": signature,
      },
      body,
    });
    expect(response.status).toBe(200);
  });

  it("a malformed X-Request-Id is replaced, not echoed", async () => {
    for (const given of ["bad id", "x".repeat(129), '{"level":"error"}']) {
      const response = await fetch(`${base}/healthz`, { headers: { "x-request-id": given } });
      expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it("read routes answer 404 or 400 to ids and queries at DynamoDB's limits", async () => {
    const auth = { authorization: `Bearer ${TEST_TOKEN}` };
    for (const [path, status] of [
      [`/v1/run-steps/${"x".repeat(5000)}`, 404],
      [`/v1/runs/${"r".repeat(5000)}`, 404],
      [`/v1/runs/${"r".repeat(5000)}/steps`, 200],
      [`/v1/run-steps/%E0%A4%A`, 404],
      [`/v1/quarantine/${"q".repeat(5000)}`, 404],
      ["/v1/run-steps?limit=0", 400],
      ["/v1/run-steps?limit=1e3", 400],
      ["/v1/run-steps?since=99999999999999", 400],
      ["/v1/run-steps?cursor=%ZZ", 400],
      [`/v1/quarantine?cursor=${"A".repeat(4000)}`, 400],
    ] as const) {
      const response = await fetch(`${base}${path}`, { headers: auth });
      expect(response.status, path.slice(0, 50)).toBe(status);
    }
  });
});

// Writes a request by hand on one socket and reads what comes back until the server closes it.
function rawExchange(head: string, bodyChunk: Buffer): Promise<{ response: string; closedCleanly: boolean }> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), "127.0.0.1");
    let response = "";
    let failed: Error | null = null;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within 5 s; got: ${response.slice(0, 200)}`));
    }, 5_000);
    socket.on("data", (chunk) => {
      response += chunk.toString("latin1");
    });
    socket.on("error", (error) => {
      failed = error;
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ response, closedCleanly: failed === null || response.length > 0 });
    });
    socket.write(head);
    socket.write(bodyChunk);
  });
}

describe("an early refusal while the body is still uploading", () => {
  it.each([
    ["413 for a declared length over MAX_BODY_BYTES", "application/json", 10_000_000, "413"],
    ["415 for another media type", "text/plain", 1_000_000, "415"],
  ])("%s answers Connection: close and closes after the answer", async (_name, type, length, status) => {
    const head =
      "POST /v1/webhooks/run-steps HTTP/1.1\r\nHost: localhost\r\n" +
      `Content-Type: ${type}\r\nContent-Length: ${length}\r\nConnection: keep-alive\r\n\r\n`;
    const { response, closedCleanly } = await rawExchange(head, Buffer.alloc(16_384, 0x20));
    expect(response.startsWith(`HTTP/1.1 ${status}`)).toBe(true);
    expect(response.toLowerCase()).toContain("connection: close");
    expect(response.toLowerCase()).not.toContain("connection: keep-alive");
    expect(response).toContain('"error"');
    expect(closedCleanly).toBe(true);
  });
});
