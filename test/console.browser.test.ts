import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { type ServerType, serve } from "@hono/node-server";
import chromium from "@sparticuz/chromium";
import { type Browser, type BrowserContext, type Page, chromium as playwright } from "playwright-core";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateWebhookSecret } from "../src/domain/webhook-secret.js";
import { consoleRoutes } from "../src/http/routes/console-routes.js";
import { consoleFilesIn } from "../src/runtime/console-files.js";
import { failedResponse, functionCallSession } from "./fixtures/openai-objects.js";
import { deliveryOf, seedDead, sinkOf, stepIdOf, webhookSink } from "./support/deliveries.js";
import { type FakeOpenAi, startFakeOpenAi } from "./support/fake-openai.js";
import { seedQuarantined } from "./support/quarantine.js";
import { makeStep } from "./support/run-steps.js";
import { eventually, type SinkServer, startSinkServer } from "./support/sink-server.js";
import { createTestApp, TEST_TOKEN, type TestApp } from "./support/test-app.js";
import { startTestStore, type TestStore } from "./support/test-store.js";

// The operator console in a real headless Chromium (@sparticuz/chromium's binary, shipped inside its
// npm package), driven by playwright-core against the real app on loopback, a real dynalite and a
// real sink server, with OpenAI's platform webhooks hydrated from the loopback stand-in of its API.
// Screenshots go to test/.screenshots/ (git-ignored).

const SCREENSHOTS = fileURLToPath(new URL("./.screenshots/", import.meta.url));
const RUN_A = "run_console_a";
const RUN_B = "run_console_b";
const ASSISTANT_A = "asst_console_a";
const FAILED_A = "step_console_a2";
const secret = generateWebhookSecret();
const MARKUP = `<img src=x onerror="window.pwned=1"><b>bold</b>`;
const OPENAI_KEY = "sk-test-console-0123456789";
const openAiSecret = generateWebhookSecret();
// A failed response whose error carries markup (shown as text), and a session asking for a function call.
const RESPONSE = {
  ...failedResponse,
  id: "resp_console_failed",
  error: { code: "server_error", message: `The model produced invalid content. ${MARKUP}` },
};
const SESSION = { ...functionCallSession, id: "sess_console_fn" };

let store: TestStore;
let sink: SinkServer;
let openai: FakeOpenAi;
let app: TestApp;
let server: ServerType;
let base: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Console errors and page errors; API error answers the page shows itself are not among them. */
const browserErrors: string[] = [];

const shot = (name: string) => page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
const notice = () => page.locator("#notice");
const heading = () => page.locator("main h2");
// Waits until the page shows the content of this address (main's data-shows, set after each render).
const shows = (hash: string) =>
  page.waitForFunction((h) => document.querySelector("main")?.dataset.shows === h, hash);
const rowOf = (text: string) => page.locator("main tbody tr", { hasText: text });

