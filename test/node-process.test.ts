import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createWebhookSigner } from "../src/domain/webhook-signer.js";
import { makeStep } from "./support/run-steps.js";
import {
  childEnv,
  runTs,
  type ServerProcess,
  startServerProcess,
  stopProcess,
} from "./support/server-process.js";
import { eventually, startSinkServer } from "./support/sink-server.js";

const dirs: string[] = [];
const children: ServerProcess[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "stepwatch-"));
  dirs.push(dir);
  return dir;
};
const start = async (env: Record<string, string>) => {
  const server = await startServerProcess(env);
  children.push(server);
  return server;
};

afterAll(async () => {
  await Promise.all(children.map((c) => stopProcess(c.child)));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const secretsOf = (dir: string) =>
  JSON.parse(readFileSync(join(dir, "local-secrets.json"), "utf8")) as {
    WEBHOOK_SECRET: string;
    API_TOKEN: string;
  };

describe("npm start on a fresh clone (no configuration)", () => {
  it("serves, prints a whsec_ secret and a sample command that works, persists across restarts, drains on SIGTERM", async () => {
    const dataDir = tempDir();
    const first = await start({ STEPWATCH_DATA_DIR: dataDir });
    expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const banner = first.stdout();
    const secret = /WEBHOOK_SECRET=(whsec_\S+)/.exec(banner)?.[1];
    expect(secret).toBe(secretsOf(dataDir).WEBHOOK_SECRET);
    expect(banner).toContain(`npm run send-sample -- --url ${first.url} --status completed`);
    expect(await (await fetch(`${first.url}/healthz`)).json()).toEqual({ status: "ok" });
    expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
    // The operator console, read from public/console next to the server's modules.
    expect(banner).toContain(`  ${first.url}/console/#/runs/run_sample_1`);
    const page = await fetch(`${first.url}/console/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module" src="/console/console.js"></script>');

    // The banner's sample command, run as npm would run it.
    const sender = runTs(
      "scripts/send-sample.ts",
      ["--url", first.url, "--status", "completed"],
      childEnv({ STEPWATCH_DATA_DIR: dataDir }),
    );
    let sent = "";
    sender.stdout?.on("data", (chunk: Buffer) => {
      sent += chunk.toString();
    });
    expect(await new Promise((resolve) => sender.once("exit", resolve))).toBe(0);
    expect(sent).toContain('200 {"step_id":"step_sample_1","status":"completed","outcome":"created"}');
    await first.waitForOutput("[notify] run_step.completed step=step_sample_1");

    first.child.kill("SIGTERM");
    expect(await first.exited()).toBe(0);

    const second = await start({ STEPWATCH_DATA_DIR: dataDir });
    expect(/WEBHOOK_SECRET=(whsec_\S+)/.exec(second.stdout())?.[1]).toBe(secret);
    const token = secretsOf(dataDir).API_TOKEN;
    const stored = await fetch(`${second.url}/v1/run-steps/step_sample_1`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(stored.status).toBe(200);
    expect(await stored.json()).toMatchObject({
      id: "step_sample_1",
      status: "completed",
      deliveries: [{ sink: "console", state: "delivered" }],
    });
    await stopProcess(second.child);
  });

  it("stops at once with one line naming a bad variable, and no stack trace", async () => {
    const server = await start({ STEPWATCH_DATA_DIR: tempDir(), SIGNATURE_TOLERANCE_S: "soon" });
    expect(await server.exited()).toBe(1);
    expect(server.stderr().trim().split("\n")).toEqual([
      "Invalid configuration: SIGNATURE_TOLERANCE_S must be a whole number from 1 to 86400",
    ]);
  });
});

describe("shutdown", () => {
  it("SIGTERM lets a request that is still arriving finish before the process exits", async () => {
    const dataDir = tempDir();
    const server = await start({ STEPWATCH_DATA_DIR: dataDir });
    const { WEBHOOK_SECRET } = secretsOf(dataDir);
    const body = JSON.stringify(makeStep({ id: "step_draining" }));
    const headers = await (await createWebhookSigner(WEBHOOK_SECRET)).sign(
      "msg_drain",
      Date.now() / 1000,
      body,
    );
    let push: (chunk: string | null) => void = () => undefined;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        push = (chunk) =>
          chunk === null ? controller.close() : controller.enqueue(new TextEncoder().encode(chunk));
      },
    });
    const pending = fetch(`${server.url}/v1/webhooks/run-steps`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: stream,
      duplex: "half",
    } as RequestInit);
    push(body.slice(0, 100));
    await new Promise((resolve) => setTimeout(resolve, 300));
    server.child.kill("SIGTERM");
    await server.waitForOutput("SIGTERM: draining");
    push(body.slice(100));
    push(null);
    const response = await pending;
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ step_id: "step_draining", outcome: "created" });
    expect(await server.exited()).toBe(0);
  });
});

describe("durability through a real process", () => {
  it("a notification owed when the process is SIGKILLed is delivered after a restart", async () => {
    const dataDir = tempDir();
    // Reserve a port for the sink, then leave it closed: the sink is down.
    const probe = await startSinkServer();
    const sinkPort = probe.port;
    await probe.close();
    const sinkSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const env = {
      STEPWATCH_DATA_DIR: dataDir,
      NOTIFY_SINKS: JSON.stringify([
        { name: "hook", type: "webhook", url: `http://127.0.0.1:${sinkPort}/`, secret: sinkSecret },
      ]),
      NOTIFY_RETRY_SCHEDULE: "1,1,1,1,1",
      NOTIFY_TIMEOUT_MS: "500",
      SWEEP_INTERVAL_S: "0.2",
    };
    const first = await start(env);
    const { WEBHOOK_SECRET, API_TOKEN } = secretsOf(dataDir);
    const body = JSON.stringify(makeStep({ id: "step_durable", status: "failed" }));
    const headers = await (await createWebhookSigner(WEBHOOK_SECRET)).sign(
      "msg_durable",
      Date.now() / 1000,
      body,
    );
    const response = await fetch(`${first.url}/v1/webhooks/run-steps`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });
    expect(await response.json()).toMatchObject({ outcome: "created" });
    const auth = { authorization: `Bearer ${API_TOKEN}` };
    const owed = await eventually(async () => {
      const step = (await (
        await fetch(`${first.url}/v1/run-steps/step_durable`, { headers: auth })
      ).json()) as {
        deliveries: Array<{ state: string; attempts: number; last_error: string | null }>;
      };
      const d = step.deliveries[0];
      return d && d.attempts >= 1 ? d : undefined;
    });
    expect(owed).toMatchObject({ state: "pending", last_error: "network error (ECONNREFUSED)" });

    first.child.kill("SIGKILL");
    await first.exited();

    const sink = await startSinkServer(sinkPort);
    try {
      const second = await start(env);
      const [delivery] = await sink.waitFor(1, 20_000);
      expect(JSON.parse(delivery?.body ?? "{}")).toMatchObject({
        type: "run_step.failed",
        data: { id: "step_durable" },
      });
      expect(delivery?.headers["webhook-id"]).toBe("msg_step_durable_failed_hook");
      const done = await eventually(async () => {
        const step = (await (
          await fetch(`${second.url}/v1/run-steps/step_durable`, { headers: auth })
        ).json()) as {
          deliveries: Array<{ state: string }>;
        };
        return step.deliveries[0]?.state === "delivered" ? step : undefined;
      });
      expect(done.deliveries).toHaveLength(1);
      await stopProcess(second.child);
      expect(sink.received).toHaveLength(1);
    } finally {
      await sink.close();
    }
  });
});
