import type { Forwarder } from "./forwarder.js";
import {
  type ExtractOptions,
  isRunStepsPath,
  type RelayEvent,
  runStepEventOf,
  runStepEventsOfJson,
} from "./run-step-events.js";
import { SseParser } from "./sse-parser.js";

/** How the tap reaches the upstream and where it tees run steps. */
export interface TapOptions extends ExtractOptions {
  /** The real Assistants-compatible base URL, e.g. `https://api.openai.com/v1`. */
  readonly upstream: string;
  readonly forwarder: Forwarder;
  /** Told when teeing fails (never with headers or bodies). */
  readonly onError?: (message: string) => void;
  /** JSON answers larger than this are passed on but not read for run steps. Default 4 MiB. */
  readonly maxJsonBytes?: number;
  readonly fetch?: typeof fetch;
  /**
   * Found events of one response waiting for the forwarder at most (it waits only when it has no
   * spool and its memory is full); more are dropped and counted, never holding up the client.
   */
  readonly maxPending?: number;
}

/** A Web-standard handler; `waitUntil` keeps the teeing alive past the response where the runtime needs it. */
export type TapHandler = (
  request: Request,
  waitUntil?: (promise: Promise<unknown>) => void,
) => Promise<Response>;

// Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection, not to the message.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);

/**
 * The tap: every request goes to `upstream` + its path and query, and the upstream's answer comes
 * back unchanged (status, headers but hop-by-hop ones, body bytes), streamed chunk by chunk as it
 * arrives. While a chunk passes, a copy feeds the SSE parser; run step events found in it (and in
 * run step list/retrieve JSON answers) are handed to the forwarder off the response's path, so the
 * client's stream never waits for stepwatch. Request headers (credentials included) are passed on
 * and never logged or kept. The request body is read whole before sending: Assistants request
 * bodies are small JSON, and a known length is what every upstream accepts.
 */
export function createTapHandler(options: TapOptions): TapHandler {
  const base = new URL(options.upstream);
  const basePath = base.pathname.replace(/\/+$/, "");
  const doFetch = options.fetch ?? fetch;
  const maxJsonBytes = options.maxJsonBytes ?? 4 * 1024 * 1024;
  const report = options.onError ?? (() => undefined);

  return async (request, waitUntil) => {
    const incoming = new URL(request.url);
    const target = new URL(base);
    target.pathname = basePath + incoming.pathname;
    target.search = incoming.search;
    const headers = new Headers();
    request.headers.forEach((value, name) => {
      if (!HOP_BY_HOP.has(name)) headers.set(name, value);
    });
    // The tap must read the events: ask for the identity encoding (what the client gets is the same
    // bytes either way, fetch having decoded them).
    headers.set("accept-encoding", "identity");
    const hasBody = request.method !== "GET" && request.method !== "HEAD";
    let upstream: Response;
    try {
      upstream = await doFetch(target, {
        method: request.method,
        headers,
        body: hasBody ? await request.arrayBuffer() : null,
        redirect: "manual",
        signal: request.signal,
      });
    } catch (error) {
      report(`upstream unreachable: ${(error as Error).name}`);
      return new Response(
        JSON.stringify({ error: { message: "the tap could not reach the upstream", type: "tap_error" } }),
        {
          status: 502,
          headers: { "content-type": "application/json" },
        },
      );
    }
    const responseHeaders = new Headers();
    upstream.headers.forEach((value, name) => {
      if (!HOP_BY_HOP.has(name)) responseHeaders.append(name, value);
    });
    if (upstream.headers.has("content-encoding")) {
      // fetch decoded the body: its encoding and length no longer describe what is passed on.
      responseHeaders.delete("content-encoding");
      responseHeaders.delete("content-length");
    }
    const type = upstream.headers.get("content-type") ?? "";
    const tee = !upstream.body
      ? null
      : type.includes("text/event-stream")
        ? sseTee(options)
        : upstream.ok &&
            request.method === "GET" &&
            type.includes("json") &&
            isRunStepsPath(incoming.pathname)
          ? jsonTee(maxJsonBytes)
          : null;
    if (!tee || !upstream.body) {
      return new Response(upstream.body, {
        status: upstream.status,
        statusText: upstream.statusText,
        headers: responseHeaders,
      });
    }
    const intake = createIntake(options.forwarder, report, options.maxPending ?? 1000);
    const body = upstream.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          // The client gets the chunk first; reading it for run steps comes after.
          controller.enqueue(chunk);
          tee.push(chunk, intake.add);
        },
        flush() {
          tee.end(intake.add);
          intake.close();
        },
      }),
    );
    // A client that goes away mid-stream ends the teeing too (flush never comes then).
    // Stryker disable next-line ObjectLiteral,BooleanLiteral: a signal aborts once, and closing twice is harmless
    request.signal.addEventListener("abort", () => intake.close(), { once: true });
    waitUntil?.(intake.done);
    return new Response(body, {
      status: upstream.status,
      statusText: upstream.statusText,
      headers: responseHeaders,
    });
  };
}

