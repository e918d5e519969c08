import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  MAX_API_BODY_BYTES,
  MAX_RETRY_AFTER_MS,
  OpenAiApiClient,
  OpenAiApiClientConfigError,
} from "../src/sources/openai-api-client.js";
import {
  completedResponse,
  failedResponse,
  functionCallSession,
  functionCallSessionItems,
  idleSession,
  idleSessionItems,
  RESPONSES,
  SESSIONS,
} from "./fixtures/openai-objects.js";
import { type FakeOpenAi, startFakeOpenAi } from "./support/fake-openai.js";

const KEY = "sk-test-0123456789abcdef";
let fake: FakeOpenAi;
let client: OpenAiApiClient;

beforeAll(async () => {
  fake = await startFakeOpenAi({ apiKey: KEY, responses: RESPONSES, sessions: SESSIONS });
  client = new OpenAiApiClient({
    baseUrl: fake.url,
    apiKey: KEY,
    organization: "org-abc",
    project: "proj_xyz",
  });
});
afterAll(() => fake.close());
afterEach(() => {
  fake.latencyMs = 0;
  fake.unauthorized = false;
  fake.outage = "off";
  fake.pageSize = 100;
  fake.chunked = false;
  fake.requests.length = 0;
});

describe("OpenAiApiClient answers", () => {
  it("200: the response validated, and raw exactly as served", async () => {
    const result = await client.getResponse(completedResponse.id);
    if (!result.ok) throw new Error(result.message);
    expect(result.raw).toEqual(completedResponse);
    expect(result.value.status).toBe("completed");
    expect(result.value.usage?.total_tokens).toBe(123);
  });

  it("sends the key, organization, project; the beta header only to the Agents API", async () => {
    await client.getResponse(failedResponse.id);
    await client.getSession(idleSession.id);
    const [responseCall, sessionCall] = fake.requests;
    expect(responseCall?.headers).toMatchObject({
      authorization: `Bearer ${KEY}`,
      "openai-organization": "org-abc",
      "openai-project": "proj_xyz",
      accept: "application/json",
    });
    expect(responseCall?.headers["openai-beta"]).toBeUndefined();
    expect(sessionCall?.headers["openai-beta"]).toBe("agents=v1");
    expect(sessionCall?.path).toBe(`/v1/agents/sessions/${idleSession.id}`);
  });

  it("leaves organization and project out when unset, and tolerates a trailing slash", async () => {
    const plain = new OpenAiApiClient({ baseUrl: `${fake.url}/`, apiKey: KEY });
    expect((await plain.getResponse(failedResponse.id)).ok).toBe(true);
    expect(fake.requests[0]?.path).toBe(`/v1/responses/${failedResponse.id}`);
    expect(fake.requests[0]?.headers["openai-organization"]).toBeUndefined();
    expect(fake.requests[0]?.headers["openai-project"]).toBeUndefined();
  });

  it("URL-encodes ids in paths", async () => {
    const result = await client.getResponse("a/../b?c");
    expect(result).toMatchObject({ ok: false, kind: "not_found", status: 404 });
    expect(fake.requests[0]?.path).toBe("/v1/responses/a%2F..%2Fb%3Fc");
  });

  it("404: not_found, with OpenAI's message", async () => {
    expect(await client.getResponse("resp_missing")).toEqual({
      ok: false,
      kind: "not_found",
      status: 404,
      retryAfterMs: null,
      message: "GET /responses/resp_missing: HTTP 404: No response found with id 'resp_missing'.",
    });
    expect((await client.getSession("sess_missing")).ok || "not_found").toBe("not_found");
  });

  it("401 for a wrong key and 403: unauthorized, never quoting the key", async () => {
    const wrong = new OpenAiApiClient({ baseUrl: fake.url, apiKey: "sk-wrong-key" });
    const result = await wrong.getResponse(completedResponse.id);
    expect(result).toMatchObject({ ok: false, kind: "unauthorized", status: 401, retryAfterMs: null });
    fake.failNext(1, { status: 403, message: `Project does not have access; key ${KEY} refused` });
    const forbidden = await client.getSession(idleSession.id);
    expect(forbidden).toMatchObject({ ok: false, kind: "unauthorized", status: 403 });
    expect(!forbidden.ok && forbidden.message).toBe(
      `GET /agents/sessions/${idleSession.id}: HTTP 403: Project does not have access; key [redacted] refused`,
    );
  });

  it("401 mode: a revoked key is unauthorized on every path", async () => {
    fake.unauthorized = true;
    expect((await client.getResponse(completedResponse.id)).ok || "x").toBe("x");
    expect(await client.listSessionItems(idleSession.id)).toMatchObject({
      kind: "unauthorized",
      status: 401,
    });
  });

  it("429 with Retry-After in seconds: retryable, the wait in ms", async () => {
    fake.failNext(1, { status: 429, retryAfter: "7", message: "Rate limit reached" });
    expect(await client.getResponse(completedResponse.id)).toEqual({
      ok: false,
      kind: "retryable",
      status: 429,
      retryAfterMs: 7_000,
      message: `GET /responses/${completedResponse.id}: HTTP 429: Rate limit reached`,
    });
  });

  it("429 with Retry-After as an HTTP date, and an absurd one capped at an hour", async () => {
    const now = Date.parse("2026-12-01T12:00:00Z");
    const clocked = new OpenAiApiClient({ baseUrl: fake.url, apiKey: KEY, nowMs: () => now });
    fake.failNext(1, { status: 429, retryAfter: "Tue, 01 Dec 2026 12:01:30 GMT" });
    expect(await clocked.getResponse(completedResponse.id)).toMatchObject({
      kind: "retryable",
      retryAfterMs: 90_000,
    });
    fake.failNext(1, { status: 429, retryAfter: "864000" });
    expect(await clocked.getResponse(completedResponse.id)).toMatchObject({
      retryAfterMs: MAX_RETRY_AFTER_MS,
    });
  });

  it.each([500, 502, 503, 504, 408])("%i: retryable, no Retry-After", async (status) => {
    fake.failNext(1, { status });
    expect(await client.getResponse(completedResponse.id)).toMatchObject({
      ok: false,
      kind: "retryable",
      status,
      retryAfterMs: null,
    });
  });

  it.each([400, 409, 422])("%i: invalid (asking again would fail the same way)", async (status) => {
    fake.failNext(1, { status });
    expect(await client.getResponse(completedResponse.id)).toMatchObject({
      ok: false,
      kind: "invalid",
      status,
    });
  });

  it("the failure is for the next request only: the one after succeeds", async () => {
    const path = `/v1/responses/${completedResponse.id}`;
    const before = fake.count(path);
    fake.failNext(2, { status: 503 });
    expect((await client.getResponse(completedResponse.id)).ok).toBe(false);
    expect((await client.getResponse(completedResponse.id)).ok).toBe(false);
    expect((await client.getResponse(completedResponse.id)).ok).toBe(true);
    expect(fake.count(path) - before).toBe(3);
  });

  it("clips OpenAI's error message to 300 characters, on one line", async () => {
    fake.failNext(1, { status: 500, message: `line one\n${"x".repeat(400)}` });
    const result = await client.getResponse(completedResponse.id);
    const detail = !result.ok ? result.message.split("HTTP 500: ")[1] : "";
    expect(detail).toBe(`line one ${"x".repeat(291)}…`);
  });

  it("a time-out: retryable without a status", async () => {
    fake.latencyMs = 2_000;
    const impatient = new OpenAiApiClient({ baseUrl: fake.url, apiKey: KEY, timeoutMs: 100 });
    expect(await impatient.getResponse(completedResponse.id)).toEqual({
      ok: false,
      kind: "retryable",
      status: null,
      retryAfterMs: null,
      message: `GET /responses/${completedResponse.id}: timed out after 100 ms`,
    });
  });

  it.each(["destroy", "hang"] as const)("an outage (%s): retryable, then back to normal", async (mode) => {
    fake.outage = mode;
    const brief = new OpenAiApiClient({ baseUrl: fake.url, apiKey: KEY, timeoutMs: 300 });
    const down = await brief.getSession(idleSession.id);
    expect(down).toMatchObject({ ok: false, kind: "retryable", status: null, retryAfterMs: null });
    fake.outage = "off";
    expect((await brief.getSession(idleSession.id)).ok).toBe(true);
  });

  it("a refused connection: retryable, naming the error code and never the URL", async () => {
    const closed = await startFakeOpenAi({ apiKey: KEY });
    const url = closed.url;
    await closed.close();
    const result = await new OpenAiApiClient({ baseUrl: url, apiKey: KEY }).getResponse("resp_1");
    expect(result).toMatchObject({ ok: false, kind: "retryable", status: null });
    expect(!result.ok && result.message).toBe("GET /responses/resp_1: network error (ECONNREFUSED)");
  });

  it.each([false, true])("a body over 8 MiB is invalid (chunked: %s)", async (chunked) => {
    fake.chunked = chunked;
    fake.responses.set("resp_huge", {
      ...completedResponse,
      id: "resp_huge",
      padding: "x".repeat(MAX_API_BODY_BYTES),
    });
    const result = await client.getResponse("resp_huge");
    expect(result).toMatchObject({ ok: false, kind: "invalid", status: 200 });
    expect(!result.ok && result.message).toMatch(
      /^GET \/responses\/resp_huge: body (of \d+ bytes )?is over 8388608/,
    );
    fake.responses.delete("resp_huge");
  });

  it("a body just under the bound is read", async () => {
    const base = Buffer.byteLength(JSON.stringify({ ...completedResponse, id: "resp_big", padding: "" }));
    fake.chunked = true;
    fake.responses.set("resp_big", {
      ...completedResponse,
      id: "resp_big",
      padding: "y".repeat(MAX_API_BODY_BYTES - base),
    });
    expect((await client.getResponse("resp_big")).ok).toBe(true);
    fake.responses.delete("resp_big");
  });

  it("an answer the schema refuses is invalid, naming the field", async () => {
    fake.responses.set("resp_odd", { ...completedResponse, id: "resp_odd", status: "thinking" });
    const result = await client.getResponse("resp_odd");
    expect(result).toMatchObject({ ok: false, kind: "invalid", status: 200 });
    expect(!result.ok && result.message).toMatch(
      /^GET \/responses\/resp_odd: answer is not a valid object: status must be one of/,
    );
    fake.sessions.set("sess_odd", { ...idleSession, id: "sess_odd", object: "agent.session.deleted" });
    expect(await client.getSession("sess_odd")).toMatchObject({ ok: false, kind: "invalid" });
  });

  it("an answer with a lone surrogate is invalid (the store must not keep it)", async () => {
    fake.responses.set("resp_bad_text", { ...completedResponse, id: "resp_bad_text", note: "\ud800" });
    expect(await client.getResponse("resp_bad_text")).toMatchObject({ ok: false, kind: "invalid" });
  });
});

