/** One dispatched server-sent event: its `event:` name ("message" when absent) and joined `data:` lines. */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
}

/** Lines longer than this are cut off: a hostile or broken upstream cannot grow the relay's memory. */
const DEFAULT_MAX_EVENT_CHARS = 8 * 1024 * 1024;

/**
 * An incremental parser of `text/event-stream` (the WHATWG rules: LF, CR or CRLF line ends, `:`
 * comments, one optional space after the colon, multi-line `data:` joined with LF, dispatch on a
 * blank line). Chunks may be split anywhere, inside a line, a CRLF or a UTF-8 sequence.
 * Written here rather than taken from a library because none is a dependency of stepwatch and the
 * rules fit in this file; the openai SDK's own decoder is internal to it and a dev dependency only.
 */
export class SseParser {
  readonly #decoder = new TextDecoder("utf-8");
  readonly #maxEventChars: number;
  #buffer = "";
  #event = "";
  #data: string[] = [];
  #dataChars = 0;
  #oversized = false;
  #sawCr = false;
  #skipLine = false;

  constructor(options: { maxEventChars?: number } = {}) {
    this.#maxEventChars = options.maxEventChars ?? DEFAULT_MAX_EVENT_CHARS;
  }

  /** Feeds a chunk; returns the events it completed, in order. */
  push(chunk: string | Uint8Array): SseEvent[] {
    const text = typeof chunk === "string" ? chunk : this.#decoder.decode(chunk, { stream: true });
    return this.#consume(text, false);
  }

  /** Ends the stream: a last event not followed by a blank line is dropped, as the standard says. */
  end(): SseEvent[] {
    return this.#consume(this.#decoder.decode(), true);
  }

  #consume(text: string, final: boolean): SseEvent[] {
    const out: SseEvent[] = [];
    let input = text;
    // A CR ended the previous chunk: an LF starting this one belongs to that same line end.
    if (this.#sawCr && input.startsWith("\n")) input = input.slice(1);
    this.#sawCr = false;
    let start = 0;
    for (let i = 0; i < input.length; i++) {
      const c = input.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (this.#skipLine) this.#skipLine = false;
      else this.#line(this.#buffer + input.slice(start, i), out);
      this.#buffer = "";
      if (c === 13) {
        if (i + 1 < input.length) {
          if (input.charCodeAt(i + 1) === 10) i++;
        } else {
          this.#sawCr = true;
        }
      }
      start = i + 1;
    }
    if (!final) {
      this.#buffer += input.slice(start);
      if (this.#buffer.length > this.#maxEventChars) {
        // The rest of this line is skipped, and the event it belongs to is never dispatched.
        this.#buffer = "";
        this.#skipLine = true;
        this.#oversized = true;
      }
    }
    return out;
  }

  #line(line: string, out: SseEvent[]): void {
    if (line === "") {
      if (this.#data.length > 0 && !this.#oversized) {
        out.push({ event: this.#event || "message", data: this.#data.join("\n") });
      }
      this.#event = "";
      this.#data = [];
      this.#dataChars = 0;
      this.#oversized = false;
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.#event = value;
    else if (field === "data") {
      this.#dataChars += value.length;
      if (this.#dataChars > this.#maxEventChars) this.#oversized = true;
      else this.#data.push(value);
    }
  }
}
