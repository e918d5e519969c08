import { EventEmitter } from "node:events";
import { Readable } from "node:stream";
import { AssistantStream } from "openai/lib/AssistantStream";
import { Stream } from "openai/streaming";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { forwardRunSteps, type StreamEvent } from "../src/relay/forward-run-steps.js";
import { createForwarder, type Forwarder } from "../src/relay/forwarder.js";
import { overriding } from "./support/overriding.js";
import { makeStep } from "./support/run-steps.js";
import { type SinkServer, startSinkServer } from "./support/sink-server.js";
import { within } from "./support/within.js";

const SECRET = "whsec_c2lua3NlY3JldDAxMjM0NTY3ODlhYmNkZWZnaGlq";
const OK = { status: 200, body: "ok" };

let sink: SinkServer;
const relays: Forwarder[] = [];

beforeAll(async () => {
  sink = await startSinkServer();
});

afterEach(async () => {
  for (const r of relays.splice(0)) await r.close();
  sink.reset();
  sink.fallback = OK;
});

afterAll(async () => {
  await sink.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const target = { url: "", secret: SECRET };
const options = () => ({ url: sink.url, secret: SECRET, initialDelayMs: 10 });
const sharedRelay = async () => {
  const relay = await createForwarder(options());
  relays.push(relay);
  return relay;
};

const created = (id: string): StreamEvent => ({
  event: "thread.run.step.created",
  data: makeStep({ id }),
});
const completed = (id: string): StreamEvent => ({
  event: "thread.run.step.completed",
  data: makeStep({ id, status: "completed" }),
});
const other: StreamEvent = { event: "thread.created", data: { id: "thread_1", object: "thread" } };

/** The run step webhooks stepwatch received, as `event stepId`. */
const delivered = () =>
  sink.received.map((r) => {
    const body = JSON.parse(r.body) as { event: string; data: { id: string } };
    return `${body.event} ${body.data.id}`;
  });

/** An emitter shaped like the SDK's AssistantStream (an `on` method, an AbortController), not iterable. */
const emitter = () => Object.assign(new EventEmitter(), { controller: new AbortController() });

describe("forwardRunSteps reads any stream shape", () => {
  it("observes an SDK AssistantStream while the caller iterates it unchanged", async () => {
    const run = (status: string) => ({
      id: "run_abc123",
      object: "thread.run",
      thread_id: "thread_abc123",
      status,
    });
    const events = [
      { event: "thread.run.created", data: run("queued") },
      created("step_s1"),
      completed("step_s1"),
      { event: "thread.run.completed", data: run("completed") },
    ];
    const lines = new TextEncoder().encode(events.map((e) => `${JSON.stringify(e)}\n`).join(""));
    const stream = AssistantStream.fromReadableStream(
      new ReadableStream({
        start(controller) {
          controller.enqueue(lines);
          controller.close();
        },
      }),
    );
    const relay = forwardRunSteps(stream, options());
    const seen: string[] = [];
    for await (const e of stream) seen.push(e.event);
    expect(seen).toEqual(events.map((e) => e.event));
    expect(await within(relay.done)).toEqual({
      accepted: 2,
      acknowledged: 2,
      refused: 0,
      retries: 0,
      dropped: 0,
    });
    expect(delivered()).toEqual(["thread.run.step.created step_s1", "thread.run.step.completed step_s1"]);
  });

  it("hears an emitter (the SDK stream's shape) from the call on, even before its relay is ready", async () => {
    const stream = emitter();
    const relay = forwardRunSteps(stream, options());
    stream.emit("event", created("step_e1"));
    stream.emit("event", other);
    stream.emit("end");
    expect((await within(relay.done)).acknowledged).toBe(1);
    expect(delivered()).toEqual(["thread.run.step.created step_e1"]);
  });

  it("reads an SDK Stream (iterable, with a controller but no `on`) itself", async () => {
    const stream = new Stream(async function* () {
      yield created("step_i1");
      yield other;
      yield completed("step_i1");
    }, new AbortController());
    const relay = forwardRunSteps(stream as AsyncIterable<StreamEvent>, options());
    expect((await within(relay.done)).acknowledged).toBe(2);
    expect(delivered()).toEqual(["thread.run.step.created step_i1", "thread.run.step.completed step_i1"]);
  });

  it("reads a Node stream (iterable, with `on` but no controller) itself", async () => {
    const relay = forwardRunSteps(Readable.from([created("step_n1"), completed("step_n1")]), options());
    expect((await within(relay.done)).acknowledged).toBe(2);
    expect(delivered()).toEqual(["thread.run.step.created step_n1", "thread.run.step.completed step_n1"]);
  });
});

describe("forwardRunSteps and its relay", () => {
  it("leaves a caller's relay open and counts only this stream's events", async () => {
    const relay = await sharedRelay();
    const first = forwardRunSteps(Readable.from([created("step_a1"), created("step_a2")]), {
      relay,
      ...target,
    });
    expect((await within(first.done)).acknowledged).toBe(2);
    const second = forwardRunSteps(Readable.from([created("step_b1")]), { relay, ...target });
    expect(await within(second.done)).toEqual({
      accepted: 1,
      acknowledged: 1,
      refused: 0,
      retries: 0,
      dropped: 0,
    });
    expect(second.stats.acknowledged).toBe(1);
    // Still open: it takes and delivers more.
    await relay.accept({ id: "msg_extra", stepId: "step_c1", event: "thread.run.step.created", body: "{}" });
    await within(relay.idle());
    expect(relay.stats.acknowledged).toBe(4);
  });

  it("closes the relay it made when the stream fails, so nothing is sent afterwards", async () => {
    sink.fallback = { status: 503, body: "busy" };
    const relay = forwardRunSteps(
      (async function* () {
        yield created("step_x1");
        await sleep(30);
        throw new Error("stream broke");
      })(),
      options(),
    );
    await expect(within(relay.done)).rejects.toThrow("stream broke");
    expect(relay.stats.accepted).toBe(1);
    const attempts = sink.received.length;
    expect(attempts).toBeGreaterThan(0);
    await sleep(80);
    expect(sink.received.length).toBe(attempts);
  });

  it("rejects `done` when its relay cannot start, forwarding nothing from the emitter", async () => {
    const stream = emitter();
    const handle = forwardRunSteps(stream, { url: sink.url, secret: "whsec_" });
    stream.emit("event", created("step_z1"));
    await expect(within(handle.done)).rejects.toThrow(/whsec_/);
    stream.emit("event", created("step_z2"));
    stream.emit("end");
    await sleep(20);
    expect(sink.received).toEqual([]);
  });

  it("rejects `done` when the relay fails, and takes no more events from the emitter", async () => {
    const accepted: string[] = [];
    const real = await sharedRelay();
    const relay = overriding(real, {
      accept: async (event) => {
        accepted.push(event.stepId);
        throw new Error("spool disk full");
      },
    });
    const stream = emitter();
    const handle = forwardRunSteps(stream, { relay });
    stream.emit("event", created("step_f1"));
    await sleep(20);
    stream.emit("event", created("step_f2"));
    stream.emit("event", created("step_f3"));
    stream.emit("end");
    await expect(within(handle.done)).rejects.toThrow("spool disk full");
    await sleep(20);
    expect(accepted).toEqual(["step_f1"]);
  });
});

describe("an emitter is never slowed down", () => {
  it("drops (and counts) an event only when one is already waiting for room", async () => {
    sink.fallback = { ...OK, delayMs: 120 };
    const relay = await createForwarder({ ...options(), maxQueued: 1 });
    relays.push(relay);
    const stream = emitter();
    const handle = forwardRunSteps(stream, { relay });
    stream.emit("event", created("step_d1"));
    await sleep(30); // step_d1 is being sent: no room left
    stream.emit("event", created("step_d2")); // waits for room
    stream.emit("event", created("step_d3")); // one is waiting already: dropped
    stream.emit("end");
    expect(await within(handle.done)).toEqual({
      accepted: 2,
      acknowledged: 2,
      refused: 0,
      retries: 0,
      dropped: 1,
    });
    expect(delivered()).toEqual(["thread.run.step.created step_d1", "thread.run.step.created step_d2"]);
  });

  it("keeps at most 1000 events waiting, whatever the room", async () => {
    let accepted = 0;
    // A relay that takes events at once (not 1,000 posts): the waiting is all forwardRunSteps'.
    const relay = overriding(await sharedRelay(), {
      accept: async () => {
        accepted++;
      },
    });
    const stream = emitter();
    const handle = forwardRunSteps(stream, { relay });
    for (let i = 0; i < 1001; i++) stream.emit("event", created(`step_m${i}`));
    stream.emit("end");
    const stats = await within(handle.done);
    expect(stats.dropped).toBe(1);
    expect(accepted).toBe(1000);
  });
});
