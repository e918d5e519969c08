/**
 * A loopback stand-in of OpenAI's API, to try OpenAI's platform webhooks with no OpenAI account:
 *
 *   npm run openai-standin                      # 127.0.0.1:8789, a generated key
 *   npm run openai-standin -- --port 9000 --key sk-mine-0123456789
 *
 * It serves the sample responses and agent sessions `npm run send-sample -- --openai <type>` sends
 * events for, to whoever has its key, and prints how to start stepwatch against it. stepwatch
 * itself never starts or uses it: OPENAI_BASE_URL and OPENAI_API_KEY say which API to use.
 */
import { parseArgs } from "node:util";
import { type FakeOpenAi, startFakeOpenAi } from "../test/support/fake-openai.js";
import {
  OPENAI_SAMPLE_TYPES,
  OPENAI_SAMPLES,
  STANDIN_RESPONSES,
  STANDIN_SESSIONS,
} from "./support/openai-samples.js";

/** The port `npm run openai-standin` listens on by default (the tap's is 8788). */
export const DEFAULT_STANDIN_PORT = 8789;

// A key a header can carry, long enough not to be guessed by a neighbour on the machine.
const KEY_PATTERN = /^[\x21-\x7e]{16,256}$/;

/** A bad flag: the message is the one line printed. */
export class StandinUsageError extends Error {
  override readonly name = "StandinUsageError";
}

/** Options of {@link startOpenAiStandin}. */
export interface StandinOptions {
  /** 0 for a free port. */
  readonly port: number;
  /** The Bearer key every request must carry. */
  readonly key: string;
  /** Called with `GET /v1/responses/… 200` as each answer is sent (never a header or a key). */
  readonly log?: (line: string) => void;
}

/**
 * Starts the stand-in on 127.0.0.1 with every sample object. It keeps no record of requests (its
 * memory stays bounded however long it runs), and its connection time-outs are bounded.
 * @throws {StandinUsageError} when the key is not 16–256 visible ASCII characters.
 */
export async function startOpenAiStandin(options: StandinOptions): Promise<FakeOpenAi> {
  checkKey(options.key);
  const { log } = options;
  return startFakeOpenAi({
    apiKey: options.key,
    port: options.port,
    responses: STANDIN_RESPONSES,
    sessions: STANDIN_SESSIONS,
    recordRequests: false,
    ...(log
      ? {
          onRequest: (req, res) => {
            // The path only: the query of an items page is noise, and the headers carry the key.
            const path = (req.url ?? "/").split("?")[0];
            res.once("finish", () => log(`${req.method} ${path} ${res.statusCode}`));
          },
        }
      : {}),
  });
}

/** What the stand-in prints once it listens: how to start stepwatch against it, and what to send. */
export function standinBanner(baseUrl: string, key: string): string {
  const width = Math.max(...OPENAI_SAMPLE_TYPES.map((type) => type.length));
  return [
    "",
    `OpenAI API stand-in listening on ${baseUrl} (loopback only; every request needs its key)`,
    "",
    "Start stepwatch against it (another terminal):",
    `  OPENAI_BASE_URL=${baseUrl} OPENAI_API_KEY=${key} npm start`,
    "",
    "Then send OpenAI events, signed with the OPENAI_WEBHOOK_SECRET npm start printed (a third terminal;",
    "--url for a stepwatch other than http://127.0.0.1:8787):",
    ...OPENAI_SAMPLE_TYPES.map(
      (type) => `  npm run send-sample -- --openai ${type.padEnd(width)}   # ${OPENAI_SAMPLES[type]?.what}`,
    ),
    "",
    "Each fetch stepwatch makes is shown here. Ctrl-C stops the stand-in.",
    "",
  ].join("\n");
}

function checkKey(key: string): void {
  if (!KEY_PATTERN.test(key)) {
    throw new StandinUsageError("--key must be 16 to 256 visible ASCII characters (no spaces)");
  }
}

function generateKey(): string {
  return `sk-standin-${Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("base64url")}`;
}

function parsePort(text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65_535) {
    throw new StandinUsageError("--port must be a whole number from 0 to 65535");
  }
  return Number(text);
}

async function main(): Promise<void> {
  let port: number;
  let key: string;
  try {
    const { values } = parseArgs({
      options: {
        port: { type: "string", default: String(DEFAULT_STANDIN_PORT) },
        key: { type: "string" },
      },
    });
    port = parsePort(values.port);
    key = values.key ?? generateKey();
    checkKey(key);
  } catch (error) {
    // parseArgs' TypeError names the unknown flag; no stack for a typo.
    console.error(`openai-standin: ${(error as Error).message}`);
    process.exit(2);
  }
  let standin: FakeOpenAi;
  try {
    standin = await startOpenAiStandin({ port, key, log: (line) => console.log(line) });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    console.error(
      code === "EADDRINUSE"
        ? `openai-standin: port ${port} is in use: pass --port <another> (or --port 0 for a free one)`
        : `openai-standin: could not listen on 127.0.0.1:${port}: ${(error as Error).message}`,
    );
    process.exit(1);
  }
  console.log(standinBanner(standin.url, key));
  const stop = () => {
    void standin.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
