import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { openFileSpool, SpoolLockedError } from "../src/relay/file-spool.js";
import {
  createForwarder as createForwarderOf,
  type Forwarder,
  type ForwarderOptions,
  type RefusedEvent,
  RelayFailedError,
} from "../src/relay/forwarder.js";
import { type RelayEvent, runStepEventOf } from "../src/relay/run-step-events.js";
import type { Spool } from "../src/relay/spool.js";
import { makeStep } from "./support/run-steps.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Settles as `promise` does, or rejects after `ms`: no wait in this file can hang it. */
const within = <T>(promise: Promise<T>, ms = 1000): Promise<T> =>
  Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms).unref(),
    ),
  ]);

/** What a promise rejected with (it must reject within a second). */
const rejectionOf = (promise: Promise<unknown>): Promise<Error> =>
  within(promise).then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: unknown) => error as Error,
  );

/** A real spool with some of its methods replaced (a delay, a failure, a hook); the rest as is. */
const overSpool = (inner: Spool, over: Partial<Omit<Spool, "durableEnd">>): Spool => ({
  append: (event) => inner.append(event),
  ack: (id) => inner.ack(id),
  read: (from, max) => inner.read(from, max),
  clear: () => inner.clear(),
  close: () => inner.close(),
  get durableEnd() {
    return inner.durableEnd;
  },
  ...over,
});

