import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../src/observability/logger.js";
import { openFileSpool } from "../src/relay/file-spool.js";
import { forwardRunSteps, type StreamEvent } from "../src/relay/forward-run-steps.js";
import { createForwarder } from "../src/relay/forwarder.js";
import { type NodeTap, startNodeTap } from "../src/relay/node-tap.js";
import { SseParser } from "../src/relay/sse-parser.js";
import { ensureTable } from "../src/store/ensure-table.js";
import {
  type FakeAssistants,
  finalSteps,
  startFakeAssistants,
  transcript,
} from "./support/fake-assistants.js";
import { type ServedApp, serveApp } from "./support/served-app.js";
import { childEnv, runTs } from "./support/server-process.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

const RUNS = {
  chat: { file: "chat-run", thread: "thread_Qm3xv8RkT2bLh7", run: "run_Z4kq1TnW8vYc0P" },
  tools: { file: "tool-calls-start", thread: "thread_Vb8nR2cQe5Lz1W", run: "run_Jx7dF3kS0pUa6M" },
  failed: { file: "failed-run", thread: "thread_Fa1lR9dK3mXq2B", run: "run_Fx2pQ8wL4zNc7V" },
  expired: { file: "expired-run", thread: "thread_Ex9pK2vN5cRb8Q", run: "run_Ex4mT7qW1zLd6H" },
} as const;
const ALL_FILES = ["chat-run", "tool-calls-start", "tool-calls-submit", "failed-run", "expired-run"];
const API_KEY = "sk-test-relay-0123456789";

/** One stepwatch (its own table) served over HTTP, with a webhook sink that gets every notification. */
interface Target {
  readonly app: TestApp;
  readonly served: ServedApp;
  readonly sink: SinkServer;
}

let store: TestStore;
let upstream: FakeAssistants;
let viaTap: Target;
let viaLibrary: Target;
let viaCli: Target;
let tap: NodeTap;
const dirs: string[] = [];
const tapErrors: string[] = [];

async function startTarget(table: string): Promise<Target> {
  await ensureTable(store.client, table, { retentionDays: 0, logger: createLogger("error") });
  const sink = await startSinkServer();
  const app = await createTestApp(store, {
    DYNAMODB_TABLE: table,
    NOTIFY_SINKS: JSON.stringify([
      {
        name: "hook",
        type: "webhook",
        url: `${sink.url}/hook`,
        secret: "whsec_c2lua3NlY3JldDAxMjM0NTY3ODlhYmNkZWZnaGlq",
      },
    ]),
    NOTIFY_RETRY_SCHEDULE: "0.2,0.2",
  });
  return { app, sink, served: await serveApp(app) };
}

const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "relay-spool-"));
  dirs.push(dir);
  return dir;
};

beforeAll(async () => {
  store = await startTestStore("relay-tap");
  upstream = await startFakeAssistants({
    runs: {
      [RUNS.chat.thread]: "chat-run",
      [RUNS.tools.thread]: "tool-calls-start",
      [RUNS.failed.thread]: "failed-run",
      [RUNS.expired.thread]: "expired-run",
      asst_travel_chat: "chat-run",
    },
    submit: { [RUNS.tools.run]: "tool-calls-submit" },
    steps: ALL_FILES,
  });
  [viaTap, viaLibrary, viaCli] = await Promise.all([
    startTarget("relay-tap"),
    startTarget("relay-library"),
    startTarget("relay-cli"),
  ]);
  tap = await startNodeTap({
    upstream: upstream.url,
    port: 0,
    url: viaTap.served.url,
    secret: viaTap.app.secret,
    spoolDir: tempDir(),
    onError: (message) => tapErrors.push(message),
  });
});

