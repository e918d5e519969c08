import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServerProcess, stopProcess } from "./support/server-process.js";
import { within } from "./support/within.js";

// The Node server as a real process (README, "Security"): what unauthenticated senders can hold,
// that an early refusal reaches a client still sending, an upload that breaks off, and a shutdown
// under keep-alive traffic. /proc gives the server's memory and sockets (Linux).

const dirs: string[] = [];
const children: ServerProcess[] = [];
let server: ServerProcess;
let apiToken: string;
// Its own server, for it is stopped: started beside the other, with a connection cap.
let draining: ServerProcess;
const CAPPED = 100;

const start = async (env: Record<string, string> = {}) => {
  const dir = mkdtempSync(join(tmpdir(), "stepwatch-conn-"));
  dirs.push(dir);
  const child = await startServerProcess({ STEPWATCH_DATA_DIR: dir, ...env });
  children.push(child);
  const secrets = JSON.parse(readFileSync(join(dir, "local-secrets.json"), "utf8")) as { API_TOKEN: string };
  return { child, token: secrets.API_TOKEN };
};

beforeAll(async () => {
  const [main, other] = await Promise.all([start(), start({ MAX_CONNECTIONS: String(CAPPED) })]);
  ({ child: server, token: apiToken } = main);
  draining = other.child;
}, 40_000);
afterAll(async () => {
  await Promise.all(children.map((c) => stopProcess(c.child)));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const portOf = (url: string) => Number(new URL(url).port);
const now = () => Math.floor(Date.now() / 1000);
const rssMiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
const openSockets = (pid: number) =>
  readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:");
    } catch {
      return false;
    }
  }).length;

async function until(check: () => boolean, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** An upload over a raw socket: what came back, whether the server closed, and any socket error. */
function upload(url: string, headers: Record<string, string>, allowHalfOpen = false) {
  // allowHalfOpen: a client that keeps its side open after the server's FIN, as a hostile one would.
  const socket = connect({ port: portOf(url), host: "127.0.0.1", allowHalfOpen });
  const state = { received: "", error: undefined as string | undefined, closed: false };
  socket.on("data", (chunk: Buffer) => {
    state.received += chunk.toString("latin1");
  });
  socket.on("error", (error: NodeJS.ErrnoException) => {
    state.error ??= error.code ?? error.message;
  });
  socket.on("close", () => {
    state.closed = true;
  });
  const head = Object.entries({ host: "127.0.0.1", "content-type": "application/json", ...headers })
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  socket.write(`POST /v1/webhooks/run-steps HTTP/1.1\r\n${head}\r\n`);
  return { socket, state };
}

describe("unauthenticated senders", () => {
  // Concurrent with the shutdown test: most of either is waiting.
  it.concurrent("200 slow uploads with a bad signature are refused at once, then dropped within seconds: memory and sockets stay bounded", async () => {
    const pid = server.child.pid ?? 0;
    const rssBefore = rssMiB(pid);
    const socketsBefore = openSockets(pid);
    const uploads = Array.from({ length: 200 }, (_, i) =>
      upload(
        server.url,
        {
          "content-length": "262143",
          "webhook-id": `msg_slow_${i}`,
          "webhook-timestamp": String(now()),
          "webhook-signature": "garbage",
        },
        i % 2 === 0,
      ),
    );
    const kib = Buffer.alloc(1024, 0x20);
    // Each keeps sending 1 KiB every 100 ms, as a slow sender would, for as long as it can.
    const drip = setInterval(() => {
      for (const u of uploads) if (!u.state.closed && u.socket.writable) u.socket.write(kib);
    }, 100);
    try {
      await until(
        () => uploads.every((u) => u.state.received.includes("\r\n\r\n")),
        4_000,
        "every upload answered",
      );
      for (const u of uploads) {
        expect(u.state.received).toMatch(/^HTTP\/1\.1 401 /);
        expect(u.state.received).toMatch(/\r\nconnection: close\r\n/i);
      }
      const rssAnswered = rssMiB(pid);
      // Lingering: read and discarded for at most 2 s after the answer, then closed.
      await until(() => uploads.every((u) => u.state.closed), 5_000, "every upload closed by the server");
      await until(() => openSockets(pid) <= socketsBefore + 2, 2_000, "the server's sockets released");
      // No body was buffered: 200 × 256 KiB would be 50 MiB.
      expect(rssAnswered - rssBefore).toBeLessThan(30);
    } finally {
      clearInterval(drip);
      for (const u of uploads) u.socket.destroy();
    }
  }, 20_000);

  it("an unsigned upload refused from its headers always gets its answer, while still sending (10 runs, no EPIPE or reset)", async () => {
    const runs = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        // Even runs are over MAX_BODY_BYTES (413), odd ones within it but unsigned (401).
        const length = i % 2 === 0 ? 600_000 : 200_000;
        // Half-open, as curl or undici are: the server's FIN does not stop them sending their body.
        const u = upload(
          server.url,
          { "content-length": String(length), "webhook-id": `msg_big_${i}` },
          true,
        );
        // Sent in pieces, as a client on a real network does: still sending when the answer comes.
        const piece = Buffer.alloc(16_384, 0x20);
        for (
          let sent = 0;
          sent < length && u.state.error === undefined && !u.socket.destroyed;
          sent += piece.length
        ) {
          u.socket.write(piece.subarray(0, Math.min(piece.length, length - sent)));
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
        u.socket.end();
        await until(() => u.state.closed, 6_000, `upload ${i} closed`);
        return { status: /^HTTP\/1\.1 (\d+) /.exec(u.state.received)?.[1], error: u.state.error };
      }),
    );
    expect(runs).toEqual(
      Array.from({ length: 10 }, (_, i) => ({ status: i % 2 === 0 ? "413" : "401", error: undefined })),
    );
  }, 20_000);
});

