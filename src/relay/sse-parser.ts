/** One dispatched server-sent event: its `event:` name ("message" when absent) and joined `data:` lines. */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
}

/** Lines longer than this are cut off: a hostile or broken upstream cannot grow the relay's memory. */
const DEFAULT_MAX_EVENT_CHARS = 8 * 1024 * 1024;

/**
 * An incremental parser of `text/event-stream` (the WHATWG rules: one leading BOM ignored, LF, CR
 * or CRLF line ends, `:` comments, one optional space after the colon, multi-line `data:` joined
 * with LF, dispatch on a blank line). Chunks may be split anywhere, inside a line, a CRLF or a UTF-8
 * sequence, and may be text or bytes.
 * Written here rather than taken from a library because none is a dependency of stepwatch and the
 * rules fit in this file; the openai SDK's own decoder is internal to it and a dev dependency only.
 */
export class SseParser {
  // The BOM is dropped below, for text chunks too; the decoder dropping one as well would drop two.
  readonly #decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  readonly #maxEventChars: number;
  #started = false;
  #buffer = "";
  #event = "";
  #data: string[] = [];
  #dataChars = 0;
  #oversized = false;
  // Stryker disable next-line BooleanLiteral: an LF it would swallow is a blank line with nothing pending
  #sawCr = false;
  #skipLine = false;

  constructor(options: { maxEventChars?: number } = {}) {
    this.#maxEventChars = options.maxEventChars ?? DEFAULT_MAX_EVENT_CHARS;
  }

  /** Feeds a chunk; returns the events it completed, in order. */
  push(chunk: string | Uint8Array): SseEvent[] {
    const text = typeof chunk === "string" ? chunk : this.#decoder.decode(chunk, { stream: true });
    return this.#consume(text);
  }

  /**
   * Ends the stream: a last event not followed by a blank line is dropped, as the standard says
   * (what is still pending holds no line end, so no event completes here). The parser is then
   * ready for another stream.
   */
  end(): SseEvent[] {
    this.#decoder.decode();
    this.#started = false;
    this.#buffer = "";
    this.#skipLine = false;
    // #sawCr may stay: an LF it swallows would be a blank line with nothing pending.
    this.#resetEvent();
    return [];
  }

  #consume(text: string): SseEvent[] {
    const out: SseEvent[] = [];
    let input = text;
    if (!this.#started && input !== "") {
      this.#started = true;
      if (input.startsWith("\uFEFF")) input = input.slice(1);
    }
    // A CR ended the previous chunk: an LF starting this one belongs to that same line end.
    if (this.#sawCr && input.startsWith("\n")) input = input.slice(1);
    this.#sawCr = false;
    let start = 0;
    // Stryker disable next-line EqualityOperator: charCodeAt past the end is NaN, which is no line end
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
    this.#buffer += input.slice(start);
    if (this.#buffer.length > this.#maxEventChars) {
      // The rest of this line is skipped, and the event it belongs to is never dispatched.
      // Stryker disable next-line StringLiteral: whatever is left here is dropped at the line end
      this.#buffer = "";
      this.#skipLine = true;
      this.#oversized = true;
    }
    return out;
  }

  #resetEvent(): void {
    this.#event = "";
    this.#data = [];
    this.#dataChars = 0;
    this.#oversized = false;
  }

  #line(line: string, out: SseEvent[]): void {
    if (line === "") {
      if (this.#data.length > 0 && !this.#oversized) {
        out.push({ event: this.#event || "message", data: this.#data.join("\n") });
      }
      this.#resetEvent();
      return;
    }
    // A comment (`:` first) has the empty field name, ignored like every field not named below.
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
