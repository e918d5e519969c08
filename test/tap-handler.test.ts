import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createForwarder, type Forwarder } from "../src/relay/forwarder.js";
import { createTapHandler, type TapOptions } from "../src/relay/tap-handler.js";
import { overriding } from "./support/overriding.js";
import { makeStep } from "./support/run-steps.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";
import { within } from "./support/within.js";

const SECRET = "whsec_c2lua3NlY3JldDAxMjM0NTY3ODlhYmNkZWZnaGlq";
const API_KEY = "sk-test-tap-handler-0123456789";

/** What the upstream received. */
interface Seen {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

let handle: (req: IncomingMessage, res: ServerResponse, seen: Seen) => void = (_req, res) => res.end();
const seen: Seen[] = [];
const upstreamServer = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const s = {
      method: req.method ?? "",
      path: req.url ?? "",
      headers: req.headers,
      body: Buffer.concat(chunks).toString("utf8"),
    };
    seen.push(s);
    handle(req, res, s);
  });
});
let upstreamUrl: string;
let sink: SinkServer;
const forwarders: Forwarder[] = [];

beforeAll(async () => {
  await new Promise<void>((resolve) => upstreamServer.listen(0, "127.0.0.1", () => resolve()));
  upstreamUrl = `http://127.0.0.1:${(upstreamServer.address() as AddressInfo).port}/v1`;
  sink = await startSinkServer();
});

afterEach(async () => {
  for (const f of forwarders.splice(0)) await f.close();
  seen.length = 0;
  sink.reset();
  sink.respond = null;
});

