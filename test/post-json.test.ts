import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { describeFetchError, parseRetryAfter, postJson } from "../src/notify/post-json.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";

// SPEC §6: 2xx delivered; network error, time-out, 5xx, 408, 429 retried (Retry-After honoured);
// 410 gone; other 4xx and redirects final.

let sink: SinkServer;
let elsewhere: SinkServer;
let closedUrl: string;

beforeAll(async () => {
  [sink, elsewhere] = await Promise.all([startSinkServer(), startSinkServer()]);
  const gone = await startSinkServer();
  closedUrl = `${gone.url}/hook?token=SECRET-IN-URL`;
  await gone.close();
});
afterAll(async () => {
  await Promise.all([sink.close(), elsewhere.close()]);
});
beforeEach(() => {
  sink.reset();
  sink.respond = null;
  sink.fallback = { status: 200, body: "ok" };
  elsewhere.reset();
});

const post = (url = `${sink.url}/hook`, timeoutMs = 2_000, nowMs?: () => number) =>
  postJson(url, '{"a":1}', { "x-extra": "yes" }, timeoutMs, nowMs);

describe("delivered", () => {
  it.each([200, 201, 202, 204])("%i is delivered, with its status", async (status) => {
    sink.script({ status });
    expect(await post()).toEqual({ ok: true, status });
  });

  it("POSTs the body as JSON with the given headers", async () => {
    await post();
    expect(sink.received).toHaveLength(1);
    const [request] = sink.received;
    expect(request).toMatchObject({ method: "POST", path: "/hook", body: '{"a":1}' });
    expect(request?.headers).toMatchObject({
      "content-type": "application/json",
      "user-agent": "stepwatch",
      "x-extra": "yes",
    });
  });

  it("a slow answer within the time-out is still delivered", async () => {
    sink.script({ status: 200, delayMs: 150 });
    expect(await post(undefined, 2_000)).toEqual({ ok: true, status: 200 });
  });
});

describe("retryable", () => {
  it("connection refused: a network error, without the URL (it may hold a token)", async () => {
    const result = await post(closedUrl);
    expect(result).toEqual({ ok: false, retryable: true, error: "network error (ECONNREFUSED)" });
  });

  it("a sink that never answers times out after NOTIFY_TIMEOUT_MS", async () => {
    sink.script({ status: 200, hang: true });
    const started = Date.now();
    const result = await post(undefined, 300);
    const took = Date.now() - started;
    expect(result).toEqual({ ok: false, retryable: true, error: "timed out after 300 ms" });
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(2_000);
  });

  it.each([500, 502, 503, 504, 408, 429])(
    "%i is retryable, with status and the body in the error",
    async (status) => {
      sink.script({ status, body: "busy" });
      expect(await post()).toEqual({ ok: false, retryable: true, status, error: `HTTP ${status}: busy` });
    },
  );

  it("Retry-After in seconds", async () => {
    sink.script({ status: 503, headers: { "retry-after": "120" } });
    expect(await post()).toMatchObject({ retryable: true, status: 503, retryAfterMs: 120_000 });
  });

  it("Retry-After as an HTTP date, read against the (injected) clock", async () => {
    const now = Date.UTC(2031, 0, 2, 3, 4, 5);
    sink.script(
      { status: 429, headers: { "retry-after": new Date(now + 90_000).toUTCString() } },
      { status: 429, headers: { "retry-after": new Date(now - 90_000).toUTCString() } },
      { status: 429, headers: { "retry-after": "soon, maybe" } },
    );
    expect(await post(undefined, 2_000, () => now)).toMatchObject({ status: 429, retryAfterMs: 90_000 });
    expect(await post(undefined, 2_000, () => now)).toMatchObject({ status: 429, retryAfterMs: 0 });
    const garbage = await post(undefined, 2_000, () => now);
    expect(garbage).toMatchObject({ retryable: true, status: 429 });
    expect(garbage).not.toHaveProperty("retryAfterMs");
  });

  it("a body of exactly 200 characters is quoted whole, without an ellipsis", async () => {
    const reason = `${"r".repeat(99)} ${"s".repeat(100)}`;
    sink.script({ status: 503, body: `\n${reason}\n` });
    expect(await post()).toMatchObject({ status: 503, error: `HTTP 503: ${reason}` });
  });

  it("the error quotes the body flattened and clipped to 200 characters", async () => {
    sink.script({ status: 500, body: `  line one\n\n\tline two ${"x".repeat(400)}` });
    const result = await post();
    expect(result.ok).toBe(false);
    const error = (result as { error: string }).error;
    expect(error.startsWith("HTTP 500: line one line two xxx")).toBe(true);
    expect(error).toBe(`HTTP 500: ${`line one line two ${"x".repeat(400)}`.slice(0, 200)}…`);
  });
});

