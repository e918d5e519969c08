import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StandinUsageError, standinBanner, startOpenAiStandin } from "../scripts/openai-standin.js";
import { OPENAI_SAMPLE_TYPES, OPENAI_SAMPLES } from "../scripts/support/openai-samples.js";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { failedResponse, RESPONSES, SESSIONS } from "./fixtures/openai-objects.js";
import type { FakeOpenAi } from "./support/fake-openai.js";
import { type ServedApp, serveApp } from "./support/served-app.js";
import { childEnv, runTs } from "./support/server-process.js";
import { eventually } from "./support/sink-server.js";
import { createTestApp, TEST_TOKEN } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// The newcomer's OpenAI try-out (README, "Connect OpenAI"): `npm run openai-standin` and
// `npm run send-sample -- --openai <type>`, as real processes against a real stepwatch.

const KEY = "sk-standin-test-0123456789";
const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "stepwatch-samples-"));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Runs a script to its end (bounded), with its output. */
async function run(script: string, args: string[], env: Record<string, string> = {}) {
  const child = runTs(script, args, childEnv({ STEPWATCH_DATA_DIR: tempDir(), ...env }));
  const output = collect(child);
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${script} did not exit within 20 s`));
    }, 20_000);
    child.once("exit", (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  return { code, stdout: output.stdout(), stderr: output.stderr() };
}

function collect(child: ChildProcess) {
  let out = "";
  let err = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    err += chunk.toString();
  });
  return { stdout: () => out, stderr: () => err };
}

const withKey = (key = KEY) => ({ headers: { authorization: `Bearer ${key}` } });

describe("the OpenAI stand-in (npm run openai-standin)", () => {
  let standin: FakeOpenAi;
  const logged: string[] = [];
  beforeAll(async () => {
    standin = await startOpenAiStandin({ port: 0, key: KEY, log: (line) => logged.push(line) });
  });
  afterAll(async () => {
    await standin.close();
  });

  it("listens on loopback and refuses every request without its key", async () => {
    expect(standin.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    const path = `${standin.url}/responses/${failedResponse.id}`;
    const refusals = await Promise.all([
      fetch(path),
      fetch(path, withKey("sk-standin-test-wrong-key")),
      fetch(path, { headers: { authorization: KEY } }),
      fetch(`${standin.url}/agents/sessions/${SESSIONS[0]?.session.id}`),
    ]);
    expect(refusals.map((r) => r.status)).toEqual([401, 401, 401, 401]);
    const body = (await refusals[0]?.json()) as { error: { type: string; message: string } };
    expect(body.error.type).toBe("invalid_request_error");
    expect(body.error.message).not.toContain(KEY);
  });

  it("serves with its key the object of every sample event, in the status the event names", async () => {
    const expected: Record<string, string> = {
      "response.completed": "completed",
      "response.failed": "failed",
      "response.incomplete": "incomplete",
      "response.cancelled": "cancelled",
      "agent.session.action_required": "requires_action",
      "agent.session.idle": "idle",
      "agent.session.failed": "failed",
    };
    expect(OPENAI_SAMPLE_TYPES).toEqual(Object.keys(expected));
    for (const type of OPENAI_SAMPLE_TYPES) {
      const sample = OPENAI_SAMPLES[type];
      if (!sample) throw new Error(type);
      const path = sample.kind === "response" ? `/responses/${sample.id}` : `/agents/sessions/${sample.id}`;
      const answer = await fetch(`${standin.url}${path}`, withKey());
      expect([type, answer.status]).toEqual([type, 200]);
      expect(await answer.json()).toMatchObject({ id: sample.id, status: expected[type] });
    }
    // The fixtures themselves, unchanged: every response and a session's items.
    const failed = await fetch(`${standin.url}/responses/${failedResponse.id}`, withKey());
    expect(await failed.json()).toEqual(failedResponse);
    for (const response of RESPONSES) {
      expect((await fetch(`${standin.url}/responses/${response.id}`, withKey())).status).toBe(200);
    }
    const [first] = SESSIONS;
    const items = await fetch(
      `${standin.url}/agents/sessions/${first?.session.id}/items?limit=100`,
      withKey(),
    );
    expect(await items.json()).toMatchObject({ object: "list", data: first?.items, has_more: false });
    expect((await fetch(`${standin.url}/responses/resp_unknown`, withKey())).status).toBe(404);
  });

  it("logs each answer as method, path and status, never the key or the query, and keeps no requests", async () => {
    logged.length = 0;
    await fetch(`${standin.url}/responses/${failedResponse.id}?include=x`, withKey());
    await fetch(`${standin.url}/responses/${failedResponse.id}`);
    await eventually(async () => (logged.length === 2 ? true : undefined), 5_000);
    expect(logged).toEqual([
      `GET /v1/responses/${failedResponse.id} 200`,
      `GET /v1/responses/${failedResponse.id} 401`,
    ]);
    // A long-running stand-in holds nothing per request: its memory stays bounded.
    expect(standin.requests).toEqual([]);
    expect(standin.count(`/v1/responses/${failedResponse.id}`)).toBe(0);
  });

  it("takes only a key a header can carry and a neighbour cannot guess", async () => {
    for (const key of ["short-key", "sk-standin with space", ""]) {
      await expect(startOpenAiStandin({ port: 0, key })).rejects.toThrow(StandinUsageError);
    }
  });

  it("prints how to start stepwatch against it and a send-sample command for every sample", () => {
    const banner = standinBanner("http://127.0.0.1:8789/v1", KEY);
    expect(banner).toContain(`  OPENAI_BASE_URL=http://127.0.0.1:8789/v1 OPENAI_API_KEY=${KEY} npm start`);
    for (const type of OPENAI_SAMPLE_TYPES) {
      expect(banner).toMatch(
        new RegExp(`\\n  npm run send-sample -- --openai ${type.replaceAll(".", "\\.")} `),
      );
    }
  });
});