afterAll(async () => {
  upstreamServer.closeAllConnections();
  await new Promise<void>((resolve) => upstreamServer.close(() => resolve()));
  await sink.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const forwarder = async (overrides: Partial<Forwarder> = {}) => {
  const real = await createForwarder({ url: sink.url, secret: SECRET, initialDelayMs: 10 });
  forwarders.push(real);
  return overriding(real, overrides);
};

const stepBlock = (event: string, id: string, status = "in_progress") =>
  `event: ${event}\ndata: ${JSON.stringify(makeStep({ id, status }))}\n\n`;

/** A tap in front of the test upstream, recording waitUntil's promises and reported errors. */
const tap = (options: Partial<TapOptions> & { forwarder: Forwarder }) => {
  const errors: string[] = [];
  const waits: Array<Promise<unknown>> = [];
  const handler = createTapHandler({ upstream: upstreamUrl, onError: (m) => errors.push(m), ...options });
  const call = (path: string, init: RequestInit = {}) =>
    handler(new Request(`http://tap.local${path}`, init), (p) => waits.push(p));
  return { call, errors, waits };
};

/** Answers with these chunks, `gapMs` apart. */
const chunked =
  (status: number, headers: Record<string, string>, chunks: string[], gapMs = 5) =>
  (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(status, headers);
    let i = 0;
    const next = () => {
      if (i >= chunks.length) return void res.end();
      res.write(chunks[i++]);
      setTimeout(next, gapMs);
    };
    next();
  };

const SSE = { "content-type": "text/event-stream; charset=utf-8" };
const JSON_TYPE = { "content-type": "application/json" };
const STEPS_PATH = "/threads/thread_1/runs/run_1/steps";

/** The run step webhooks stepwatch received, as `event stepId`. */
const delivered = () =>
  sink.received.map((r) => {
    const body = JSON.parse(r.body) as { event: string; data: { id: string } };
    return `${body.event} ${body.data.id}`;
  });

describe("the tap passes requests on", () => {
  it("sends method, path, query, body and credentials on, without hop-by-hop headers, asking for identity", async () => {
    handle = (_req, res) => res.end("{}");
    const { call } = tap({ forwarder: await forwarder() });
    const body = JSON.stringify({ assistant_id: "asst_1", stream: true });
    const response = await call("/threads/thread_1/runs?limit=2", {
      method: "POST",
      headers: {
        authorization: `Bearer ${API_KEY}`,
        "content-type": "application/json",
        "accept-encoding": "gzip, br",
        "proxy-authorization": "Basic cHJveHk6c2VjcmV0",
        "keep-alive": "timeout=5",
        te: "trailers",
        "openai-beta": "assistants=v2",
      },
      body,
    });
    expect(response.status).toBe(200);
    const [got] = seen;
    expect(got?.method).toBe("POST");
    expect(got?.path).toBe("/v1/threads/thread_1/runs?limit=2");
    expect(got?.body).toBe(body);
    expect(got?.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(got?.headers["openai-beta"]).toBe("assistants=v2");
    expect(got?.headers["accept-encoding"]).toBe("identity");
    expect(got?.headers["proxy-authorization"]).toBeUndefined();
    expect(got?.headers["keep-alive"]).toBeUndefined();
    expect(got?.headers.te).toBeUndefined();
  });

  it("sends GET and HEAD without a body, PUT and DELETE with theirs", async () => {
    handle = (_req, res) => res.end("ok");
    const { call } = tap({ forwarder: await forwarder() });
    expect((await call("/models")).status).toBe(200);
    expect((await call("/models", { method: "HEAD" })).status).toBe(200);
    expect((await call("/files/f1", { method: "DELETE", body: "d" })).status).toBe(200);
    expect(seen.map((s) => `${s.method} ${s.body} ${s.headers["content-length"] ?? "-"}`)).toEqual([
      "GET  -",
      "HEAD  -",
      "DELETE d 1",
    ]);
  });

  it("answers 502 with an OpenAI-style error when the upstream is unreachable, reporting no secret", async () => {
    const errors: string[] = [];
    const handler = createTapHandler({
      upstream: "http://127.0.0.1:1/v1",
      forwarder: await forwarder(),
      onError: (m) => errors.push(m),
    });
    const response = await handler(
      new Request("http://tap.local/threads", { headers: { authorization: `Bearer ${API_KEY}` } }),
    );
    expect(response.status).toBe(502);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(await response.json()).toEqual({
      error: { message: "the tap could not reach the upstream", type: "tap_error" },
    });
    expect(errors).toEqual(["upstream unreachable: TypeError"]);
  });
});

describe("the tap passes answers back unchanged", () => {
  it("keeps status, status text, end-to-end headers and bytes, drops hop-by-hop ones", async () => {
    const text = JSON.stringify({ error: { message: "nope" } });
    handle = (_req, res) => {
      res.writeHead(429, "Slow Down", {
        ...JSON_TYPE,
        "content-length": String(Buffer.byteLength(text)),
        "x-request-id": "req_1",
        "keep-alive": "timeout=5",
        "proxy-authenticate": "Basic",
      });
      res.end(text);
    };
    const { call, waits } = tap({ forwarder: await forwarder() });
    const response = await call("/threads/t/runs/r");
    expect(response.status).toBe(429);
    expect(response.statusText).toBe("Slow Down");
    expect(response.headers.get("x-request-id")).toBe("req_1");
    expect(response.headers.get("content-length")).toBe(String(Buffer.byteLength(text)));
    expect(response.headers.get("keep-alive")).toBeNull();
    expect(response.headers.get("proxy-authenticate")).toBeNull();
    expect(response.headers.get("connection")).toBeNull();
    expect(await response.text()).toBe(text);
    expect(waits).toEqual([]);
  });

  it("passes a compressed answer on decoded, without its encoding and length", async () => {
    const text = JSON.stringify({ id: "thread_1", object: "thread" });
    const zipped = gzipSync(text);
    handle = (_req, res) => {
      res.writeHead(200, { ...JSON_TYPE, "content-encoding": "gzip", "content-length": zipped.length });
      res.end(zipped);
    };
    const { call } = tap({ forwarder: await forwarder() });
    const response = await call("/threads/thread_1");
    expect(response.headers.get("content-encoding")).toBeNull();
    expect(response.headers.get("content-length")).toBeNull();
    expect(await response.text()).toBe(text);
  });
});

describe("the tap tees run steps", () => {
  it("forwards the run step events of an SSE answer (not other events, not deltas) while the client gets every byte", async () => {
    const chunks = [
      "event: thread.run.created\ndata: {}\n\n",
      stepBlock("thread.run.step.created", "step_a"),
      `${stepBlock("thread.run.step.delta", "step_a")}${stepBlock("thread.run.step.completed", "step_a", "completed")}`,
      "event: done\ndata: [DONE]\n\n",
    ];
    handle = chunked(200, SSE, chunks);
    const { call, waits, errors } = tap({ forwarder: await forwarder() });
    const response = await call("/threads/thread_1/runs", { method: "POST", body: "{}" });
    expect(await response.text()).toBe(chunks.join(""));
    expect(waits).toHaveLength(1);
    await within(waits[0] as Promise<unknown>);
    // Once `done` resolves every event is acknowledged: nothing arrives later.
    expect(delivered()).toEqual(["thread.run.step.created step_a", "thread.run.step.completed step_a"]);
    expect(errors).toEqual([]);
  });

  it("forwards deltas with includeDeltas", async () => {
    handle = chunked(200, SSE, [stepBlock("thread.run.step.delta", "step_d")]);
    const { call, waits } = tap({ forwarder: await forwarder(), includeDeltas: true });
    await (await call("/threads/thread_1/runs", { method: "POST", body: "{}" })).text();
    await within(waits[0] as Promise<unknown>);
    expect(delivered()).toEqual(["thread.run.step.delta step_d"]);
  });

  it("forwards the steps of a 2xx JSON list or retrieve answer to a GET, read across chunks", async () => {
    const list = JSON.stringify({
      object: "list",
      data: [makeStep({ id: "step_l1", status: "completed" }), makeStep({ id: "step_l2", status: "failed" })],
      has_more: false,
    });
    handle = chunked(200, JSON_TYPE, [list.slice(0, 50), list.slice(50, 400), list.slice(400)]);
    const { call, waits } = tap({ forwarder: await forwarder(), maxJsonBytes: Buffer.byteLength(list) });
    const response = await call(`${STEPS_PATH}?limit=100`);
    expect(await response.text()).toBe(list);
    await within(waits[0] as Promise<unknown>);
    expect(delivered()).toEqual(["thread.run.step.completed step_l1", "thread.run.step.failed step_l2"]);
  });

  it("does not read JSON answers that are not a 2xx to a GET of a run step path, or are too large", async () => {
    const one = JSON.stringify(makeStep({ id: "step_x", status: "completed" }));
    const cases: Array<{ path: string; status: number; type: string; init?: RequestInit; max?: number }> = [
      { path: `${STEPS_PATH}/step_x`, status: 404, type: "application/json" },
      {
        path: `${STEPS_PATH}/step_x`,
        status: 200,
        type: "application/json",
        init: { method: "POST", body: "{}" },
      },
      { path: `${STEPS_PATH}/step_x`, status: 200, type: "text/plain" },
      { path: "/threads/thread_1/runs/run_1", status: 200, type: "application/json" },
      {
        path: `${STEPS_PATH}/step_x`,
        status: 200,
        type: "application/json",
        max: Buffer.byteLength(one) - 1,
      },
    ];
    const fwd = await forwarder();
    for (const c of cases) {
      handle = (_req, res) => {
        res.writeHead(c.status, { "content-type": c.type });
        res.end(one);
      };
      const { call, waits } = tap({ forwarder: fwd, ...(c.max ? { maxJsonBytes: c.max } : {}) });
      const response = await call(c.path, c.init);
      expect(response.status).toBe(c.status);
      expect(await response.text()).toBe(one);
      await Promise.all(waits.map((w) => within(w)));
    }
    expect(fwd.stats.accepted).toBe(0);
    expect(sink.received).toEqual([]);
  });

  it("resolves `done` only once every teed event is acknowledged", async () => {
    sink.fallback = { status: 200, body: "ok", delayMs: 40 };
    try {
      handle = chunked(200, SSE, [
        stepBlock("thread.run.step.created", "step_1") + stepBlock("thread.run.step.created", "step_2"),
      ]);
      const fwd = await forwarder();
      const { call, waits } = tap({ forwarder: fwd });
      await (await call("/threads/thread_1/runs", { method: "POST", body: "{}" })).text();
      await within(waits[0] as Promise<unknown>);
      expect(fwd.stats.acknowledged).toBe(2);
    } finally {
      sink.fallback = { status: 200, body: "ok" };
    }
  });

  it("ends the teeing when the client goes away mid-stream", async () => {
    handle = (_req, res) => {
      res.writeHead(200, SSE);
      res.write(stepBlock("thread.run.step.created", "step_gone"));
      // …and nothing more: the client gives up.
    };
    const abort = new AbortController();
    const { call, waits } = tap({ forwarder: await forwarder() });
    const response = await call("/threads/thread_1/runs", {
      method: "POST",
      body: "{}",
      signal: abort.signal,
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    abort.abort();
    await within(waits[0] as Promise<unknown>);
    expect(delivered()).toEqual(["thread.run.step.created step_gone"]);
  });
});

describe("the tap's intake", () => {
  it("drops (and counts) step events beyond maxPending found at once; other events take no room", async () => {
    handle = chunked(200, SSE, [
      `event: thread.run.created\ndata: {}\n\nevent: thread.message.delta\ndata: {}\n\n${stepBlock("thread.run.step.created", "step_p1")}${stepBlock("thread.run.step.created", "step_p2")}${stepBlock("thread.run.step.created", "step_p3")}`,
      stepBlock("thread.run.step.created", "step_p4"),
      stepBlock("thread.run.step.created", "step_p5"),
    ]);
    const fwd = await forwarder();
    const { call, waits } = tap({ forwarder: fwd, maxPending: 1 });
    await (await call("/threads/thread_1/runs", { method: "POST", body: "{}" })).text();
    await within(waits[0] as Promise<unknown>);
    expect(delivered()).toEqual([
      "thread.run.step.created step_p1",
      "thread.run.step.created step_p4",
      "thread.run.step.created step_p5",
    ]);
    expect(fwd.stats.dropped).toBe(2);
  });

  it("starts accepts without waiting for earlier ones while the forwarder has room", async () => {
    let open = 0;
    let most = 0;
    const calls: string[] = [];
    const fwd = await forwarder();
    const slow = overriding(fwd, {
      accept: async (event) => {
        calls.push(event.stepId);
        open++;
        most = Math.max(most, open);
        await sleep(20);
        open--;
        await fwd.accept(event);
      },
    });
    handle = chunked(200, SSE, [
      ["step_r1", "step_r2", "step_r3"].map((id) => stepBlock("thread.run.step.created", id)).join(""),
    ]);
    const { call, waits } = tap({ forwarder: slow });
    await (await call("/threads/thread_1/runs", { method: "POST", body: "{}" })).text();
    await within(waits[0] as Promise<unknown>);
    expect(calls).toEqual(["step_r1", "step_r2", "step_r3"]);
    expect(most).toBe(3);
    expect(fwd.stats.acknowledged).toBe(3);
  });

  it("waits for earlier accepts when the forwarder has no room", async () => {
    let open = 0;
    let most = 0;
    const fwd = await forwarder();
    const full = overriding(fwd, {
      hasRoom: () => false,
      accept: async (event) => {
        open++;
        most = Math.max(most, open);
        await sleep(15);
        open--;
        await fwd.accept(event);
      },
    });
    handle = chunked(200, SSE, [
      ["step_w1", "step_w2", "step_w3"].map((id) => stepBlock("thread.run.step.created", id)).join(""),
    ]);
    const { call, waits } = tap({ forwarder: full });
    await (await call("/threads/thread_1/runs", { method: "POST", body: "{}" })).text();
    await within(waits[0] as Promise<unknown>);
    expect(most).toBe(1);
    expect(fwd.stats.acknowledged).toBe(3);
  });

  it("reports a forwarder failure once through onError and stops teeing that response", async () => {
    const accepted: string[] = [];
    const fwd = await forwarder();
    const broken = overriding(fwd, {
      accept: async (event) => {
        accepted.push(event.stepId);
        // Both accepts of the first chunk are under way before either fails.
        await sleep(10);
        throw new Error("spool disk full");
      },
    });
    handle = chunked(
      200,
      SSE,
      [
        stepBlock("thread.run.step.created", "step_f1") + stepBlock("thread.run.step.created", "step_f2"),
        stepBlock("thread.run.step.created", "step_f3"),
      ],
      40,
    );
    const { call, waits, errors } = tap({ forwarder: broken });
    const response = await call("/threads/thread_1/runs", {
      method: "POST",
      body: "{}",
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(await response.text()).toContain("step_f3");
    await within(waits[0] as Promise<unknown>);
    expect(errors).toEqual(["run step events not teed: spool disk full"]);
    expect(accepted).toEqual(["step_f1", "step_f2"]);
  });
});