describe("listSessionItems", () => {
  it("follows the cursor to the end, oldest first, asking for pages of 100", async () => {
    fake.pageSize = 1;
    const result = await client.listSessionItems(idleSession.id);
    if (!result.ok) throw new Error(result.message);
    expect(result.value).toEqual({ items: idleSessionItems, truncated: false });
    expect(result.raw).toEqual(idleSessionItems);
    expect(
      fake.requests.map((r) => [r.path, r.query.get("order"), r.query.get("limit"), r.query.get("after")]),
    ).toEqual([
      [`/v1/agents/sessions/${idleSession.id}/items`, "asc", "100", null],
      [`/v1/agents/sessions/${idleSession.id}/items`, "asc", "100", "fc_idle_0001"],
      [`/v1/agents/sessions/${idleSession.id}/items`, "asc", "100", "fco_idle_0001"],
    ]);
    expect(fake.requests.every((r) => r.headers["openai-beta"] === "agents=v1")).toBe(true);
  });

  it("stops at maxItemPages and says the list is truncated", async () => {
    fake.pageSize = 1;
    const bounded = new OpenAiApiClient({ baseUrl: fake.url, apiKey: KEY, maxItemPages: 2 });
    const result = await bounded.listSessionItems(idleSession.id);
    expect(result.ok && result.value).toEqual({ items: idleSessionItems.slice(0, 2), truncated: true });
    expect(fake.requests).toHaveLength(2);
  });

  it("a page with more to come but no cursor is invalid, not a silent loss", async () => {
    // The first item of this session has no id: a page of one gives no cursor.
    fake.pageSize = 1;
    expect(await client.listSessionItems(functionCallSession.id)).toMatchObject({
      ok: false,
      kind: "invalid",
      message: `GET /agents/sessions/${functionCallSession.id}/items: has_more without a new cursor`,
    });
    fake.pageSize = 100;
    const all = await client.listSessionItems(functionCallSession.id);
    expect(all.ok && all.value.items).toEqual(functionCallSessionItems);
  });

  it("a failure on a later page is the result", async () => {
    fake.pageSize = 1;
    let calls = 0;
    const flaky = new OpenAiApiClient({
      baseUrl: fake.url,
      apiKey: KEY,
      fetch: (request) => {
        calls++;
        return calls === 2 ? Promise.reject(new TypeError("fetch failed")) : fetch(request);
      },
    });
    expect(await flaky.listSessionItems(idleSession.id)).toMatchObject({
      ok: false,
      kind: "retryable",
      status: null,
    });
    expect(calls).toBe(2);
  });

  it("404 for an unknown session", async () => {
    expect(await client.listSessionItems("sess_nope")).toMatchObject({
      ok: false,
      kind: "not_found",
      status: 404,
    });
  });
});