describe("an upload that breaks off", () => {
  it("is logged once as aborted (499, warn) and counted as 499, never a 500 or an error line", async () => {
    const uploads = Array.from({ length: 5 }, (_, i) => {
      const u = upload(server.url, {
        "content-length": "100000",
        "webhook-id": `msg_abort_${i}`,
        "webhook-timestamp": String(now()),
        // Passes what the headers decide, so the body is read; never checked, for it never arrives.
        "webhook-signature": "v1,AAAA",
        "x-request-id": `aborted-upload-${i}`,
      });
      u.socket.write("{".repeat(1000));
      return u;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const u of uploads) u.socket.destroy();
    const lines = () =>
      server
        .stdout()
        .split("\n")
        .filter((line) => line.includes('"request_id":"aborted-upload-'));
    await within(
      until(() => lines().length === 5, 5_000, "five log lines"),
      6_000,
    );
    for (const line of lines()) {
      expect(JSON.parse(line)).toMatchObject({
        level: "warn",
        msg: "request",
        status: 499,
        error_code: "request_aborted",
      });
    }
    expect(server.stdout()).not.toContain('"level":"error"');
    const metrics = await (
      await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${apiToken}` } })
    ).text();
    const count = (status: string) =>
      Number(
        new RegExp(
          `stepwatch_http_requests_total\\{method="POST",route="/v1/webhooks/run-steps",status="${status}"\\} (\\d+)`,
        ).exec(metrics)?.[1] ?? 0,
      );
    expect(count("499")).toBe(5);
    expect(count("500")).toBe(0);
  }, 15_000);
});

describe("shutdown under keep-alive traffic", () => {
  it.concurrent("16 connections sending back to back through SIGTERM: every request received is answered, none of them reset", async () => {
    // First the cap: one connection over MAX_CONNECTIONS is closed as soon as it is accepted.
    const pid = draining.child.pid ?? 0;
    const socketsBefore = openSockets(pid);
    const idle = Array.from({ length: CAPPED + 1 }, () => {
      const socket = connect(portOf(draining.url), "127.0.0.1");
      const state = { socket, closed: false };
      socket.on("error", () => undefined);
      socket.on("close", () => {
        state.closed = true;
      });
      return state;
    });
    await until(() => idle.some((s) => s.closed), 3_000, "the connection over the cap closed");
    await until(() => openSockets(pid) >= socketsBefore + CAPPED, 3_000, "the others accepted");
    expect(idle.filter((s) => s.closed)).toHaveLength(1);
    expect(openSockets(pid)).toBe(socketsBefore + CAPPED);
    for (const s of idle) s.socket.destroy();
    await until(() => openSockets(pid) === socketsBefore, 3_000, "the idle connections gone");
    const url = `${draining.url}/v1/runs/run_drain/steps`;
    const answered = new Set<string>();
    const closing: string[] = [];
    const failures: Array<{ id: string; code: string; signalled: boolean; n: number }> = [];
    let signalled = false;
    const deadline = Date.now() + 8_000;
    const loops = Array.from({ length: 16 }, async (_, conn) => {
      for (let n = 0; Date.now() < deadline; n++) {
        const id = `drain-${conn}-${n}`;
        try {
          const response = await fetch(url, { headers: { "x-request-id": id } });
          await response.text();
          answered.add(id);
          if (response.headers.get("connection") === "close") closing.push(id);
        } catch (error) {
          const cause = (error as { cause?: { code?: string; message?: string } }).cause;
          failures.push({
            id,
            code: cause?.code ?? cause?.message ?? String(error),
            signalled,
            n: answered.size,
          });
          // Before the signal nothing may fail; after it, the first failure ends this sender.
          if (signalled) return;
        }
      }
    });
    await until(() => answered.size >= 160, 5_000, "traffic on every connection");
    signalled = true;
    draining.child.kill("SIGTERM");
    await Promise.all(loops);
    expect(await draining.exited()).toBe(0);
    const received = draining
      .stdout()
      .split("\n")
      .flatMap((line) => /"request_id":"(drain-[\d-]+)"/.exec(line)?.[1] ?? []);
    expect(received.length).toBeGreaterThan(160);
    // Nothing the server received went unanswered, and no request it received was reset. (A request
    // it never received can still be reset, in about half of the runs on a clean clone: issue 21
    // item 9 stays open for it; most likely a new connection still in the listener's accept queue
    // when the listener closes, which the kernel resets.)
    expect({
      unanswered: received.filter((id) => !answered.has(id)),
      resetAfterReceived: failures.filter((f) => f.code === "ECONNRESET" && received.includes(f.id)),
    }).toEqual({ unanswered: [], resetAfterReceived: [] });
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.every((f) => !received.includes(f.id))).toBe(true);
    // Answers during the drain say the connection closes with them.
    expect(closing.length).toBeGreaterThan(0);
  }, 20_000);
});