afterAll(async () => {
  await tap?.close();
  for (const t of [viaTap, viaLibrary, viaCli]) {
    await t?.app.drain();
    await t?.served.close();
    await t?.sink.close();
  }
  await upstream?.close();
  await store?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const sdk = (baseURL: string) => new OpenAI({ baseURL, apiKey: API_KEY, maxRetries: 0 });
const collect = async (stream: AsyncIterable<{ event: string; data: unknown }>) => {
  const seen: Array<{ event: string; data: unknown }> = [];
  for await (const e of stream) seen.push({ event: e.event, data: e.data });
  return seen;
};

/** What stepwatch should hold for a run: its transcripts' last snapshot of every step. */
const expectedRollup = (runId: string) => {
  const steps = finalSteps(...ALL_FILES).filter((s) => s.run_id === runId);
  const count = (status: string) => steps.filter((s) => s.status === status).length;
  const sum = (key: string) =>
    steps.reduce((total, s) => total + ((s.usage as Record<string, number> | null)?.[key] ?? 0), 0);
  return {
    steps: {
      total: steps.length,
      in_progress: count("in_progress"),
      completed: count("completed"),
      failed: count("failed"),
      cancelled: count("cancelled"),
      expired: count("expired"),
    },
    usage: {
      prompt_tokens: sum("prompt_tokens"),
      completion_tokens: sum("completion_tokens"),
      total_tokens: sum("total_tokens"),
    },
    statuses: Object.fromEntries(steps.map((s) => [s.id, s.status])),
    notifications: steps
      .filter((s) => s.status !== "in_progress")
      .map((s) => `run_step.${s.status}:${s.id}`)
      .sort(),
  };
};

/** Asserts stepwatch holds exactly the run's steps, statuses and rollup, and the sink got exactly its notifications. */
async function expectRun(target: Target, runId: string): Promise<void> {
  const expected = expectedRollup(runId);
  const rollup = await eventually(async () => {
    const res = await target.app.get(`/v1/runs/${runId}`);
    if (res.status !== 200) return undefined;
    const body = (await res.json()) as { steps: Record<string, number>; usage: Record<string, number> };
    return body.steps.total === expected.steps.total && body.steps.in_progress === expected.steps.in_progress
      ? body
      : undefined;
  }, 5000);
  expect(rollup.steps).toEqual(expected.steps);
  expect(rollup.usage).toEqual(expected.usage);
  const listed = (await (await target.app.get(`/v1/runs/${runId}/steps?limit=100`)).json()) as {
    data: Array<{ id: string; status: string }>;
  };
  expect(Object.fromEntries(listed.data.map((s) => [s.id, s.status]))).toEqual(expected.statuses);
  const notified = () =>
    target.sink.received
      .map((r) => JSON.parse(r.body) as { type: string; data: { id: string; run_id: string } })
      .filter((n) => n.data.run_id === runId)
      .map((n) => `${n.type}:${n.data.id}`)
      .sort();
  await eventually(async () => (notified().length >= expected.notifications.length ? true : undefined), 5000);
  // A little longer: a duplicate notification would arrive now.
  await new Promise((resolve) => setTimeout(resolve, 150));
  expect(notified()).toEqual(expected.notifications);
}

describe("tap", () => {
  it("tees run steps found in list and retrieve answers", async () => {
    const client = sdk(tap.url);
    const page = await client.beta.threads.runs.steps.list(RUNS.expired.run, {
      thread_id: RUNS.expired.thread,
    });
    expect(page.data.map((s) => s.status)).toEqual(["expired"]);
    const one = await client.beta.threads.runs.steps.retrieve("step_F3kXw9Lq2Tz8Rb", {
      thread_id: RUNS.failed.thread,
      run_id: RUNS.failed.run,
    });
    expect(one.status).toBe("failed");
    await tap.forwarder.idle();
    await expectRun(viaTap, RUNS.expired.run);
    await expectRun(viaTap, RUNS.failed.run);
  });

  it("passes every byte through unchanged, streaming, credentials included", async () => {
    const request = (base: string) =>
      fetch(`${base}/threads/${RUNS.chat.thread}/runs`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${API_KEY}`,
          "content-type": "application/json",
          "openai-beta": "assistants=v2",
        },
        body: JSON.stringify({ assistant_id: "asst_travel_chat", stream: true }),
      });
    const [direct, tapped] = await Promise.all([request(upstream.url), request(tap.url)]);
    expect(tapped.status).toBe(direct.status);
    expect(tapped.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(tapped.headers.get("x-request-id")).toBe(direct.headers.get("x-request-id"));
    expect(tapped.headers.get("openai-processing-ms")).toBe("42");
    const [a, b] = await Promise.all([direct.arrayBuffer(), tapped.arrayBuffer()]);
    expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(b).toString("utf8")).toBe(transcript("chat-run"));
    const hop = upstream.received.filter((r) => r.path.endsWith(`/threads/${RUNS.chat.thread}/runs`)).at(-1);
    expect(hop?.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(hop?.headers["openai-beta"]).toBe("assistants=v2");
    // An upstream error answer passes through as it is.
    const missing = await fetch(`${tap.url}/threads/thread_none/runs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ assistant_id: "asst_none" }),
    });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { type: string } }).error.type).toBe("invalid_request_error");
    await tap.forwarder.idle();
    await expectRun(viaTap, RUNS.chat.run);
  });

  it("the SDK sees the same stream through the tap as without it; stepwatch ends with each run", async () => {
    const direct = sdk(upstream.url);
    const tapped = sdk(tap.url);
    for (const key of ["chat", "failed", "expired"] as const) {
      const params = { assistant_id: key === "chat" ? "asst_travel_chat" : "asst_travel_tools" };
      const [a, b] = await Promise.all([
        collect(direct.beta.threads.runs.stream(RUNS[key].thread, params)),
        collect(tapped.beta.threads.runs.stream(RUNS[key].thread, params)),
      ]);
      expect(b).toEqual(a);
      expect(b.length).toBeGreaterThan(5);
    }
    // A tool-calls run: requires_action, then the outputs go back on a second stream.
    const first = await collect(
      tapped.beta.threads.runs.stream(RUNS.tools.thread, { assistant_id: "asst_travel_tools" }),
    );
    expect(first.at(-1)?.event).toBe("thread.run.requires_action");
    expect(first.filter((e) => e.event === "thread.run.step.delta")).toHaveLength(4);
    const outputs = {
      thread_id: RUNS.tools.thread,
      tool_outputs: [{ tool_call_id: "call_kT9wQ2zX5rNb8Y", output: '{"temp_c":21}' }],
    };
    const [secondDirect, second] = await Promise.all([
      collect(direct.beta.threads.runs.submitToolOutputsStream(RUNS.tools.run, outputs)),
      collect(tapped.beta.threads.runs.submitToolOutputsStream(RUNS.tools.run, outputs)),
    ]);
    expect(second).toEqual(secondDirect);
    expect(second.map((e) => e.event)).toContain("thread.run.step.completed");
    await tap.forwarder.idle();
    for (const key of ["chat", "failed", "expired", "tools"] as const) await expectRun(viaTap, RUNS[key].run);
    expect(tap.forwarder.stats.refused).toBe(0);
    expect(tapErrors).toEqual([]);
  });
});