// One step as a relay would send it, with its notifications settled.
async function sendStep(overrides: Record<string, unknown>) {
  const response = await app.send(makeStep(overrides));
  expect(response.status).toBe(200);
  await app.drain();
}

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const executablePath = chromium.executablePath();
  [store, sink, openai] = await Promise.all([
    startTestStore(),
    startSinkServer(),
    startFakeOpenAi({
      apiKey: OPENAI_KEY,
      responses: [RESPONSE],
      sessions: [{ session: SESSION, items: [] }],
    }),
  ]);
  app = await createTestApp(
    store,
    {
      OPENAI_WEBHOOK_SECRET: openAiSecret,
      OPENAI_API_KEY: OPENAI_KEY,
      OPENAI_BASE_URL: openai.url,
      NOTIFY_SINKS: JSON.stringify([
        webhookSink("hook", `${sink.url}/hook`, secret),
        webhookSink("audit", `${sink.url}/audit`, secret),
      ]),
      NOTIFY_TIMEOUT_MS: "2000",
    },
    { consoleRoutes: consoleRoutes(consoleFilesIn(new URL("../public/console/", import.meta.url))) },
  );
  // The hook refuses the failed step's first notification for good (400): that delivery is dead.
  // So are the failed response's and the session's first ones (their tests come after the bulk
  // retry's empty dead list).
  let refused = false;
  const refuseOnce = new Set([RESPONSE.id, SESSION.id]);
  sink.respond = (request) => {
    const subject = [...refuseOnce].find((id) => request.body.includes(`"id":"${id}"`));
    if (request.path === "/hook" && subject) {
      refuseOnce.delete(subject);
      return { status: 400, body: "response refused by receiver" };
    }
    if (refused || request.path !== "/hook") return undefined;
    try {
      if (stepIdOf(request) !== FAILED_A) return undefined;
    } catch {
      return undefined;
    }
    refused = true;
    return { status: 400, body: "rejected by receiver" };
  };
  const t = 1_764_000_000;
  await sendStep({
    id: "step_console_a1",
    run_id: RUN_A,
    assistant_id: ASSISTANT_A,
    status: "completed",
    created_at: t,
  });
  await sendStep({
    id: FAILED_A,
    run_id: RUN_A,
    assistant_id: ASSISTANT_A,
    status: "failed",
    created_at: t + 10,
  });
  await sendStep({
    id: "step_console_b1",
    run_id: RUN_B,
    assistant_id: "asst_console_b",
    status: "failed",
    // Data is text on the page, never markup.
    last_error: { code: "server_error", message: MARKUP },
    created_at: t + 20,
  });
  await seedDead(app, ["step_console_bulk1", "step_console_bulk2"], "audit", Date.now() - 60_000);
  expect(await deliveryOf(app, FAILED_A, "hook")).toMatchObject({ state: "dead", attempts: 1 });

  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  browser = await playwright.launch({
    executablePath: await executablePath,
    args: [
      ...chromium.args,
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-sync",
    ],
    headless: true,
  });
  context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  page = await context.newPage();
  page.setDefaultTimeout(5_000);
  page.on("pageerror", (error) => browserErrors.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    // Chromium reports every HTTP error answer as a console error; the API's (a refused token, a
    // 404 quarantine, a 400 filter) are shown by the page itself and checked below. Anything else
    // (a missing file, a CSP violation, an exception) fails the test.
    const at = new URL(message.location().url || "about:blank");
    if (message.text().startsWith("Failed to load resource") && at.pathname.startsWith("/v1/")) return;
    browserErrors.push(`console error: ${message.text()} (${message.location().url})`);
  });
});

afterAll(async () => {
  await browser?.close();
  if (server) {
    await new Promise<void>((done) => {
      server.close(() => done());
      if ("closeAllConnections" in server) server.closeAllConnections();
    });
  }
  await app?.drain();
  await Promise.all([store?.close(), sink?.close(), openai?.close()]);
});