describe("final", () => {
  it.each([300, 301, 302, 303, 304, 307, 308])(
    "%i: redirects are not followed and are final",
    async (status) => {
      sink.script({ status, headers: { location: `${elsewhere.url}/moved` } });
      expect(await post()).toEqual({
        ok: false,
        retryable: false,
        status,
        error: `HTTP ${status}: redirects are not followed`,
      });
      expect(elsewhere.received).toHaveLength(0);
    },
  );

  it.each([400, 401, 403, 404, 413, 422])("%i is final with the reason", async (status) => {
    sink.script({ status, body: '{"error":"unknown field"}' });
    const result = await post();
    expect(result).toEqual({
      ok: false,
      retryable: false,
      status,
      error: `HTTP ${status}: {"error":"unknown field"}`,
    });
  });

  it("410 Gone is final and marked gone (the sink is disabled, the delivery parked)", async () => {
    sink.script({ status: 410, body: "endpoint removed" });
    expect(await post()).toEqual({
      ok: false,
      retryable: false,
      gone: true,
      status: 410,
      error: "HTTP 410: endpoint removed",
    });
  });

  it("a header value fetch refuses: final, nothing sent", async () => {
    const result = await postJson(`${sink.url}/hook`, "{}", { "x-bad": "a\r\nb" }, 1_000);
    expect(result).toEqual({ ok: false, retryable: false, error: "request could not be built: TypeError" });
    expect(sink.received).toHaveLength(0);
  });

  it("a URL fetch refuses (credentials in it, or not a URL): final, nothing sent, URL not echoed", async () => {
    for (const url of [`http://user:SECRET@127.0.0.1:${sink.port}/hook`, "not a url"]) {
      const result = await postJson(url, "{}", {}, 1_000);
      expect(result).toEqual({ ok: false, retryable: false, error: "request could not be built: TypeError" });
    }
    expect(sink.received).toHaveLength(0);
  });
});