describe("OpenAiApiClient options", () => {
  it.each([
    [{ baseUrl: "not a url" }, "baseUrl must be an absolute URL"],
    [{ baseUrl: "ftp://api.example/v1" }, "baseUrl must be an http(s) URL"],
    [{ apiKey: "sk-with\nnewline" }, "apiKey must be printable ASCII without spaces"],
    [{ apiKey: "" }, "apiKey must be printable ASCII without spaces"],
    [{ project: "proj 1" }, "project must be printable ASCII without spaces"],
    [{ timeoutMs: 0 }, "timeoutMs must be a positive integer"],
    [{ maxItemPages: 1.5 }, "maxItemPages must be a positive integer"],
  ])("refuses %j", (override, message) => {
    const make = () => new OpenAiApiClient({ apiKey: KEY, ...override });
    expect(make).toThrow(OpenAiApiClientConfigError);
    expect(make).toThrow(message);
  });

  it("defaults to OpenAI's API and to globalThis.fetch, looked up per call", async () => {
    const seen: string[] = [];
    const original = globalThis.fetch;
    globalThis.fetch = async (input) => {
      seen.push((input as Request).url);
      return new Response(JSON.stringify({ error: { message: "nope" } }), { status: 404 });
    };
    try {
      expect(await new OpenAiApiClient({ apiKey: KEY }).getResponse("resp_1")).toMatchObject({
        kind: "not_found",
      });
    } finally {
      globalThis.fetch = original;
    }
    expect(seen).toEqual(["https://api.openai.com/v1/responses/resp_1"]);
  });

  it("does not follow redirects", async () => {
    const redirecting = new OpenAiApiClient({
      apiKey: KEY,
      fetch: async (request) => {
        expect(request.redirect).toBe("manual");
        return new Response(null, { status: 302, headers: { location: "https://elsewhere.example/" } });
      },
    });
    expect(await redirecting.getResponse("resp_1")).toEqual({
      ok: false,
      kind: "invalid",
      status: 302,
      retryAfterMs: null,
      message: "GET /responses/resp_1: HTTP 302: redirects are not followed",
    });
  });
});
