import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { openFileSpool, SpoolLockedError } from "../src/relay/file-spool.js";
import {
  createForwarder as createForwarderOf,
  type Forwarder,
  type RefusedEvent,
} from "../src/relay/forwarder.js";
import { type RelayEvent, runStepEventOf } from "../src/relay/run-step-events.js";
import { makeStep } from "./support/run-steps.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";

// A per-test bound well above what each test takes (the slowest waits out a 1 s Retry-After): a
// forwarder that never settles fails its test rather than holding the file for the default 30 s.
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

  const event = async (stepId: string, status: string, seq = 0): Promise<RelayEvent> =>
    (await runStepEventOf(
      `thread.run.step.${status}`,
      makeStep({ id: stepId, status, created_at: 1_764_000_000 + seq }),
    )) as RelayEvent;
  const bodies = () =>
    sink.received.map(
      (r) => JSON.parse(r.body) as { event: string; data: { id: string; created_at: number } },
    );

  it("signs each event (verified by standardwebhooks) with a webhook-id kept across retries; honours Retry-After", async () => {
    sink.scriptStatuses(503);
    sink.script({ status: 429, headers: { "retry-after": "1" } }, { status: 500 });
    const retries: string[] = [];
    const forwarder = await createForwarder({
      url: `${sink.url}/`,
      secret,
      initialDelayMs: 10,
      maxDelayMs: 2000,
      random: () => 0,
      onRetry: (_e, error) => retries.push(error),
    });
    const e = await event("step_sig", "completed");
    const started = Date.now();
    await forwarder.accept(e);
    await forwarder.idle();
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(retries.map((r) => r.slice(0, 8))).toEqual(["HTTP 503", "HTTP 429", "HTTP 500"]);
    expect(sink.received).toHaveLength(4);
    const verifier = new Webhook(secret);
    for (const r of sink.received) {
      expect(r.path).toBe("/v1/webhooks/run-steps");
      expect(r.headers["webhook-id"]).toBe(e.id);
      expect(r.headers["content-type"]).toBe("application/json");
      expect(verifier.verify(r.body, r.headers as Record<string, string>)).toEqual(JSON.parse(e.body));
    }
    expect(forwarder.stats).toMatchObject({ accepted: 1, acknowledged: 1, retries: 3, refused: 0 });
    await forwarder.close();
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
    await forwarder.idle();
    expect(sink.received).toHaveLength(24);
    expect(sink.maxInFlight).toBe(3);
    for (let s = 0; s < 6; s++) {
      const mine = bodies().filter((b) => b.data.id === `step_o${s}`);
      expect(mine.map((b) => b.data.created_at - 1_764_000_000)).toEqual([0, 1, 2, 3]);
    }
    await forwarder.close();
  });

  it("reports a 4xx refusal without retrying it, and goes on with the next events", async () => {
    sink.respond = (r) =>
      r.body.includes("step_bad") ? { status: 422, body: '{"error":{"code":"invalid_payload"}}' } : undefined;
    const refused: RefusedEvent[] = [];
    const forwarder = await createForwarder({ url: sink.url, secret, onRefused: (r) => refused.push(r) });
    await forwarder.accept(await event("step_bad", "completed"));
    await forwarder.accept(await event("step_good", "completed"));
    await forwarder.idle();
    expect(sink.received).toHaveLength(2);
    expect(refused).toEqual([
      expect.objectContaining({
        stepId: "step_bad",
        status: 422,
        error: expect.stringContaining("invalid_payload"),
      }),
    ]);
    expect(forwarder.stats).toMatchObject({ acknowledged: 1, refused: 1, retries: 0 });
    await forwarder.close();
  });

  it("stops at a 401 (wrong secret): idle and accept reject with one reason", async () => {
    sink.fallback = { status: 401, body: "{}" };
    const forwarder = await createForwarder({ url: sink.url, secret });
    await forwarder.accept(await event("step_401", "completed"));
    await expect(forwarder.idle()).rejects.toThrow(/HTTP 401.*check the URL and the secret/);
    await expect(forwarder.accept(await event("step_401b", "completed"))).rejects.toThrow(/HTTP 401/);
    expect(sink.received).toHaveLength(1);
    await forwarder.close();
  });

  it("without a spool, accepting waits while memory is full (backpressure, bounded memory)", async () => {
    sink.fallback = { status: 200, delayMs: 40 };
    const forwarder = await createForwarder({ url: sink.url, secret, maxQueued: 2, concurrency: 1 });
    await forwarder.accept(await event("step_b1", "completed"));
    await forwarder.accept(await event("step_b2", "completed"));
    expect(forwarder.hasRoom()).toBe(false);
    let third = false;
    const accepting = forwarder.accept(await event("step_b3", "completed")).then(() => {
      third = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 15));
    expect(third).toBe(false);
    await accepting;
    expect(sink.received.length).toBeGreaterThanOrEqual(1);
    await forwarder.idle();
    expect(forwarder.stats.acknowledged).toBe(3);
    await forwarder.close();
  });

  it("with a spool, what does not fit in memory waits on disk and is sent in order; the spool empties", async () => {
    const dir = mkdtempSync(join(tmpdir(), "relay-spill-"));
    dirs.push(dir);
    sink.fallback = { status: 200, delayMs: 5 };
    const forwarder = await createForwarder({
      url: sink.url,
      secret,
      maxQueued: 3,
      concurrency: 2,
      spool: await openFileSpool(dir),
    });
    for (let seq = 0; seq < 10; seq++) {
      await forwarder.accept(await event(`step_s${seq % 2}`, "in_progress", seq));
    }
    expect(forwarder.stats.accepted).toBe(10);
    await forwarder.idle();
    expect(sink.received).toHaveLength(10);
    for (const id of ["step_s0", "step_s1"]) {
      const seqs = bodies()
        .filter((b) => b.data.id === id)
        .map((b) => b.data.created_at - 1_764_000_000);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(seqs).toHaveLength(5);
    }
    expect(readFileSync(join(dir, "spool.jsonl"), "utf8")).toBe("");
    await expect(openFileSpool(dir)).rejects.toBeInstanceOf(SpoolLockedError);
    await forwarder.close();
    // Closed: the lock is released.
    await (await openFileSpool(dir)).close();
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
      await forwarder.idle();
      expect(back.received).toHaveLength(1);
    } finally {
      await forwarder.close();
      await back.close();
    }
  });
});