describe("the sample scripts as processes", () => {
  let store: TestStore;
  let served: ServedApp;
  let standin: FakeOpenAi;
  const openAiSecret = generateWebhookSecret();
  beforeAll(async () => {
    [store, standin] = await Promise.all([startTestStore(), startOpenAiStandin({ port: 0, key: KEY })]);
    const app = await createTestApp(store, {
      OPENAI_WEBHOOK_SECRET: openAiSecret,
      OPENAI_API_KEY: KEY,
      OPENAI_BASE_URL: standin.url,
      NOTIFY_SINKS: "[]",
    });
    served = await serveApp(app);
  });
  afterAll(async () => {
    await Promise.all([served?.close(), standin?.close(), store?.close()]);
  });

  it("openai-standin prints its URL and key, refuses without the key, serves with it, stops on SIGTERM; bad flags exit 2 in one line", async () => {
    const child = runTs("scripts/openai-standin.ts", ["--port", "0", "--key", KEY], childEnv({}));
    const output = collect(child);
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    try {
      const url = await eventually(
        async () =>
          /OPENAI_BASE_URL=(http:\/\/127\.0\.0\.1:\d+\/v1) OPENAI_API_KEY=(\S+) npm start/.exec(
            output.stdout(),
          ) ?? undefined,
        20_000,
      );
      expect(url[2]).toBe(KEY);
      const path = `${url[1]}/responses/${failedResponse.id}`;
      expect((await fetch(path)).status).toBe(401);
      expect(await (await fetch(path, withKey())).json()).toEqual(failedResponse);
      await eventually(async () =>
        output.stdout().includes(`GET /v1/responses/${failedResponse.id} 401`) ? true : undefined,
      );
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);

    const [badFlag, badKey, badPort] = await Promise.all([
      run("scripts/openai-standin.ts", ["--bogus"]),
      run("scripts/openai-standin.ts", ["--key", "short"]),
      run("scripts/openai-standin.ts", ["--port", "70000"]),
    ]);
    expect([badFlag.code, badFlag.stderr]).toEqual([2, "openai-standin: Unknown option '--bogus'\n"]);
    expect([badKey.code, badKey.stderr]).toEqual([
      2,
      "openai-standin: --key must be 16 to 256 visible ASCII characters (no spaces)\n",
    ]);
    expect([badPort.code, badPort.stderr]).toEqual([
      2,
      "openai-standin: --port must be a whole number from 0 to 65535\n",
    ]);
  }, 60_000);

  it("send-sample --openai sends a thin event signed with the local OPENAI_WEBHOOK_SECRET, stepwatch hydrates it from the stand-in", async () => {
    const dataDir = tempDir();
    writeFileSync(
      join(dataDir, "local-secrets.json"),
      JSON.stringify({ OPENAI_WEBHOOK_SECRET: openAiSecret, API_TOKEN: "swt_local_sample_token" }),
      { mode: 0o600 },
    );
    const [sent, wrongSecret, unknown, inherited] = await Promise.all([
      run(
        "scripts/send-sample.ts",
        ["--url", served.url, "--openai", "response.failed", "--event", "evt_sample_failed_1"],
        {
          STEPWATCH_DATA_DIR: dataDir,
        },
      ),
      run("scripts/send-sample.ts", [
        "--url",
        served.url,
        "--openai",
        "response.failed",
        "--secret",
        generateWebhookSecret(),
      ]),
      run("scripts/send-sample.ts", ["--url", served.url, "--openai", "response.bogus"]),
      run("scripts/send-sample.ts", ["--url", served.url, "--openai", "toString"]),
    ]);
    expect(sent.code).toBe(0);
    expect(sent.stdout.split("\n")).toEqual([
      '200 {"event_id":"evt_sample_failed_1","type":"response.failed","outcome":"accepted"}',
      `stepwatch fetches ${failedResponse.id} from OPENAI_BASE_URL after this answer (npm run openai-standin serves it).`,
      "Read the hydrated response, and the run and steps it projects to:",
      `  curl -s -H "Authorization: Bearer swt_local_sample_token" ${served.url}/v1/responses/${failedResponse.id}`,
      `  curl -s -H "Authorization: Bearer swt_local_sample_token" ${served.url}/v1/runs/${failedResponse.id}`,
      `  curl -s -H "Authorization: Bearer swt_local_sample_token" ${served.url}/v1/runs/${failedResponse.id}/steps`,
      "",
    ]);
    const stored = await eventually(async () => {
      const answer = await fetch(`${served.url}/v1/responses/${failedResponse.id}`, withKey(TEST_TOKEN));
      return answer.status === 200 ? ((await answer.json()) as Record<string, unknown>) : undefined;
    }, 15_000);
    expect(stored).toMatchObject({
      id: failedResponse.id,
      status: "failed",
      error: failedResponse.error,
      events: [{ id: "evt_sample_failed_1", type: "response.failed", hydration: "hydrated" }],
    });

    // Signed with another secret: stepwatch refuses it, and the sender says so and fails.
    expect(wrongSecret.code).toBe(1);
    expect(wrongSecret.stdout).toMatch(/^401 /);
    // A value with no sample: one plain line listing what is accepted, no stack trace, exit 2.
    const accepted = `send-sample: --openai must be one of ${OPENAI_SAMPLE_TYPES.join(", ")}\n`;
    expect([unknown.code, unknown.stderr, unknown.stdout]).toEqual([2, accepted, ""]);
    expect([inherited.code, inherited.stderr]).toEqual([2, accepted]);
  }, 60_000);
});
