import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { buildDist } from "../scripts/build.js";
import { createWebhookSigner } from "../src/domain/webhook-signer.js";
import { makeStep } from "./support/run-steps.js";
import {
  childEnv,
  runTs,
  type ServerProcess,
  type ServerProcessOptions,
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
const start = async (env: Record<string, string>, options?: ServerProcessOptions) => {
  const server = await startServerProcess(env, options);
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
    OPENAI_WEBHOOK_SECRET: string;
  };

describe("npm start on a fresh clone (no configuration)", () => {
  it("serves, prints a whsec_ secret and a sample command that works, persists across restarts, drains on SIGTERM", async () => {
    const dataDir = tempDir();
    // A data directory others may read: made this user's alone at start-up.
    chmodSync(dataDir, 0o755);
    const first = await start({ STEPWATCH_DATA_DIR: dataDir });
    expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const modeOf = (path: string) => statSync(join(dataDir, path)).mode & 0o777;
    expect([modeOf("."), modeOf("dynamodb")]).toEqual([0o700, 0o700]);
    expect([modeOf("dynamodb-credentials.json"), modeOf("local-secrets.json")]).toEqual([0o600, 0o600]);
    const banner = first.stderr();
    const secret = /\bWEBHOOK_SECRET=(whsec_\S+)/.exec(banner)?.[1];
    expect(secret).toBe(secretsOf(dataDir).WEBHOOK_SECRET);
    // OpenAI's endpoint gets its own secret (never WEBHOOK_SECRET), and the banner says what it is for.
    const openAiSecret =
      /\n {2}OPENAI_WEBHOOK_SECRET=(whsec_\S+) {3}\(verifies POST \/v1\/webhooks\/openai; /.exec(banner)?.[1];
    expect(openAiSecret).toBe(secretsOf(dataDir).OPENAI_WEBHOOK_SECRET);
    expect(openAiSecret).not.toBe(secret);
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
    // stdout is the JSON log stream alone; the banner and console notifications are human lines on
    // stderr, none of which a log shipper could take for a record.
    const records = first.stdout().split("\n").filter(Boolean);
    expect(records.length).toBeGreaterThan(3);
    for (const line of records) {
      expect(JSON.parse(line)).toMatchObject({ time: expect.any(String), level: expect.any(String) });
    }
    expect(records.some((line) => line.includes('"route":"/v1/webhooks/run-steps"'))).toBe(true);
    expect(first.stderr()).toContain("[notify] run_step.completed step=step_sample_1");
    expect(
      first
        .stderr()
        .split("\n")
        .filter((line) => line.trimStart().startsWith("{")),
    ).toEqual([]);

    const second = await start({ STEPWATCH_DATA_DIR: dataDir });
    expect(/\bWEBHOOK_SECRET=(whsec_\S+)/.exec(second.stderr())?.[1]).toBe(secret);
    expect(second.stderr()).toContain(`OPENAI_WEBHOOK_SECRET=${openAiSecret} `);
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
    await server.waitForOutput('"msg":"shutdown: draining","signal":"SIGTERM"');
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

/** A signed ingest request whose body is held back after its first bytes until `finish()`. */
async function arriving(url: string, secret: string, step: Record<string, unknown>) {
  const body = JSON.stringify(step);
  const headers = await (await createWebhookSigner(secret)).sign(
    `msg_${String(step.id)}`,
    Date.now() / 1000,
    body,
  );
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
  });
  const response = fetch(`${url}/v1/webhooks/run-steps`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: stream,
    duplex: "half",
  } as RequestInit);
  controller?.enqueue(new TextEncoder().encode(body.slice(0, 50)));
  return {
    response,
    finish() {
      controller?.enqueue(new TextEncoder().encode(body.slice(50)));
      controller?.close();
    },
  };
}

async function post(url: string, secret: string, step: Record<string, unknown>) {
  const body = JSON.stringify(step);
  const headers = await (await createWebhookSigner(secret)).sign(
    `msg_${String(step.id)}`,
    Date.now() / 1000,
    body,
  );
  return fetch(`${url}/v1/webhooks/run-steps`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
}

const refused = (url: string) =>
  fetch(`${url}/healthz`).then(
    () => false,
    () => true,
  );

const sinkSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

describe("shutdown however it is signalled", () => {
  // dist/ as `npm run build` writes it, for the cases run as production runs them: built once before
  // every file by `npm test` (test/support/early-tool-checks.ts), or here when this file runs alone.
  beforeAll(async () => {
    if (!inject("distBuilt")) await buildDist();
  }, 60_000);

  it("npm start, SIGTERM to the process group: answers every request received, finishes the attempt in flight, stops the store, exits 0; a second instance on the same .data is refused", async () => {
    const dataDir = tempDir();
    const sink = await startSinkServer();
    sink.fallback = { status: 200, delayMs: 1_500 };
    try {
      const server = await start(
        {
          STEPWATCH_DATA_DIR: dataDir,
          NOTIFY_SINKS: JSON.stringify([
            { name: "hook", type: "webhook", url: sink.url, secret: sinkSecret },
          ]),
        },
        { command: "npm", detached: true },
      );
      expect(server.url).not.toBe("");
      const pid = Number(readFileSync(join(dataDir, "stepwatch.pid"), "utf8"));
      expect(pid).not.toBe(server.child.pid);

      // The same .data, while this one runs: one line saying so, and the running one unharmed.
      const second = await start({ STEPWATCH_DATA_DIR: dataDir });
      expect(await second.exited()).toBe(1);
      expect(second.stderr().trim().split("\n")).toEqual([
        `stepwatch could not start: ${dataDir} is in use by another stepwatch (pid ${pid}): stop that one, ` +
          `or set STEPWATCH_DATA_DIR to another directory (if no stepwatch runs, delete ${join(dataDir, "stepwatch.pid")})`,
      ]);

      const { WEBHOOK_SECRET } = secretsOf(dataDir);
      expect(
        (await post(server.url, WEBHOOK_SECRET, makeStep({ id: "step_grp_done", status: "completed" })))
          .status,
      ).toBe(200);
      await eventually(async () => (sink.inFlight === 1 ? true : undefined));
      const held = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          arriving(server.url, WEBHOOK_SECRET, makeStep({ id: `step_grp_${i}`, status: "in_progress" })),
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      process.kill(-(server.child.pid ?? 0), "SIGTERM");
      await server.waitForOutput('"msg":"shutdown: draining"');
      await server.waitForOutput('"msg":"shutdown: no longer accepting connections","requests_in_flight":20');
      for (const request of held) request.finish();
      const answers = await Promise.all(held.map(async (r) => (await r.response).json()));
      expect(answers.map((a) => (a as { outcome: string }).outcome)).toEqual(Array(20).fill("created"));
      expect(await server.exited()).toBe(0);
      const out = server.stdout();
      const steps = [
        "shutdown: draining",
        "shutdown: no longer accepting connections",
        "shutdown: every request received was answered",
        "shutdown: notification attempts finished",
        "shutdown: embedded store stopped",
        "shutdown: complete",
      ].map((msg) => out.indexOf(`"msg":"${msg}"`));
      expect(steps.every((at, i) => at > (steps[i - 1] ?? -1))).toBe(true);
      expect(out).toContain('"attempts_waited_for":1');
      // Answered after the signal, the attempt counts as delivered, not owed.
      expect(sink.received).toHaveLength(1);
      expect(out).toMatch(/"msg":"delivery attempt".*"outcome":"delivered"/);
      expect(await refused(server.url)).toBe(true);
      expect(existsSync(join(dataDir, "stepwatch.pid"))).toBe(false);
    } finally {
      await sink.close();
    }
  });

  it("npm start and node dist/, SIGTERM or SIGINT to the main process alone or to the group: each drains and exits 0, leaving no server behind", async () => {
    const cases = [
      { command: "npm", signal: "SIGTERM", group: false },
      { command: "npm", signal: "SIGINT", group: true },
      { command: "dist", signal: "SIGTERM", group: false },
      { command: "dist", signal: "SIGINT", group: true },
    ] as const;
    const results = await Promise.all(
      cases.map(async ({ command, signal, group }) => {
        const server = await start({ STEPWATCH_DATA_DIR: tempDir() }, { command, detached: true });
        // The console's files are found from the repository and from dist/ alike.
        const consolePage = (await fetch(`${server.url}/console/`)).status;
        const pid = server.child.pid ?? 0;
        process.kill(group ? -pid : pid, signal);
        const code = await server.exited();
        const out = server.stdout();
        return {
          command,
          signal,
          group,
          code,
          consolePage,
          drained: out.includes(`"msg":"shutdown: draining","signal":"${signal}"`),
          complete: out.includes('"msg":"shutdown: complete"'),
          gone: await refused(server.url),
        };
      }),
    );
    expect(results).toEqual(
      cases.map((c) => ({ ...c, code: 0, consolePage: 200, drained: true, complete: true, gone: true })),
    );
  });

  it("a second signal while an attempt hangs exits at once, non-zero, saying how many notifications a sweep will re-send", async () => {
    const dataDir = tempDir();
    const sink = await startSinkServer();
    sink.fallback = { status: 200, hang: true };
    try {
      const server = await start(
        {
          STEPWATCH_DATA_DIR: dataDir,
          NOTIFY_SINKS: JSON.stringify([
            { name: "hook", type: "webhook", url: sink.url, secret: sinkSecret },
          ]),
        },
        { command: "dist" },
      );
      const { WEBHOOK_SECRET } = secretsOf(dataDir);
      expect(
        (await post(server.url, WEBHOOK_SECRET, makeStep({ id: "step_hang", status: "failed" }))).status,
      ).toBe(200);
      await eventually(async () => (sink.inFlight === 1 ? true : undefined));
      server.child.kill("SIGTERM");
      await server.waitForOutput('"msg":"shutdown: every request received was answered"');
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect(server.stdout()).not.toContain('"msg":"shutdown: notification attempts finished"');
      expect(server.child.exitCode).toBeNull();
      const second = Date.now();
      server.child.kill("SIGTERM");
      expect(await server.exited()).toBe(143);
      expect(Date.now() - second).toBeLessThan(1_000);
      expect(server.stdout()).toMatch(
        /"msg":"shutdown: second signal, exiting without waiting","signal":"SIGTERM","notifications_to_resend":1/,
      );
    } finally {
      await sink.close();
    }
  });
});

describe("start-up problems, one line each, naming the fix", () => {
  it("a corrupt store, a broken secrets file, a remote store without secrets, region or credentials, an unreachable store", async () => {
    const corrupt = tempDir();
    mkdirSync(join(corrupt, "dynamodb"));
    writeFileSync(join(corrupt, "dynamodb", "CURRENT"), "MANIFEST-000009\n");
    const broken = tempDir();
    writeFileSync(join(broken, "local-secrets.json"), '{"WEBHOOK_SECRET": "whsec_');
    const remote = tempDir();
    const probe = await startSinkServer();
    const closedPort = probe.port;
    await probe.close();
    const aws = { AWS_REGION: "local", AWS_ACCESS_KEY_ID: "local", AWS_SECRET_ACCESS_KEY: "local" };
    const [a, b, c, d] = await Promise.all([
      start({ STEPWATCH_DATA_DIR: corrupt }),
      start({ STEPWATCH_DATA_DIR: broken }),
      // No IMDS look-up on this machine: the credential chain ends at once.
      start({
        STEPWATCH_DATA_DIR: remote,
        DYNAMODB_ENDPOINT: `http://127.0.0.1:${closedPort}`,
        AWS_EC2_METADATA_DISABLED: "true",
      }),
      start({
        STEPWATCH_DATA_DIR: remote,
        DYNAMODB_ENDPOINT: `http://127.0.0.1:${closedPort}`,
        WEBHOOK_SECRET: sinkSecret,
        API_TOKEN: "a-token-of-twenty-chars",
        ...aws,
      }),
    ]);
    const lines = async (server: ServerProcess | undefined) => {
      expect(await server?.exited()).toBe(1);
      expect(server?.stdout()).not.toMatch(/whsec_|swt_/);
      // The AWS SDK's notice about Node 20 (README, Decisions) is its own, and not a start-up problem.
      const notice =
        /\(node:\d+\) Warning: NodeVersionSupportWarning[\s\S]*?show where the warning was created\)\n/;
      return server?.stderr().replace(notice, "").trim().split("\n");
    };
    expect(await lines(a)).toEqual([
      `stepwatch could not start: ${join(corrupt, "dynamodb")} is corrupt or unreadable: move it away or delete it (the embedded store starts empty)`,
    ]);
    expect(await lines(b)).toEqual([
      `stepwatch could not start: ${join(broken, "local-secrets.json")} is not a JSON object of WEBHOOK_SECRET, API_TOKEN and OPENAI_WEBHOOK_SECRET: fix it, or delete it to generate new ones (senders and API clients then need the new ones), or set the three variables`,
    ]);
    expect(await lines(c)).toEqual([
      "Invalid configuration: WEBHOOK_SECRET is required: one or more whsec_ secrets or whpk_ public keys",
      "Invalid configuration: API_TOKEN is required with DYNAMODB_ENDPOINT set (tokens are generated only for the embedded local store): set one or more tokens of 16 or more characters",
      "Invalid configuration: AWS_REGION is not set: set it to the region of the table (any name, e.g. local, for a DynamoDB-compatible server such as dynalite)",
      "Invalid configuration: No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any values for a local DynamoDB-compatible server), or AWS_PROFILE, or run with an IAM role",
    ]);
    // Nothing was generated for a store that is not the embedded one.
    expect(existsSync(join(remote, "local-secrets.json"))).toBe(false);
    expect(await lines(d)).toEqual([
      "stepwatch could not start: Could not reach the store at DYNAMODB_ENDPOINT (ECONNREFUSED): check the URL and that the store is running and reachable from here",
    ]);
  });
});
