import { createServer, type ServerResponse } from "node:http";
import { listenOnLoopback } from "./loopback.js";

/** How the sink answers one notification: an HTTP status, or "hang" (never answers). */
export type SinkAnswer = number | "hang";

/**
 * Decides the answer to a notification: `stepId` is the notified step (from `data.id`), `nth` how
 * many notifications of that step this sink has now received (1 for the first).
 */
export type AnswerRule = (stepId: string | undefined, nth: number) => SinkAnswer;

/** A loopback webhook receiver whose answers the bench scripts, and which notes what it delivered. */
export interface ScriptedSink {
  readonly url: string;
  /** Changes how the sink answers from now on. */
  answer(rule: AnswerRule): void;
  /** performance.now() of the first 2xx answer per step id. */
  readonly deliveredAt: Map<string, number>;
  /** Requests received, any answer. */
  received(): number;
  /** performance.now() of the first request received (since the last reset), or null. */
  firstAt(): number | null;
  /** The longest time between two consecutive requests since the last reset, ms. */
  longestPauseMs(): number;
  /** Step ids of every notification received since the last reset. */
  stepsSeen(): string[];
  /** Answers given so far, by status ("hang" for requests left unanswered). */
  readonly answers: Record<string, number>;
  /** Forgets everything received so far (deliveries, counts); the rule stays. */
  reset(): void;
  close(): Promise<void>;
}

/** A webhook receiver on 127.0.0.1 that answers by `rule` (204 for everything by default). */
export async function startScriptedSink(rule: AnswerRule = () => 204): Promise<ScriptedSink> {
  let current = rule;
  const deliveredAt = new Map<string, number>();
  const seen = new Map<string, number>();
  const answers: Record<string, number> = {};
  let count = 0;
  let first: number | null = null;
  let lastAt: number | null = null;
  let longestPause = 0;
  const hanging = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      count++;
      const at = performance.now();
      first ??= at;
      if (lastAt !== null) longestPause = Math.max(longestPause, at - lastAt);
      lastAt = at;
      let stepId: string | undefined;
      try {
        const payload = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { data?: { id?: unknown } };
        if (typeof payload.data?.id === "string") stepId = payload.data.id;
      } catch {
        // Counted; without a step id it cannot be matched.
      }
      const nth = stepId === undefined ? 1 : (seen.get(stepId) ?? 0) + 1;
      if (stepId !== undefined) seen.set(stepId, nth);
      const answer = current(stepId, nth);
      const key = String(answer);
      answers[key] = (answers[key] ?? 0) + 1;
      if (answer === "hang") {
        // Never answered: the sender's attempt times out. The socket is closed when the sink closes.
        hanging.add(res);
        res.once("close", () => hanging.delete(res));
        return;
      }
      if (answer >= 200 && answer < 300 && stepId !== undefined && !deliveredAt.has(stepId)) {
        deliveredAt.set(stepId, performance.now());
      }
      res.writeHead(answer).end(answer >= 500 ? "unavailable" : undefined);
    });
  });
  const url = await listenOnLoopback(server);
  return {
    url,
    answer(next) {
      current = next;
    },
    deliveredAt,
    received: () => count,
    firstAt: () => first,
    longestPauseMs: () => longestPause,
    stepsSeen: () => [...seen.keys()],
    answers,
    reset() {
      deliveredAt.clear();
      seen.clear();
      count = 0;
      first = null;
      lastAt = null;
      longestPause = 0;
      for (const key of Object.keys(answers)) delete answers[key];
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A stable hash of a string into [0, 1), so a "flaky" sink fails the same attempts in every run. */
export function unitHash(text: string): number {
  let hash = 2166136261;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 16777619);
  }
  // murmur3's finaliser: without it, strings differing in their last character hash alike.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) / 2 ** 32;
}
