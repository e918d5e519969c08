import type { Server, ServerResponse } from "node:http";
import { Socket } from "node:net";

/** Bounds of a lingering close: what is read and discarded after an answer, and for how long. */
export interface LingerLimits {
  /** The most a closing connection is read for after its answer. */
  readonly lingerMs: number;
  /** The most it may send meanwhile; beyond it the connection is dropped. */
  readonly lingerBytes: number;
  /**
   * At shutdown, an idle keep-alive connection is closed once nothing has arrived on it for this
   * long: a request already on its way is answered (with `Connection: close`) instead.
   */
  readonly quietMs: number;
}

/** The connections of a Node HTTP server, as {@link manageConnections} keeps them. */
export interface ManagedConnections {
  /** Requests received and not yet answered. */
  readonly requestsInFlight: number;
  /**
   * From now on every answer carries `Connection: close`, the ones being prepared included, and
   * each keep-alive connection is closed (lingeringly) once no request is arriving on it. Call it
   * with `server.close()`, whose callback then runs once the last connection is gone.
   */
  drain(): void;
}

// The answer in progress on a connection; the linger state of one that is closing.
const RESPONSE = Symbol("response");
const LINGERING = Symbol("lingering");
// At shutdown: the connection's bytesRead when last looked at, and since when it has not moved.
const SEEN_BYTES = Symbol("seenBytes");
const QUIET_SINCE = Symbol("quietSince");

interface ManagedSocket extends Socket {
  [RESPONSE]?: ServerResponse | undefined;
  [LINGERING]?: boolean;
  [SEEN_BYTES]?: number;
  [QUIET_SINCE]?: number;
}

// How often the drain looks for connections that have gone quiet.
const DRAIN_TICK_MS = 25;

/**
 * Closes connections the way an early refusal and a shutdown need, on Node's HTTP server:
 * - an answer sent before its request's body was read (a refusal from the headers alone) closes
 *   its connection lingeringly, as nginx's `lingering_close` does: the write side is shut after the
 *   answer, and what the client still sends is read and discarded (at most `lingerBytes`, for at
 *   most `lingerMs`) before the socket is closed. Closing at once, with unread bytes, makes the
 *   kernel answer them with a reset, which can destroy the answer before the client reads it: the
 *   client sees EPIPE or ECONNRESET instead of its 401 or 413.
 * - {@link ManagedConnections.drain} for a shutdown that loses no request it received.
 * The hot path pays one property write per request; the rest runs only on a refusal or a drain.
 */
export function manageConnections(server: Server, limits: LingerLimits): ManagedConnections {
  const sockets = new Set<ManagedSocket>();
  let requests = 0;
  let draining = false;

  // Node's server calls destroySoon() to close a connection after an answer marked `Connection:
  // close`; this one lingers instead when that answer's request was not read to its end.
  function destroySoon(this: ManagedSocket) {
    const response = this[RESPONSE];
    if (this[LINGERING] || (response && !response.req.complete)) linger(this, limits);
    else Socket.prototype.destroySoon.call(this);
  }

  server.on("connection", (socket: ManagedSocket) => {
    sockets.add(socket);
    socket.destroySoon = destroySoon;
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("request", (request, response) => {
    requests++;
    const socket = request.socket as ManagedSocket;
    socket[RESPONSE] = response;
    response.once("close", () => {
      requests--;
      if (socket[RESPONSE] === response) socket[RESPONSE] = undefined;
    });
    // Once draining, no connection is kept for another request: each ends with its answer.
    if (draining) response.shouldKeepAlive = false;
  });

  const closeQuiet = () => {
    const now = Date.now();
    for (const socket of sockets) {
      if (socket[LINGERING] || socket[RESPONSE] !== undefined) continue;
      // Bytes that moved since the last look are a request arriving: leave it to be answered.
      if (socket[SEEN_BYTES] !== socket.bytesRead) {
        socket[SEEN_BYTES] = socket.bytesRead;
        socket[QUIET_SINCE] = now;
      } else if (now - (socket[QUIET_SINCE] ?? now) >= limits.quietMs) {
        linger(socket, limits);
      }
    }
  };

  return {
    get requestsInFlight() {
      return requests;
    },
    drain() {
      if (draining) return;
      draining = true;
      for (const socket of sockets) {
        // Answers still being prepared close their connection too; one whose headers are out
        // leaves its connection idle, and the quiet check below closes it.
        const response = socket[RESPONSE];
        if (response && !response.headersSent) response.shouldKeepAlive = false;
      }
      closeQuiet();
      const timer = setInterval(closeQuiet, DRAIN_TICK_MS);
      server.once("close", () => clearInterval(timer));
    },
  };
}

// Shuts the write side once the answer is out, then reads and discards until the client closes
// its side, sends too much, or takes too long.
function linger(socket: ManagedSocket, limits: LingerLimits): void {
  if (socket[LINGERING]) return;
  socket[LINGERING] = true;
  let bytes = 0;
  const timer = setTimeout(() => socket.destroy(), limits.lingerMs);
  socket.once("close", () => clearTimeout(timer));
  socket.once("end", () => socket.destroy());
  // Nothing that arrives now can be answered, so nothing reaches the HTTP parser: the server's
  // 'data' listener goes, and adding this one takes the socket off the parser's native read path.
  // A request racing the close is not received at all (the client sees the connection closed),
  // rather than received and left without an answer.
  socket.removeAllListeners("data");
  socket.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > limits.lingerBytes) socket.destroy();
  });
  socket.end();
  socket.resume();
}