describe("operator console in headless Chromium", () => {
  it("is served with a strict policy and asks for the token; a refused token is asked again", async () => {
    const response = await page.goto(`${base}/console`);
    expect(response?.url()).toBe(`${base}/console/`);
    expect(response?.headers()["content-security-policy"]).toContain("script-src 'self'");
    expect(await page.title()).toBe("stepwatch console");
    await expect.poll(() => page.evaluate(() => location.hash)).toBe("#/steps");

    // Typed and submitted with the keyboard alone.
    await page.locator("#token").focus();
    await page.keyboard.type("not-the-token-0123456789");
    await page.keyboard.press("Enter");
    await page.locator("main [role=alert]", { hasText: "invalid bearer token" }).waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

    await page.locator("#token").fill(TEST_TOKEN);
    await page.keyboard.press("Enter");
    await heading().filter({ hasText: "Recent steps" }).waitFor();
    expect(await page.evaluate(() => Object.values(sessionStorage))).toEqual([TEST_TOKEN]);
    expect(await rowOf("step_console_b1").textContent()).toContain(`server_error: ${MARKUP}`);
    expect(await page.locator("main img").count()).toBe(0);
    expect(await page.evaluate(() => "pwned" in window)).toBe(false);
  });

  it("finds the failed step by status and assistant, then opens its run", async () => {
    await page.locator("#f-status").selectOption("failed");
    await page.locator("#f-assistant").fill(ASSISTANT_A);
    await page.getByRole("button", { name: "Apply" }).click();
    await shows(`#/steps?status=failed&assistant_id=${ASSISTANT_A}`);
    expect(await page.locator("main tbody tr").count()).toBe(1);
    await expect.poll(() => rowOf(FAILED_A).textContent()).toContain("server_error: The model crashed");
    await shot("1-steps-filtered");

    await rowOf(FAILED_A).getByRole("link", { name: RUN_A }).click();
    await heading()
      .filter({ hasText: `Run ${RUN_A}` })
      .waitFor();
    expect(await page.locator("dl.facts").textContent()).toContain(
      "2 total: 1 completed, 1 failed, 0 in progress, 0 cancelled, 0 expired",
    );
    expect(await page.locator("dl.facts").textContent()).toContain(ASSISTANT_A);
    const steps = await page.locator("main tbody tr td:nth-child(2)").allTextContents();
    expect(steps).toEqual(["step_console_a1", FAILED_A]);
    await shot("2-run");
  });

  it("shows the step's snapshot and attempt log, and retries its dead delivery until delivered", async () => {
    await page.getByRole("link", { name: FAILED_A }).click();
    await heading()
      .filter({ hasText: `Step ${FAILED_A}` })
      .waitFor();
    const snapshot = JSON.parse((await page.locator("pre.snapshot").textContent()) ?? "") as Record<
      string,
      unknown
    >;
    expect(snapshot).toMatchObject({ id: FAILED_A, run_id: RUN_A, status: "failed" });
    expect(snapshot).not.toHaveProperty("deliveries");
    const hookRow = rowOf(`${FAILED_A}:hook`).first();
    expect(await hookRow.textContent()).toContain("dead");
    expect(
      await page.locator("td.log", { hasText: `Attempt log of ${FAILED_A}:hook` }).textContent(),
    ).toContain("HTTP 400: rejected by receiver");

    const before = sink.received.filter((r) => r.path === "/hook").length;
    await page.getByRole("button", { name: `Retry ${FAILED_A}:hook now` }).click();
    await notice()
      .filter({ hasText: `Retried ${FAILED_A}:hook: delivered after attempt 2.` })
      .waitFor();
    expect(await rowOf(`${FAILED_A}:hook`).first().textContent()).toContain("delivered");
    expect(sink.received.filter((r) => r.path === "/hook").length).toBe(before + 1);
    expect(await deliveryOf(app, FAILED_A, "hook")).toMatchObject({ state: "delivered", attempts: 2 });
    await shot("3-step-retried");

    await page.getByRole("button", { name: `Resend ${FAILED_A}:hook` }).click();
    await notice()
      .filter({ hasText: `Resent ${FAILED_A}:hook: delivered after attempt 3.` })
      .waitFor();
  });

  it("lists dead deliveries and retries a sink's in bulk", async () => {
    await page
      .getByRole("navigation", { name: "Sections" })
      .getByRole("link", { name: "Deliveries" })
      .click();
    await heading().filter({ hasText: "Dead deliveries" }).waitFor();
    await rowOf("step_console_bulk1:audit").waitFor();
    expect(await rowOf("step_console_bulk2:audit").count()).toBe(1);

    await page.locator("#b-sink").selectOption("audit");
    await page.getByRole("button", { name: "Retry dead deliveries" }).click();
    await notice().filter({ hasText: "Queued 2 dead deliveries of audit for retry." }).waitFor();
    await page.locator("main", { hasText: "No deliveries." }).waitFor();

    await page.locator("#d-state").selectOption("pending");
    await page.getByRole("button", { name: "Show" }).click();
    await heading().filter({ hasText: "Pending deliveries" }).waitFor();
    const pending = (await deliveryRows()).filter((d) => d.startsWith("step_console_bulk"));
    expect(pending.sort()).toEqual(["step_console_bulk1:audit", "step_console_bulk2:audit"]);
  });

  it("disables, enables and tests a sink, answering each action", async () => {
    await page.getByRole("link", { name: "Sinks" }).click();
    await heading().filter({ hasText: "Sinks" }).waitFor();
    await page.getByRole("button", { name: "Disable hook" }).click();
    await notice().filter({ hasText: "Sink hook is now disabled." }).waitFor();
    expect(await rowOf("hook").first().textContent()).toContain("disabled");
    expect((await sinkOf(app, "hook")).state).toBe("disabled");
    await shot("4-sink-disabled");

    // With the keyboard: focus the button, press Enter.
    await page.getByRole("button", { name: "Enable hook" }).focus();
    await page.keyboard.press("Enter");
    await notice().filter({ hasText: "Sink hook is now healthy." }).waitFor();
    expect((await sinkOf(app, "hook")).state).toBe("healthy");

    const before = sink.received.length;
    await page.getByRole("button", { name: "Send a test to hook" }).click();
    await notice()
      .filter({ hasText: /Test of hook delivered: HTTP 200 in \d+ ms\./ })
      .waitFor();
    expect(sink.received.length).toBe(before + 1);
  });

  it("shows the API's error message when a request is refused", async () => {
    await page.goto(`${base}/console/#/steps?since=2000000000&until=1000000000`);
    await page.locator("main [role=alert]", { hasText: "since must not be after until" }).waitFor();
  });

  it("pages through recent steps and filters them by time", async () => {
    await page.goto(`${base}/console/#/steps?limit=2`);
    const seen: string[] = [];
    await shows("#/steps?limit=2");
    for (let pageNo = 0; pageNo < 5; pageNo++) {
      seen.push(...(await page.locator("main tbody tr td:nth-child(2)").allTextContents()));
      const next = page.getByRole("link", { name: "Next page ⟶" });
      if ((await next.count()) === 0) break;
      if (pageNo === 0) expect(await page.getByRole("link", { name: "⟵ First page" }).count()).toBe(0);
      const href = (await next.getAttribute("href")) ?? "";
      expect(href).toMatch(/^#\/steps\?limit=2&cursor=./);
      await next.click();
      await shows(href);
    }
    expect(seen.slice().sort()).toEqual(
      ["step_console_a1", FAILED_A, "step_console_b1", "step_console_bulk1", "step_console_bulk2"].sort(),
    );

    // Since a minute far ahead: nothing; since a minute ago: this test's steps (all sent just now).
    await page.getByRole("link", { name: "⟵ First page" }).click();
    await shows("#/steps?limit=2");
    await page.locator("#f-since").fill("2099-01-01T00:00");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.locator("main", { hasText: "No steps match." }).waitFor();
    expect(await page.evaluate(() => location.hash)).toBe("#/steps?limit=2&since=4070908800");
  });

  it("shows a quarantined event, why it is still refused, and replays one today's rules accept", async () => {
    // A real refusal: correctly signed, but a completed step without completed_at.
    const refused = await app.send(
      makeStep({ id: "step_console_q1", run_id: RUN_B, status: "completed", completed_at: null }),
    );
    expect(refused.status).toBe(422);
    const refusedId = ((await refused.json()) as { error: { quarantine_id: string } }).error.quarantine_id;
    // One an older release refused and today's rules accept, kept as that release kept it.
    const acceptedId = await seedQuarantined(
      store,
      JSON.stringify(makeStep({ id: "step_console_q2", run_id: RUN_B, status: "completed" })),
      { webhookId: "msg_seed_step_console_q2" },
    );

    await page.getByRole("link", { name: "Quarantine" }).click();
    await shows("#/quarantine");
    await rowOf(refusedId).waitFor();
    await rowOf(acceptedId).waitFor();
    await page.getByRole("link", { name: refusedId }).click();
    await shows(`#/quarantine/${refusedId}`);
    await page
      .locator("main li", { hasText: 'completed_at is required when status is "completed"' })
      .waitFor();
    await page.locator("main", { hasText: "webhook-signature" }).waitFor();
    expect(await page.getByLabel("Quarantined body").textContent()).toContain('"id":"step_console_q1"');
    await page.getByRole("button", { name: "Replay" }).click();
    await notice().filter({ hasText: "still refused: not a valid run step event" }).waitFor();

    await page.goto(`${base}/console/#/quarantine/${acceptedId}`);
    await shows(`#/quarantine/${acceptedId}`);
    await page.getByRole("button", { name: "Replay" }).click();
    await notice()
      .filter({ hasText: `Replayed ${acceptedId}: step step_console_q2 created` })
      .waitFor();
    await shot("5-quarantine-replayed");
    expect((await app.get("/v1/run-steps/step_console_q2")).status).toBe(200);
    expect(await page.getByRole("button", { name: "Replay" }).count()).toBe(0);
  });

  it("shows a hydrated failed response beside runs: from a dead delivery, by id, and from a run address", async () => {
    const event = thinEvent("response.failed", RESPONSE.id);
    expect((await sendOpenAi(event)).status).toBe(200);
    await app.drain();
    // Hydrated, stored, and its hook notification refused for good: a dead delivery of a response.
    const stored = await eventually(async () => {
      const got = await app.get(`/v1/responses/${RESPONSE.id}`);
      if (got.status !== 200) return undefined;
      const body = (await got.json()) as { deliveries: Array<{ id: string; sink: string; state: string }> };
      return body.deliveries.some((d) => d.sink === "hook" && d.state === "dead") ? body : undefined;
    });
    const hookId = stored.deliveries.find((d) => d.sink === "hook")?.id ?? "";

    // The dead list shows it with a null step_id: its subject links to the response.
    await page.goto(`${base}/console/#/deliveries?state=dead`);
    await shows("#/deliveries?state=dead");
    expect(await rowOf(hookId).textContent()).toContain(`response ${RESPONSE.id}`);
    await rowOf(hookId).getByRole("link", { name: RESPONSE.id }).click();
    await shows(`#/responses/${RESPONSE.id}`);

    expect(await heading().textContent()).toBe(`Response ${RESPONSE.id}`);
    const facts = await factsOf();
    expect(facts).toMatchObject({
      Status: "failed",
      Model: "gpt-4.1-2025-04-14",
      Prompt: "–",
      Error: `server_error: The model produced invalid content. ${MARKUP}`,
      Tokens: "120 (input 120, output 0)",
    });
    expect(facts).not.toHaveProperty("Incomplete reason");
    const TIME = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/;
    const eventCells = await rowOf(event.id).locator("td").allTextContents();
    expect(eventCells).toEqual([
      event.id,
      "response.failed",
      "hydrated",
      "1",
      "–",
      eventCells[5],
      eventCells[6],
      "–",
    ]);
    expect(eventCells[5]).toMatch(TIME);
    expect(eventCells[6]).toMatch(TIME);
    expect(await rowOf("fs_failed_0001").locator("td").allTextContents()).toEqual([
      "0",
      "fs_failed_0001",
      "tool_calls",
      "failed",
      `server_error: The model produced invalid content. ${MARKUP}`,
    ]);
    const raw = JSON.parse((await page.getByLabel("Response JSON").textContent()) ?? "");
    expect(raw).toEqual(RESPONSE);
    expect(await page.locator("main img").count()).toBe(0);
    expect(await page.evaluate(() => "pwned" in window)).toBe(false);
    await shot("6-response");

    // Its dead delivery is retried from the response page, as from a step's.
    expect(await rowOf(hookId).first().textContent()).toContain("dead");
    expect(await page.locator("td.log", { hasText: `Attempt log of ${hookId}` }).textContent()).toContain(
      "HTTP 400: response refused by receiver",
    );
    await page.getByRole("button", { name: `Retry ${hookId} now` }).click();
    await notice()
      .filter({ hasText: `Retried ${hookId}: delivered after attempt 2.` })
      .waitFor();
    expect(await rowOf(hookId).first().textContent()).toContain("delivered");

    // A run address of a response opens its page; so does the header's open box.
    await page.goto(`${base}/console/#/steps`);
    await shows("#/steps");
    await page.goto(`${base}/console/#/runs/${RESPONSE.id}`);
    await shows(`#/responses/${RESPONSE.id}`);
    await page.goto(`${base}/console/#/sinks`);
    await shows("#/sinks");
    await page.getByLabel("Open an id").fill(` ${RESPONSE.id} `);
    await page.getByLabel("Open an id").press("Enter");
    await shows(`#/responses/${RESPONSE.id}`);
    expect(await page.getByLabel("Open an id").inputValue()).toBe("");
  });

  it("shows an agent session's status, agent, model, required action and events", async () => {
    const event = thinEvent("agent.session.action_required", SESSION.id);
    expect((await sendOpenAi(event)).status).toBe(200);
    await app.drain();
    // Hydrated, and its hook notification dead: a delivery whose subject is the session's event.
    const dead = await eventually(async () => {
      const body = (await (await app.get("/v1/deliveries?state=dead&sink=hook")).json()) as {
        data: Array<{ id: string; step_id: string | null; subject: { kind: string; id: string } }>;
      };
      return body.data.find((d) => d.subject.kind === "agent_session");
    });
    expect(dead).toMatchObject({ step_id: null, subject: { id: event.id } });
    await page.goto(`${base}/console/#/deliveries?state=dead`);
    await shows("#/deliveries?state=dead");
    expect(await rowOf(dead.id).textContent()).toContain(`session ${SESSION.id}`);
    await rowOf(dead.id).getByRole("link", { name: SESSION.id }).click();
    await shows(`#/sessions/${SESSION.id}`);
    expect(await heading().textContent()).toBe(`Agent session ${SESSION.id}`);
    expect(await factsOf()).toMatchObject({
      Status: "requires_action",
      Agent: "Support agent (agent_6a1f2c)",
      Model: "gpt-5.5",
      "Required action": "function_call: lookup_order",
      Tokens: "1500 (input 1200, output 300)",
    });
    expect(await rowOf(event.id).textContent()).toContain("agent.session.action_requiredhydrated1");
    expect(JSON.parse((await page.getByLabel("Session JSON").textContent()) ?? "")).toEqual(SESSION);
    // A session's run address opens the session too, and so does the open box.
    await page.goto(`${base}/console/#/runs/${SESSION.id}`);
    await shows(`#/sessions/${SESSION.id}`);
    await page.goto(`${base}/console/#/sources`);
    await shows("#/sources");
    await page.getByLabel("Open an id").fill(SESSION.id);
    await page.getByRole("button", { name: "Open", exact: true }).click();
    await shows(`#/sessions/${SESSION.id}`);
    await shot("7-session");
  });

  it("shows the OpenAI source's state and its waiting hydrations", async () => {
    await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Sources" }).click();
    await shows("#/sources");
    const ok = await rowOf("openai").textContent();
    expect(ok).toMatch(/^openaiok\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ–0–$/);

    // A revoked key: the next event waits, and the panel says why and for how long.
    openai.unauthorized = true;
    try {
      expect((await sendOpenAi(thinEvent("response.failed", "resp_console_waiting"))).status).toBe(200);
      await app.drain();
      await eventually(async () => {
        const body = (await (await app.get("/v1/sources")).json()) as { data: Array<{ state: string }> };
        return body.data[0]?.state === "unauthorized" ? true : undefined;
      });
    } finally {
      openai.unauthorized = false;
    }
    await page.getByRole("button", { name: "Refresh" }).click();
    await rowOf("unauthorized").waitFor();
    const cells = await rowOf("openai").locator("td").allTextContents();
    expect(cells[1]).toBe("unauthorized");
    expect(cells[3]).toContain("401");
    expect(cells[4]).toBe("1");
    expect(cells[5]).toMatch(/^\d+ s$/);
    await shot("8-sources");
  });

  it("forgets the token on request, set no cookie, and logged no browser error", async () => {
    await page.getByRole("button", { name: "Forget token" }).click();
    await page.locator("#token").waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(await context.cookies()).toEqual([]);
    expect(browserErrors).toEqual([]);
  });
});

/** A thin OpenAI event for `subject`, as OpenAI sends it. */
let events = 0;
const thinEvent = (type: string, subject: string) => ({
  id: `evt_console_${Date.now().toString(36)}_${events++}`,
  object: "event",
  created_at: Math.floor(Date.now() / 1000),
  type,
  data: { id: subject },
});

/** POSTs an OpenAI event signed as OpenAI signs it (the standardwebhooks library). */
async function sendOpenAi(event: unknown): Promise<Response> {
  const body = JSON.stringify(event);
  const id = `wh_console_${events++}`;
  const now = new Date();
  return await app.app.request("/v1/webhooks/openai", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
      "webhook-signature": new Webhook(openAiSecret).sign(id, now, body),
    },
    body,
  });
}

/** The facts list of the page, term → text. */
async function factsOf(): Promise<Record<string, string>> {
  return page.locator("dl.facts").evaluate((dl) => {
    const out: Record<string, string> = {};
    for (const dt of dl.querySelectorAll("dt"))
      out[dt.textContent ?? ""] = dt.nextElementSibling?.textContent ?? "";
    return out;
  });
}

async function deliveryRows(): Promise<string[]> {
  return page.locator("main tbody tr td:first-child").allTextContents();
}
