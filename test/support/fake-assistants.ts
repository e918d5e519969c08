import { readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));

/** A recorded transcript in the Assistants SSE wire format, from test/fixtures. */
export function transcript(name: string): string {
  return readFileSync(`${FIXTURES}${name}.sse`, "utf8");
}

/** The run step snapshots of transcripts, last one per step, in first-seen order (what list/retrieve return). */
export function finalSteps(...names: string[]): Array<Record<string, unknown>> {
  const steps = new Map<string, Record<string, unknown>>();
  for (const name of names) {
    for (const block of transcript(name).split("\n\n")) {
      const event = /^event: (thread\.run\.step\.(?!delta)\S+)$/m.exec(block);
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (!event || !data) continue;
      const step = JSON.parse(data) as Record<string, unknown>;
      steps.set(step.id as string, step);
    }
  }
  return [...steps.values()];
}

/** A request the fake upstream received (headers as they arrived, the tap's hop included). */
export interface UpstreamRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * A loopback Assistants-compatible upstream: starting a run replays the transcript chosen by the
 * request's `assistant_id` (`runs[assistant_id]`), submitting tool outputs replays `submit`, run
 * step list/retrieve answer the transcripts' final snapshots. Streams go out in small chunks of
 * changing sizes (split inside lines, JSON and UTF-8 sequences), one per event-loop turn.
 */
export interface FakeAssistants {
  readonly url: string;
  readonly received: UpstreamRequest[];
  close(): Promise<void>;
}

export interface FakeAssistantsOptions {
  /** thread id (or assistant_id for `POST /threads/runs`) → transcript name a new run replays. */
  readonly runs: Readonly<Record<string, string>>;
  /** run_id → transcript name replayed by `submit_tool_outputs`. */
  readonly submit: Readonly<Record<string, string>>;
  /** Transcripts whose final steps list/retrieve serve. */
  readonly steps: readonly string[];
  /** Milliseconds between chunks (default: one event-loop turn). */
  readonly chunkDelayMs?: number;
}

const CHUNK_SIZES = [7, 31, 3, 64, 1, 17, 128, 5, 45, 2];

export async function startFakeAssistants(options: FakeAssistantsOptions): Promise<FakeAssistants> {
  const received: UpstreamRequest[] = [];
  const steps = finalSteps(...options.steps);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const path = (req.url ?? "").split("?")[0] ?? "";
      received.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body });
      const json = (status: number, value: unknown) => {
        const text = JSON.stringify(value);
        res.writeHead(status, {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(text),
          "x-request-id": "req_fake_json",
        });
        res.end(text);
      };
      const stream = (name: string | undefined) => {
        if (!name) return json(404, { error: { message: "No such run", type: "invalid_request_error" } });
        const bytes = Buffer.from(transcript(name), "utf8");
        res.writeHead(200, {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache",
          "x-request-id": `req_fake_${name}`,
          "openai-processing-ms": "42",
        });
        let at = 0;
        let i = 0;
        const next = () => {
          if (res.destroyed) return;
          if (at >= bytes.length) {
            res.end();
            return;
          }
          const size = CHUNK_SIZES[i++ % CHUNK_SIZES.length] ?? 16;
          res.write(bytes.subarray(at, at + size));
          at += size;
          if (options.chunkDelayMs) setTimeout(next, options.chunkDelayMs);
          else setImmediate(next);
        };
        next();
      };
      const parsed = body ? (JSON.parse(body) as { assistant_id?: string }) : {};
      const post = req.method === "POST";
      const get = req.method === "GET";
      const runStart = post ? /^\/v1\/threads(?:\/([^/]+))?\/runs$/.exec(path) : null;
      if (runStart) return stream(options.runs[runStart[1] ?? ""] ?? options.runs[parsed.assistant_id ?? ""]);
      const submit = post ? /^\/v1\/threads\/[^/]+\/runs\/([^/]+)\/submit_tool_outputs$/.exec(path) : null;
      if (submit) return stream(options.submit[submit[1] ?? ""]);
      const list = get ? /^\/v1\/threads\/[^/]+\/runs\/([^/]+)\/steps$/.exec(path) : null;
      if (list) {
        const data = steps.filter((s) => s.run_id === list[1]);
        return json(200, {
          object: "list",
          data,
          first_id: data[0]?.id ?? null,
          last_id: data.at(-1)?.id ?? null,
          has_more: false,
        });
      }
      const one = get ? /^\/v1\/threads\/[^/]+\/runs\/[^/]+\/steps\/([^/]+)$/.exec(path) : null;
      if (one) {
        const step = steps.find((s) => s.id === one[1]);
        return step
          ? json(200, step)
          : json(404, { error: { message: "No step found", type: "invalid_request_error" } });
      }
      return json(404, { error: { message: `Unknown path ${path}`, type: "invalid_request_error" } });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