describe("library", () => {
  it("forwards an AssistantStream the caller keeps iterating and listening to, unchanged", async () => {
    const client = sdk(upstream.url);
    const target = { url: viaLibrary.served.url, secret: viaLibrary.app.secret };
    const baseline = await collect(
      client.beta.threads.runs.stream(RUNS.tools.thread, { assistant_id: "asst_travel_tools" }),
    );

    const stream = client.beta.threads.runs.stream(RUNS.tools.thread, { assistant_id: "asst_travel_tools" });
    const relay = forwardRunSteps(stream, target);
    const deltas: string[] = [];
    stream.on("toolCallDelta", (delta) => {
      if (delta.type === "function") deltas.push(delta.function?.arguments ?? "");
    });
    expect(await collect(stream)).toEqual(baseline);
    expect(deltas.join("")).toBe('{"city":"Lisbon"}');
    const firstStats = await relay.done;
    // created + in_progress of the tool step: deltas are not forwarded unless asked.
    expect(firstStats).toMatchObject({ accepted: 2, acknowledged: 2, refused: 0 });

    const submit = client.beta.threads.runs.submitToolOutputsStream(RUNS.tools.run, {
      thread_id: RUNS.tools.thread,
      tool_outputs: [{ tool_call_id: "call_kT9wQ2zX5rNb8Y", output: '{"temp_c":21}' }],
    });
    const second = forwardRunSteps(submit, target);
    const final = await submit.finalRun();
    expect(final.status).toBe("completed");
    expect(await second.done).toMatchObject({ acknowledged: 4, refused: 0 });

    // threads.createAndRunStream, consumed only through event listeners.
    const created = client.beta.threads.createAndRunStream({ assistant_id: "asst_travel_chat" });
    const third = forwardRunSteps(created, { ...target, includeDeltas: true });
    let text = "";
    created.on("textDelta", (delta) => {
      text += delta.value ?? "";
    });
    await created.done();
    expect(text).toContain("Lisbon in spring is mild");
    expect((await third.done).acknowledged).toBe(3);

    await expectRun(viaLibrary, RUNS.tools.run);
    await expectRun(viaLibrary, RUNS.chat.run);
  });
});

/** The run step events of a transcript, as an async iterable of `{ event, data }`. */
async function* eventsOf(name: string): AsyncGenerator<StreamEvent> {
  const parser = new SseParser();
  yield* parser.push(transcript(name));
  yield* parser.end();
}

