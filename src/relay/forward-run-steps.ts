import { createForwarder, type Forwarder, type ForwarderOptions, type RelayStats } from "./forwarder.js";
import { type ExtractOptions, runStepEventOf } from "./run-step-events.js";

/** An Assistants stream event as the openai SDK yields it, or any `{ event, data }` pair. */
export interface StreamEvent {
  readonly event: string;
  readonly data: unknown;
}

/**
 * What `client.beta.threads.runs.stream()` (and `createAndStream`, `submitToolOutputsStream`,
 * `threads.createAndRunStream`) return: the SDK's AssistantStream, an event emitter whose `event`
 * listeners see every stream event, and whose `end` fires once after the last one (errors included).
 */
export interface AssistantStreamLike {
  on(event: "event", listener: (event: StreamEvent) => void): unknown;
  on(event: "end", listener: () => void): unknown;
}

/** What forwardRunSteps needs: stepwatch's address and secret, or a relay shared by several streams. */
export type ForwardRunStepsOptions = ExtractOptions &
  (
    | (Omit<ForwarderOptions, "spool"> & { readonly relay?: undefined })
    | { readonly relay: Forwarder; readonly url?: string; readonly secret?: string }
  );

/** A forwarding under way. */
export interface ForwardingHandle {
  /** Resolves once the stream has ended and every event it had is acknowledged (or refused). */
  readonly done: Promise<RelayStats>;
  readonly stats: Readonly<RelayStats>;
}

/** Events of an emitter waiting for the relay at most; more are dropped (and counted). */
const MAX_WAITING = 1000;

const isAssistantStream = (stream: unknown): stream is AssistantStreamLike =>
  typeof (stream as { on?: unknown }).on === "function" &&
  typeof (stream as { controller?: unknown }).controller === "object";

/**
 * Forwards the run step events of an Assistants stream to stepwatch, without changing what the
 * caller's own code sees: an SDK AssistantStream is observed through its `event` listener (the
 * caller keeps iterating it or listening to it as before); any other async iterable of
 * `{ event, data }` is read by the relay itself (use the SDK stream's `tee()` to read one too).
 *
 *   const stream = client.beta.threads.runs.stream(threadId, { assistant_id });
 *   const relay = forwardRunSteps(stream, { url: "http://127.0.0.1:8787", secret });
 *   for await (const event of stream) { … }   // unchanged
 *   await relay.done;
 */
export function forwardRunSteps(
  stream: AssistantStreamLike | AsyncIterable<StreamEvent>,
  options: ForwardRunStepsOptions,
): ForwardingHandle {
  const stats: RelayStats = { accepted: 0, acknowledged: 0, refused: 0, retries: 0, dropped: 0 };
  const owned = options.relay === undefined;
  const ready: Promise<Forwarder> = options.relay ? Promise.resolve(options.relay) : createForwarder(options);
  // The relay's own counters are shared by every stream it serves; these are this stream's.
  const countFrom = async (forwarder: Forwarder) => {
    const before = { ...forwarder.stats };
    return () => {
      for (const key of Object.keys(stats) as Array<keyof RelayStats>) {
        stats[key] = forwarder.stats[key] - before[key];
      }
    };
  };

  const counting = ready.then(countFrom);
  // An emitter is listened to from now on: its events may come before the forwarder is ready
  // (creating one is asynchronous), and they wait in its chain until then.
  const observed = isAssistantStream(stream)
    ? observe(
        stream,
        counting.then(() => ready),
        options,
      )
    : null;
  observed?.catch(() => undefined);

  const done = (async () => {
    const forwarder = await ready;
    const update = await counting;
    try {
      if (observed) await observed;
      else await pull(stream as AsyncIterable<StreamEvent>, forwarder, options);
      await forwarder.idle();
      update();
      return { ...stats };
    } finally {
      update();
      if (owned) await forwarder.close();
    }
  })();
  // The caller may never await `done`; its failure must not become an unhandled rejection then.
  done.catch(() => undefined);
  return { done, stats };
}

async function pull(
  stream: AsyncIterable<StreamEvent>,
  forwarder: Forwarder,
  options: ExtractOptions,
): Promise<void> {
  for await (const item of stream) {
    const event = await runStepEventOf(item.event, item.data, options);
    if (event) await forwarder.accept(event);
  }
}

/**
 * An emitter cannot be slowed down without slowing the caller, so its events are taken as they
 * come: in order, through one chain of accepts. With a spool every one of them lands on disk;
 * without one, an event arriving while `maxQueued` are waiting is dropped and counted, so memory
 * stays bounded whatever the stream's size.
 */
function observe(
  stream: AssistantStreamLike,
  ready: Promise<Forwarder>,
  options: ExtractOptions,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let forwarder: Forwarder | null = null;
    let waiting = 0;
    let failed = false;
    let droppedEarly = 0;
    const drop = () => {
      if (forwarder) forwarder.noteDropped();
      else droppedEarly++;
    };
    // A forwarder that fails to start rejects `done`; the events then find none and are skipped.
    let chain = ready.then(
      (started) => {
        forwarder = started;
        for (; droppedEarly > 0; droppedEarly--) started.noteDropped();
      },
      () => undefined,
    );
    stream.on("event", (item) => {
      if (failed) return;
      // Before the forwarder is ready there is room: the events wait in the chain (at most MAX_WAITING).
      if (waiting >= MAX_WAITING || (waiting > 0 && forwarder?.hasRoom() === false)) {
        drop();
        return;
      }
      waiting++;
      chain = chain
        .then(async () => {
          const event = await runStepEventOf(item.event, item.data, options);
          if (event && forwarder) await forwarder.accept(event);
        })
        .catch((error: unknown) => {
          failed = true;
          reject(error);
        })
        .finally(() => {
          waiting--;
        });
    });
    stream.on("end", () => {
      void chain.then(() => resolve());
    });
  });
}