// A per-test bound well above what each test takes (tens of ms): a forwarder that never settles
// fails its test rather than holding the file for the default 30 s.
describe("forwarder", { timeout: 5000 }, () => {
  let sink: SinkServer;
  const secret = generateWebhookSecret();
  const dirs: string[] = [];
  // Every forwarder a test made is closed after it, even when an assertion failed first; a close
  // that hangs (a forwarder stuck sending) is given up after a second rather than stalling the file.
  const open: Forwarder[] = [];
  const createForwarder = async (...args: Parameters<typeof createForwarderOf>) => {
    const forwarder = await createForwarderOf(...args);
    open.push(forwarder);
    return forwarder;
  };
  afterEach(async () => {
    vi.restoreAllMocks();
    const closing = Promise.all(open.splice(0).map((f) => f.close()));
    await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
  });
  beforeAll(async () => {
    sink = await startSinkServer();
  });
  beforeEach(() => {
    sink.reset();
    sink.respond = null;
    sink.fallback = { status: 200, body: "{}" };
  });
  afterAll(async () => {
    await sink.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const spoolDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "relay-fwd-"));
    dirs.push(dir);
    return dir;
  };
  const event = async (stepId: string, status: string, seq = 0): Promise<RelayEvent> =>
    (await runStepEventOf(
      `thread.run.step.${status}`,
      makeStep({ id: stepId, status, created_at: 1_764_000_000 + seq }),
    )) as RelayEvent;
  const bodies = () =>
    sink.received.map(
      (r) => JSON.parse(r.body) as { event: string; data: { id: string; created_at: number } },
    );
  /** The `seq` of each event stepwatch received for one step, in the order received. */
  const seqsOf = (stepId: string) =>
    bodies()
      .filter((b) => b.data.id === stepId)
      .map((b) => b.data.created_at - 1_764_000_000);
  const stats = (counts: Partial<Forwarder["stats"]>) => ({
    accepted: 0,
    acknowledged: 0,
    refused: 0,
    retries: 0,
    dropped: 0,
    ...counts,
  });

  it("signs each attempt (verified by standardwebhooks) with a webhook-id kept across retries; Retry-After honoured up to maxDelayMs", async () => {
    sink.scriptStatuses(503);
    sink.script({ status: 429, headers: { "retry-after": "1" } }, { status: 500 });
    const retries: Array<[string, number]> = [];
    const forwarder = await createForwarder({
      url: `${sink.url}//`,
      secret,
      initialDelayMs: 10,
      maxDelayMs: 60,
      random: () => 0,
      onRetry: (_e, error, delayMs) => retries.push([error.slice(0, 8), delayMs]),
    });
    const e = await event("step_sig", "completed");
    await forwarder.accept(e);
    await within(forwarder.idle());
    // Half the backoff (random 0) each time, but the 1 s Retry-After raised to the 60 ms cap.
    expect(retries).toEqual([
      ["HTTP 503", 5],
      ["HTTP 429", 60],
      ["HTTP 500", 20],
    ]);
    expect(sink.received).toHaveLength(4);
    const verifier = new Webhook(secret);
    for (const r of sink.received) {
      expect(r.path).toBe("/v1/webhooks/run-steps");
      expect(r.headers["webhook-id"]).toBe(e.id);
      expect(r.headers["content-type"]).toBe("application/json");
      expect(verifier.verify(r.body, r.headers as Record<string, string>)).toEqual(JSON.parse(e.body));
    }
    expect(forwarder.stats).toEqual(stats({ accepted: 1, acknowledged: 1, retries: 3 }));
  });

  it("posts to <url>/v1/webhooks/run-steps, with or without trailing slashes on a base path", async () => {
    for (const url of [`${sink.url}/stepwatch`, `${sink.url}/stepwatch///`]) {
      const forwarder = await createForwarder({ url, secret });
      await forwarder.accept(await event("step_url", "completed"));
      await within(forwarder.idle());
    }
    expect(sink.received.map((r) => r.path)).toEqual([
      "/stepwatch/v1/webhooks/run-steps",
      "/stepwatch/v1/webhooks/run-steps",
    ]);
  });

  it("backs off exponentially from initialDelayMs up to maxDelayMs, with jitter between half and all of it", async () => {
    sink.scriptStatuses(503, 503, 503, 503, 503);
    const delays: number[] = [];
    const forwarder = await createForwarder({
      url: sink.url,
      secret,
      initialDelayMs: 8,
      maxDelayMs: 40,
      random: () => 0.5,
      onRetry: (_e, _error, delayMs) => delays.push(delayMs),
    });
    await forwarder.accept(await event("step_back", "completed"));
    await within(forwarder.idle());
    // 8, 16, 32, 40, 40 (capped), each × (0.5 + 0.5 / 2).
    expect(delays).toEqual([6, 12, 24, 30, 30]);
    expect(forwarder.stats).toEqual(stats({ accepted: 1, acknowledged: 1, retries: 5 }));
  });

  it("defaults: first retry after 125–250 ms, Retry-After capped at 30 s, 8 steps at once", async () => {
    const delays: number[] = [];
    const options: ForwarderOptions = {
      url: sink.url,
      secret,
      random: () => 0,
      onRetry: (_e, _error, delayMs) => delays.push(delayMs),
    };
    sink.fallback = { status: 503 };
    const first = await createForwarder(options);
    await first.accept(await event("step_d1", "completed"));
    await eventually(async () => (delays.length > 0 ? true : undefined), 1000, 5);
    await within(first.close());
    sink.fallback = { status: 429, headers: { "retry-after": "3600" } };
    const second = await createForwarder(options);
    await second.accept(await event("step_d2", "completed"));
    await eventually(async () => (delays.length > 1 ? true : undefined), 1000, 5);
    await within(second.close());
    expect(delays).toEqual([125, 30_000]);

    sink.reset();
    // Answers slow enough that every send has started before the first one ends, even on a busy machine.
    sink.fallback = { status: 200, delayMs: 150 };
    const steps = await Promise.all([...Array(9).keys()].map((s) => event(`step_w${s}`, "completed")));
    const wide = await createForwarder({ url: sink.url, secret });
    for (const e of steps) await wide.accept(e);
    await within(wide.idle());
    expect(sink.maxInFlight).toBe(8);
  });

  it("keeps each step's events in order while steps go concurrently, bounded", async () => {
    sink.fallback = { status: 200, delayMs: 15 };
    const forwarder = await createForwarder({ url: sink.url, secret, concurrency: 3 });
    for (let seq = 0; seq < 4; seq++) {
      for (let s = 0; s < 6; s++) {
        const status = seq === 3 ? "completed" : "in_progress";
        await forwarder.accept(await event(`step_o${s}`, status, seq));
      }
    }
    await within(forwarder.idle());
    expect(sink.received).toHaveLength(24);
    expect(sink.maxInFlight).toBe(3);
    for (let s = 0; s < 6; s++) expect(seqsOf(`step_o${s}`)).toEqual([0, 1, 2, 3]);
  });

  it("reports a 4xx refusal without retrying it, and goes on with the next events (onRefused optional)", async () => {
    sink.respond = (r) => {
      if (r.body.includes("step_422")) return { status: 422, body: '{"error":{"code":"invalid_payload"}}' };
      if (r.body.includes("step_400")) return { status: 400 };
      return undefined;
    };
    const refused: RefusedEvent[] = [];
    const forwarder = await createForwarder({ url: sink.url, secret, onRefused: (r) => refused.push(r) });
    const bad = await event("step_422", "completed");
    await forwarder.accept(bad);
    await forwarder.accept(await event("step_400", "completed"));
    await forwarder.accept(await event("step_good", "completed"));
    await within(forwarder.idle());
    expect(sink.received).toHaveLength(3);
    expect(refused).toHaveLength(2);
    expect(refused).toContainEqual({
      id: bad.id,
      stepId: "step_422",
      event: "thread.run.step.completed",
      status: 422,
      error: 'HTTP 422: {"error":{"code":"invalid_payload"}}',
    });
    expect(refused).toContainEqual(expect.objectContaining({ stepId: "step_400", status: 400 }));
    expect(forwarder.stats).toEqual(stats({ accepted: 3, acknowledged: 1, refused: 2 }));

    const quiet = await createForwarder({ url: sink.url, secret });
    await quiet.accept(await event("step_400", "completed"));
    await within(quiet.idle());
    expect(quiet.stats).toEqual(stats({ accepted: 1, refused: 1 }));
  });

  it("retries 408 and 429 like 5xx", async () => {
    sink.scriptStatuses(408, 429);
    const errors: string[] = [];
    const forwarder = await createForwarder({
      url: sink.url,
      secret,
      initialDelayMs: 5,
      onRetry: (_e, error) => errors.push(error),
    });
    await forwarder.accept(await event("step_408", "completed"));
    await within(forwarder.idle());
    expect(errors).toEqual(["HTTP 408", "HTTP 429"]);
    expect(forwarder.stats).toEqual(stats({ accepted: 1, acknowledged: 1, retries: 2 }));
  });

  it("stops at 401, 403, 404, 405 and any 3xx: idle and accept reject with one reason, naming no secret", async () => {
    for (const status of [401, 403, 404, 405, 300, 302, 308]) {
      sink.reset();
      sink.fallback = { status, body: "{}" };
      const [f1, f2, f3] = await Promise.all(
        ["step_f1", "step_f2", "step_f3"].map((s) => event(s, "completed")),
      );
      const forwarder = await createForwarder({ url: sink.url, secret, concurrency: 1 });
      // Both taken before any answer can come back.
      await Promise.all([forwarder.accept(f1 as RelayEvent), forwarder.accept(f2 as RelayEvent)]);
      const error = await rejectionOf(forwarder.idle());
      expect(error).toBeInstanceOf(RelayFailedError);
      expect(error.name).toBe("RelayFailedError");
      expect(error.message).toMatch(
        new RegExp(
          `^stepwatch refused thread\\.run\\.step\\.completed for step step_f1 with HTTP ${status}.*: check the URL and the secret$`,
        ),
      );
      expect(error.message).not.toContain(secret.slice(6));
      await expect(forwarder.accept(f3 as RelayEvent)).rejects.toBe(error);
      expect(forwarder.hasRoom()).toBe(false);
      await within(forwarder.close());
      // Nothing after the refusal was sent.
      expect(sink.received).toHaveLength(1);
      expect(forwarder.stats).toEqual(stats({ accepted: 2 }));
    }
  });

  it("stops when a request cannot even be built (a URL fetch cannot use), refusing no event", async () => {
    const refused: RefusedEvent[] = [];
    const forwarder = await createForwarder({
      url: "http://exa mple.test",
      secret,
      onRefused: (r) => refused.push(r),
    });
    await forwarder.accept(await event("step_nourl", "completed"));
    const error = await rejectionOf(forwarder.idle());
    expect(error).toBeInstanceOf(RelayFailedError);
    expect(error.message).toBe(
      "thread.run.step.completed for step step_nourl could not be sent (request could not be built: TypeError): check the URL",
    );
    expect(refused).toEqual([]);
    expect(forwarder.stats).toEqual(stats({ accepted: 1 }));
  });

  it("gives up once one event has failed for giveUpAfterMs, saying after how many attempts and seconds", async () => {
    let clock = 1_764_000_000_000;
    vi.spyOn(Date, "now").mockImplementation(() => clock);
    sink.fallback = { status: 503 };
    const forwarder = await createForwarder({
      url: sink.url,
      secret,
      initialDelayMs: 5,
      giveUpAfterMs: 2500,
      random: () => 0,
      // Each failed attempt takes 1.5 s of the (fake) clock.
      onRetry: () => {
        clock += 1500;
      },
    });
    await forwarder.accept(await event("step_gone", "completed"));
    const error = await rejectionOf(forwarder.idle());
    expect(error).toBeInstanceOf(RelayFailedError);
    expect(error.message).toBe("stepwatch unreachable after 3 attempts over 3 s: HTTP 503");
    expect(sink.received).toHaveLength(3);
    expect(forwarder.stats).toEqual(stats({ accepted: 1, retries: 2 }));

    // 0: the first failure is the last, even when no time passed at all.
    const impatient = await createForwarder({ url: sink.url, secret, initialDelayMs: 5, giveUpAfterMs: 0 });
    await impatient.accept(await event("step_gone2", "completed"));
    expect((await rejectionOf(impatient.idle())).message).toBe(
      "stepwatch unreachable after 1 attempts over 0 s: HTTP 503",
    );
  });

  it("idle() resolves at once when nothing is pending; close() stops sending and rejects idle() while events are left", async () => {
    const forwarder = await createForwarder({ url: sink.url, secret });
    await within(forwarder.idle(), 100);

    sink.fallback = { status: 503 };
    const stuck = await createForwarder({ url: sink.url, secret, initialDelayMs: 1000 });
    await stuck.accept(await event("step_close", "completed"));
    await sink.waitFor(1, 1000);
    // close() comes during the attempt: the backoff after it (0.5–1 s) is not waited out.
    const waiting = rejectionOf(stuck.idle());
    await within(stuck.close(), 300);
    await within(stuck.close());
    for (const error of [await waiting, await rejectionOf(stuck.idle())]) {
      expect(error).toBeInstanceOf(RelayFailedError);
      expect(error.message).toBe("the relay was closed");
    }
    const refusal = await rejectionOf(stuck.accept(await event("step_close", "completed")));
    expect(refusal).toBeInstanceOf(RelayFailedError);
    expect(refusal.message).toBe("the relay is closed");
    await sleep(20);
    expect(sink.received).toHaveLength(1);
    expect(stuck.stats).toEqual(stats({ accepted: 1, retries: 1 }));

    // With a spool too: nothing is written once closed.
    const spooled = await createForwarder({ url: sink.url, secret, spool: await openFileSpool(spoolDir()) });
    await within(spooled.close());
    const closedError = await rejectionOf(spooled.accept(await event("step_close2", "completed")));
    expect(closedError).toBeInstanceOf(RelayFailedError);
    expect(closedError.message).toBe("the relay is closed");
  });

  it("without a spool, accepting waits while memory is full (backpressure), and gives up when the relay stops", async () => {
    sink.fallback = { status: 200, delayMs: 40 };
    const forwarder = await createForwarder({ url: sink.url, secret, maxQueued: 2, concurrency: 1 });
    expect(forwarder.hasRoom()).toBe(true);
    const [b1, b2, b3] = await Promise.all(
      ["step_b1", "step_b2", "step_b3"].map((s) => event(s, "completed")),
    );
    await forwarder.accept(b1 as RelayEvent);
    expect(forwarder.hasRoom()).toBe(true);
    await forwarder.accept(b2 as RelayEvent);
    expect(forwarder.hasRoom()).toBe(false);
    let third = false;
    const accepting = forwarder.accept(b3 as RelayEvent).then(() => {
      third = true;
    });
    await sleep(15);
    expect(third).toBe(false);
    await within(accepting);
    expect(sink.received.length).toBeGreaterThanOrEqual(1);
    await within(forwarder.idle());
    expect(forwarder.hasRoom()).toBe(true);
    expect(forwarder.stats).toEqual(stats({ accepted: 3, acknowledged: 3 }));

    // Waiting for room when close() comes: refused as closed.
    const [c1, c2, x1, x2] = await Promise.all(
      ["step_c1", "step_c2", "step_x1", "step_x2"].map((s) => event(s, "completed")),
    );
    const closing = await createForwarder({ url: sink.url, secret, maxQueued: 1 });
    await closing.accept(c1 as RelayEvent);
    const late = rejectionOf(closing.accept(c2 as RelayEvent));
    await within(closing.close());
    expect((await late).message).toBe("the relay is closed");

    // Waiting for room when stepwatch refuses everything: refused with that reason.
    sink.fallback = { status: 401, delayMs: 20 };
    const failing = await createForwarder({ url: sink.url, secret, maxQueued: 1 });
    await failing.accept(x1 as RelayEvent);
    const refused = await rejectionOf(failing.accept(x2 as RelayEvent));
    expect(refused).toBeInstanceOf(RelayFailedError);
    expect(refused.message).toMatch(/HTTP 401.*check the URL and the secret$/);
    expect(failing.stats).toEqual(stats({ accepted: 1 }));
  });

  it("counts what a push source dropped", async () => {
    const forwarder = await createForwarder({ url: sink.url, secret });
    forwarder.noteDropped();
    forwarder.noteDropped();
    expect(forwarder.stats).toEqual(stats({ dropped: 2 }));
  });

  it("with a spool, what fits in memory is sent from memory: the spool is written, never read", async () => {
    const inner = await openFileSpool(spoolDir());
    const reads: number[] = [];
    const spool = overSpool(inner, {
      read: (from, max) => {
        reads.push(max);
        return inner.read(from, max);
      },
    });
    const forwarder = await createForwarder({ url: sink.url, secret, maxQueued: 10, spool });
    expect(forwarder.hasRoom()).toBe(true);
    for (let seq = 0; seq < 3; seq++) await forwarder.accept(await event("step_m", "in_progress", seq));
    await within(forwarder.idle());
    expect(seqsOf("step_m")).toEqual([0, 1, 2]);
    expect(reads).toEqual([]);
    expect(forwarder.stats).toEqual(stats({ accepted: 3, acknowledged: 3 }));
  });

  it("with a spool, what does not fit in memory waits on disk and is read back in order, never more than fits", async () => {
    const dir = spoolDir();
    const inner = await openFileSpool(dir);
    const reads: number[] = [];
    // The first read back is slow: events accepted meanwhile, with room in memory again, must still
    // queue behind what waits on disk.
    let slow = true;
    const spool = overSpool(inner, {
      read: async (from, max) => {
        reads.push(max);
        const result = await inner.read(from, max);
        if (slow) await sleep(80);
        slow = false;
        return result;
      },
    });
    // The first answer comes late, so the first 6 events certainly overflow memory.
    sink.script({ status: 200, delayMs: 100 });
    sink.fallback = { status: 200, delayMs: 5 };
    const forwarder = await createForwarder({ url: sink.url, secret, maxQueued: 2, concurrency: 1, spool });
    const events = await Promise.all(
      [...Array(10).keys()].map((seq) => event(`step_s${seq % 2}`, "in_progress", seq)),
    );
    for (const e of events.slice(0, 6)) {
      await forwarder.accept(e);
      expect(forwarder.hasRoom()).toBe(true);
    }
    await eventually(async () => (reads.length > 0 ? true : undefined), 2000, 1);
    for (const e of events.slice(6)) await forwarder.accept(e);
    expect(forwarder.stats.accepted).toBe(10);
    await within(forwarder.idle(), 2000);
    expect(sink.received).toHaveLength(10);
    expect(seqsOf("step_s0")).toEqual([0, 2, 4, 6, 8]);
    expect(seqsOf("step_s1")).toEqual([1, 3, 5, 7, 9]);
    expect(reads.length).toBeGreaterThan(0);
    for (const max of reads) {
      expect(max).toBeGreaterThanOrEqual(1);
      expect(max).toBeLessThanOrEqual(2);
    }
    expect(forwarder.stats).toEqual(stats({ accepted: 10, acknowledged: 10 }));
    expect(readFileSync(join(dir, "spool.jsonl"), "utf8")).toBe("");
    await expect(openFileSpool(dir)).rejects.toBeInstanceOf(SpoolLockedError);
    await within(forwarder.close());
    // Closed: the lock is released. A second close() leaves alone the spool another relay now holds.
    const next = await openFileSpool(dir);
    await within(forwarder.close());
    await expect(openFileSpool(dir)).rejects.toBeInstanceOf(SpoolLockedError);
    await next.close();
  });

  it("with a spool, memory still holds at most maxQueued events: one in flight at a time with maxQueued 1", async () => {
    sink.fallback = { status: 200, delayMs: 10 };
    const forwarder = await createForwarder({
      url: sink.url,
      secret,
      maxQueued: 1,
      concurrency: 4,
      spool: await openFileSpool(spoolDir()),
    });
    const steps = await Promise.all([0, 1, 2, 3].map((s) => event(`step_q${s}`, "completed")));
    await Promise.all(steps.map((e) => forwarder.accept(e)));
    await within(forwarder.idle());
    expect(sink.received).toHaveLength(4);
    expect(sink.maxInFlight).toBe(1);
  });

  it("sends what a previous run left in the spool first, in order", async () => {
    const dir = spoolDir();
    const before = await openFileSpool(dir);
    const left = [await event("step_p", "in_progress", 0), await event("step_p", "in_progress", 1)];
    left.push(await event("step_q", "completed", 2));
    for (const e of left) await before.append(e);
    await before.close();
    sink.fallback = { status: 200, delayMs: 5 };
    const forwarder = await createForwarder({
      url: sink.url,
      secret,
      concurrency: 1,
      spool: await openFileSpool(dir),
    });
    await forwarder.accept(await event("step_p", "completed", 3));
    await within(forwarder.idle());
    expect(sink.received.slice(0, 3).map((r) => r.headers["webhook-id"])).toEqual(
      expect.arrayContaining(left.map((e) => e.id)),
    );
    expect(seqsOf("step_p")).toEqual([0, 1, 3]);
    expect(seqsOf("step_q")).toEqual([2]);
    expect(forwarder.stats).toEqual(stats({ accepted: 1, acknowledged: 4 }));
  });

  it("keeps in the spool whatever it did not deliver: after close(), a refusal of everything, giving up", async () => {
    const stops: Array<[string, Partial<ForwarderOptions>, (f: Forwarder) => Promise<unknown>]> = [
      ["close", { initialDelayMs: 1000 }, async () => sink.waitFor(1, 1000)],
      ["401", {}, (f) => rejectionOf(f.idle())],
      ["give up", { giveUpAfterMs: 0 }, (f) => rejectionOf(f.idle())],
    ];
    for (const [name, options, stopped] of stops) {
      sink.reset();
      sink.fallback = { status: name === "401" ? 401 : 503 };
      const dir = spoolDir();
      const e = await event(`step_keep_${name.replace(" ", "_")}`, "completed");
      const first = await createForwarder({
        url: sink.url,
        secret,
        spool: await openFileSpool(dir),
        ...options,
      });
      await first.accept(e);
      await stopped(first);
      await within(first.close(), 300);
      sink.fallback = { status: 200 };
      const next = await createForwarder({ url: sink.url, secret, spool: await openFileSpool(dir) });
      await within(next.idle());
      expect(sink.received.map((r) => r.headers["webhook-id"])).toEqual([e.id, e.id]);
      expect(next.stats).toEqual(stats({ acknowledged: 1 }));
    }
  });

  it("close() waits for the attempt in flight: what it delivered is not sent again", async () => {
    const dir = spoolDir();
    sink.fallback = { status: 200, delayMs: 40 };
    const first = await createForwarder({ url: sink.url, secret, spool: await openFileSpool(dir) });
    await first.accept(await event("step_inflight", "completed"));
    await sink.waitFor(1, 1000);
    await within(first.close());
    expect(first.stats).toEqual(stats({ accepted: 1, acknowledged: 1 }));
    const next = await createForwarder({ url: sink.url, secret, spool: await openFileSpool(dir) });
    await within(next.idle());
    expect(sink.received).toHaveLength(1);
  });

  it("idle() waits for an event still being written to the spool, and for one accepted while it waits", async () => {
    const forwarder = await createForwarder({
      url: sink.url,
      secret,
      spool: await openFileSpool(spoolDir()),
    });
    const writing = forwarder.accept(await event("step_i1", "completed"));
    await within(forwarder.idle());
    expect(forwarder.stats.acknowledged).toBe(1);
    await writing;
    const i2 = await event("step_i2", "completed");
    // Nothing is pending when idle() is called; the accept comes while it clears the spool.
    const waiting = forwarder.idle();
    const accepting = forwarder.accept(i2);
    await within(waiting);
    expect(forwarder.stats.acknowledged).toBe(2);
    await accepting;
  });

  it("events accepted while the spool is being cleared are kept and sent, spilled ones included", async () => {
    const inner = await openFileSpool(spoolDir());
    let duringClear: (() => void) | null = null;
    const spool = overSpool(inner, {
      clear: () => {
        const clearing = inner.clear();
        const hook = duringClear;
        duringClear = null;
        if (hook) void Promise.resolve().then(hook);
        return clearing;
      },
    });
    const forwarder = await createForwarder({ url: sink.url, secret, maxQueued: 1, concurrency: 1, spool });
    const later = await Promise.all([1, 2, 3, 4].map((seq) => event("step_r", "in_progress", seq)));
    const accepting: Array<Promise<void>> = [];
    duringClear = () => {
      for (const e of later) accepting.push(forwarder.accept(e));
    };
    await forwarder.accept(await event("step_r", "in_progress", 0));
    await eventually(async () => (accepting.length > 0 ? true : undefined), 1000, 5);
    await within(Promise.all(accepting));
    await within(forwarder.idle());
    expect(seqsOf("step_r")).toEqual([0, 1, 2, 3, 4]);
    expect(forwarder.stats).toEqual(stats({ accepted: 5, acknowledged: 5 }));
  });

  it("stops when the spool cannot be read, or idle() when it cannot be cleared", async () => {
    const dir = spoolDir();
    const before = await openFileSpool(dir);
    await before.append(await event("step_disk", "completed"));
    await before.close();
    const inner = await openFileSpool(dir);
    const broken = overSpool(inner, { read: () => Promise.reject(new Error("disk gone")) });
    const forwarder = await createForwarder({ url: sink.url, secret, spool: broken });
    const error = await rejectionOf(forwarder.idle());
    expect(error).toBeInstanceOf(RelayFailedError);
    expect(error.message).toBe("the spool could not be read: disk gone");
    expect(forwarder.hasRoom()).toBe(false);
    await expect(forwarder.accept(await event("step_disk2", "completed"))).rejects.toBe(error);
    expect(sink.received).toHaveLength(0);

    const stuck = await openFileSpool(spoolDir());
    const unclearable = overSpool(stuck, { clear: () => Promise.reject(new Error("cannot truncate")) });
    const other = await createForwarder({ url: sink.url, secret, spool: unclearable });
    await other.accept(await event("step_disk3", "completed"));
    expect((await rejectionOf(other.idle())).message).toBe("cannot truncate");
  });

  it("retries network errors until the target answers", async () => {
    const late = await startSinkServer();
    const port = late.port;
    await late.close();
    const forwarder = await createForwarder({
      url: `http://127.0.0.1:${port}`,
      secret,
      initialDelayMs: 20,
      maxDelayMs: 40,
    });
    await forwarder.accept(await event("step_net", "completed"));
    await eventually(async () => (forwarder.stats.retries >= 2 ? true : undefined), 5000, 10);
    const back = await startSinkServer(port);
    try {
      await within(forwarder.idle());
      expect(back.received).toHaveLength(1);
    } finally {
      await forwarder.close();
      await back.close();
    }
  });
});