/** A loopback server that writes its one kind of answer by hand, and says when a connection ended. */
async function startHandWrittenServer(write: (res: ServerResponse) => void) {
  const ended: number[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    req.resume();
    res.once("close", () => ended.push(Date.now()));
    req.once("end", () => write(res));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    ended,
    /** Runs `step` after `ms` unless the server is closed first. */
    later(ms: number, step: () => void) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        step();
      }, ms);
      timers.add(timer);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("error bodies: read only as far as the quote needs", () => {
  it("a body that arrives in parts is quoted whole, a character split between parts included", async () => {
    const server = await startHandWrittenServer((res) => {
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.write("part one, caf");
      const e = Buffer.from("é");
      server.later(20, () => res.write(e.subarray(0, 1)));
      server.later(40, () => res.end(Buffer.concat([e.subarray(1), Buffer.from(" and part two")])));
    });
    try {
      expect(await post(server.url)).toEqual({
        ok: false,
        retryable: true,
        status: 500,
        error: "HTTP 500: part one, café and part two",
      });
    } finally {
      await server.close();
    }
  });

  it("an endless body: answered at once with its start quoted, and the connection closed", async () => {
    const server = await startHandWrittenServer((res) => {
      res.writeHead(503);
      const more = () => {
        if (res.destroyed) return;
        res.write("x".repeat(1_000));
        server.later(2, more);
      };
      more();
    });
    try {
      const started = Date.now();
      const result = await post(server.url, 5_000);
      const answeredAt = Date.now();
      expect(result).toEqual({
        ok: false,
        retryable: true,
        status: 503,
        error: `HTTP 503: ${"x".repeat(200)}…`,
      });
      expect(answeredAt - started).toBeLessThan(1_000);
      await eventuallyTrue(() => server.ended.length === 1, 1_000);
      expect((server.ended[0] ?? Number.POSITIVE_INFINITY) - answeredAt).toBeLessThan(1_000);
    } finally {
      await server.close();
    }
  });

  it("reads 4096 characters at most: what comes after them is never quoted", async () => {
    const server = await startHandWrittenServer((res) => {
      res.writeHead(500);
      res.write(" ".repeat(4_096));
      server.later(30, () => res.end("after the first 4096"));
    });
    try {
      expect(await post(server.url)).toEqual({ ok: false, retryable: true, status: 500, error: "HTTP 500" });
    } finally {
      await server.close();
    }
  });

  it("a body broken off midway: what arrived is quoted", async () => {
    const server = await startHandWrittenServer((res) => {
      res.writeHead(502, { "content-length": "1000" });
      res.write("upstream went away");
      server.later(20, () => res.destroy());
    });
    try {
      expect(await post(server.url)).toEqual({
        ok: false,
        retryable: true,
        status: 502,
        error: "HTTP 502: upstream went away",
      });
    } finally {
      await server.close();
    }
  });

  it("a body that stops arriving: the time-out ends it, and what arrived is quoted", async () => {
    const server = await startHandWrittenServer((res) => {
      res.writeHead(400);
      res.write("invalid payload: ");
    });
    try {
      const started = Date.now();
      expect(await post(server.url, 300)).toEqual({
        ok: false,
        retryable: false,
        status: 400,
        error: "HTTP 400: invalid payload:",
      });
      expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    } finally {
      await server.close();
    }
  });
});

describe("describeFetchError (what each runtime's fetch rejects with, never the URL)", () => {
  it("a time-out, as TimeoutError (Node, workerd) or AbortError (runtimes without abort reasons)", () => {
    for (const name of ["TimeoutError", "AbortError"]) {
      expect(describeFetchError(new DOMException("The operation was aborted.", name), 250)).toBe(
        "timed out after 250 ms",
      );
    }
  });

  it("Node: the code of the cause; a cause without one gives the error's name", () => {
    const refused = new TypeError("fetch failed", {
      cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" }),
    });
    expect(describeFetchError(refused, 1_000)).toBe("network error (ECONNREFUSED)");
    const scheme = new TypeError("fetch failed", { cause: new Error("unknown scheme") });
    expect(describeFetchError(scheme, 1_000)).toBe("network error (TypeError)");
  });

  it("workerd: a bare Error without a cause; anything else thrown", () => {
    expect(describeFetchError(new Error("Network connection lost."), 1_000)).toBe("network error (Error)");
    // Only an Error is read for its name: a thrown value that is none says nothing reliable.
    for (const thrown of ["connection reset", { name: "AbortError" }, undefined]) {
      expect(describeFetchError(thrown, 1_000)).toBe("network error (error)");
    }
  });
});

describe("parseRetryAfter", () => {
  it("reads whole seconds or an HTTP date; ignores anything else", () => {
    const now = Date.UTC(2030, 5, 1, 12, 0, 0);
    expect(parseRetryAfter("0", now)).toBe(0);
    expect(parseRetryAfter(" 7 ", now)).toBe(7_000);
    expect(parseRetryAfter("Sat, 01 Jun 2030 12:01:00 GMT", now)).toBe(60_000);
    expect(parseRetryAfter("Sat, 01 Jun 2030 11:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter("", now)).toBeUndefined();
    expect(parseRetryAfter("later", now)).toBeUndefined();
  });

  it("an ISO date is a date; digits with anything else are not seconds", () => {
    const now = Date.UTC(2030, 5, 1, 12, 0, 0);
    expect(parseRetryAfter("2030-06-01T12:01:00Z", now)).toBe(60_000);
    for (const value of ["5 seconds", "1e3", "0x10"])
      expect(parseRetryAfter(value, now), value).toBeUndefined();
  });
});

async function eventuallyTrue(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