interface Tee {
  push(chunk: Uint8Array, add: (work: Promise<RelayEvent[]>) => void): void;
  end(add: (work: Promise<RelayEvent[]>) => void): void;
}

function sseTee(options: ExtractOptions): Tee {
  const parser = new SseParser();
  const extract = (events: ReturnType<SseParser["push"]>, add: (work: Promise<RelayEvent[]>) => void) => {
    for (const e of events) {
      if (!e.event.startsWith("thread.run.step.")) continue;
      add(runStepEventOf(e.event, e.data, options).then((event) => (event ? [event] : [])));
    }
  };
  return {
    push: (chunk, add) => extract(parser.push(chunk), add),
    // Stryker disable next-line ArrowFunction: SseParser.end() yields nothing (an unterminated event is discarded, per the SSE rules)
    end: (add) => extract(parser.end(), add),
  };
}

function jsonTee(maxBytes: number): Tee {
  const chunks: Uint8Array[] = [];
  let size = 0;
  return {
    push(chunk) {
      size += chunk.byteLength;
      if (size <= maxBytes) chunks.push(chunk);
      else chunks.length = 0;
    },
    end(add) {
      if (size > maxBytes) return;
      const bytes = new Uint8Array(size);
      let at = 0;
      for (const c of chunks) {
        bytes.set(c, at);
        at += c.byteLength;
      }
      try {
        add(runStepEventsOfJson(JSON.parse(new TextDecoder().decode(bytes))));
      } catch {
        // Not JSON after all: passed on as it was, nothing to tee.
      }
    },
  };
}

/**
 * Hands found events to the forwarder in order, off the response's path. Accepts are started in
 * order but not awaited one by one: with a spool, each is on disk only after a sync, and the spool
 * commits the ones that arrive meanwhile together, so a fast stream is not held to one sync per
 * event (nor dropped for it). Only events whose work is still being parsed count towards `maxPending`.
 */
function createIntake(forwarder: Forwarder, report: (message: string) => void, maxPending: number) {
  let chain: Promise<void> = Promise.resolve();
  let failed = false;
  let pending = 0;
  const accepting = new Set<Promise<void>>();
  let closeIntake: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => {
    closeIntake = resolve;
  });
  const fail = (error: unknown) => {
    if (failed) return;
    failed = true;
    report(`run step events not teed: ${(error as Error).message}`);
  };
  return {
    add(work: Promise<RelayEvent[]>) {
      if (pending >= maxPending) {
        forwarder.noteDropped();
        return;
      }
      pending++;
      chain = chain.then(async () => {
        // Stryker disable next-line ArrowFunction,ArrayDeclaration: work never rejects (bad input yields no event); the catch is a guard
        const events = await work.catch(() => []);
        pending--;
        for (const event of events) {
          if (failed) return;
          // Without a spool and with memory full, accepting waits: that is the backpressure.
          if (!forwarder.hasRoom()) await Promise.all(accepting);
          const accepted: Promise<void> = forwarder.accept(event).then(
            // Stryker disable next-line BlockStatement: a settled accept left in the set costs only memory: awaiting it again waits no longer
            () => {
              accepting.delete(accepted);
            },
            (error: unknown) => {
              accepting.delete(accepted);
              fail(error);
            },
          );
          accepting.add(accepted);
        }
      });
    },
    close: () => closeIntake(),
    get done(): Promise<void> {
      return closed
        .then(() => chain)
        .then(() => Promise.all(accepting))
        .then(() => forwarder.idle().catch(() => undefined));
    },
  };
}