describe("outage and restart", () => {
  it("stepwatch down for part of a stream, then back: nothing lost, nothing duplicated", async () => {
    const spoolDir = tempDir();
    const spool = await openFileSpool(spoolDir);
    let retries = 0;
    const forwarder = await createForwarder({
      url: viaCli.served.url,
      secret: viaCli.app.secret,
      spool,
      initialDelayMs: 20,
      maxDelayMs: 100,
      onRetry: () => {
        retries++;
      },
    });
    // The first event gets through; then stepwatch goes away for the rest of the stream.
    async function* stream(): AsyncGenerator<StreamEvent> {
      for await (const e of eventsOf("failed-run")) {
        yield e;
        if (e.event === "thread.run.step.created") {
          await eventually(async () => (forwarder.stats.acknowledged === 1 ? true : undefined), 5000, 5);
          await viaCli.served.stop();
        }
      }
    }
    const relay = forwardRunSteps(stream(), { relay: forwarder });
    await eventually(async () => (retries >= 3 ? true : undefined), 5000, 10);
    expect(forwarder.stats.acknowledged).toBe(1);
    await viaCli.served.start();
    await relay.done;
    expect(forwarder.stats).toMatchObject({ accepted: 3, acknowledged: 3, refused: 0 });
    await forwarder.close();
    await expectRun(viaCli, RUNS.failed.run);
  });

  it("a relay restarted on its spool sends what the previous one left, first", async () => {
    const spoolDir = tempDir();
    await viaCli.served.stop();
    const first = await createForwarder({
      url: viaCli.served.url,
      secret: viaCli.app.secret,
      spool: await openFileSpool(spoolDir),
      initialDelayMs: 20,
      maxDelayMs: 50,
      giveUpAfterMs: 200,
    });
    const gaveUp = forwardRunSteps(eventsOf("expired-run"), { relay: first }).done;
    await expect(gaveUp).rejects.toThrow(/unreachable after \d+ attempts/);
    expect(first.stats.accepted).toBe(3);
    await first.close();

    await viaCli.served.start();
    const second = await createForwarder({
      url: viaCli.served.url,
      secret: viaCli.app.secret,
      spool: await openFileSpool(spoolDir),
    });
    await second.idle();
    expect(second.stats.acknowledged).toBe(3);
    await second.close();
    await expectRun(viaCli, RUNS.expired.run);
  });
});

/** A loopback URL nothing listens on. */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

describe("CLI", () => {
  const run = (args: string[]) => {
    const child = runTs("scripts/relay.ts", args, childEnv({}));
    let out = "";
    let err = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr?.on("data", (c: Buffer) => {
      err += c.toString();
    });
    return new Promise<{ code: number | null; out: string; err: string }>((resolve) =>
      child.once("exit", (code) => resolve({ code, out, err })),
    );
  };

  it("replays the shipped sample transcript: exit 0 once acknowledged; refusal and outage: one line, non-zero", async () => {
    const [ok, badSecret, unreachable] = await Promise.all([
      run([
        "--file",
        "samples/tool-calls-run.sse",
        "--url",
        viaCli.served.url,
        "--secret",
        viaCli.app.secret,
      ]),
      run([
        "--file",
        "samples/tool-calls-run.sse",
        "--url",
        viaCli.served.url,
        "--secret",
        "whsec_c2lua3NlY3JldDAxMjM0NTY3ODlhYmNkZWZnaGlq",
      ]),
      run([
        "--file",
        "test/fixtures/chat-run.sse",
        "--url",
        await closedPortUrl(),
        "--secret",
        viaCli.app.secret,
        "--give-up-after",
        "1",
      ]),
    ]);
    expect(ok).toMatchObject({ code: 0, err: "" });
    expect(ok.out).toBe(`relayed 6 run step events to ${viaCli.served.url} (0 retries)\n`);
    expect(badSecret.code).toBe(1);
    expect(badSecret.err).toMatch(
      /^relay: stepwatch refused thread\.run\.step\.created for step \S+ with HTTP 401.*\n$/,
    );
    expect(badSecret.err.split("\n")).toHaveLength(2);
    expect(unreachable.code).toBe(1);
    expect(unreachable.err).toMatch(
      /^relay: stepwatch unreachable after \d+ attempts over \d+ s: network error \(ECONNREFUSED\)\n$/,
    );
    await expectRun(viaCli, RUNS.tools.run);
  });
});
