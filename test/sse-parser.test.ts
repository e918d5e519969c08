import { describe, expect, it } from "vitest";
import { type SseEvent, SseParser } from "../src/relay/sse-parser.js";

/** Every event the chunks give, one parser from the first chunk to end(). */
const parse = (chunks: Array<string | Uint8Array>, options: { maxEventChars?: number } = {}): SseEvent[] => {
  const parser = new SseParser(options);
  return [...chunks.flatMap((c) => parser.push(c)), ...parser.end()];
};

/** The text cut at every position into two chunks, then into one chunk per character. */
const splits = (text: string): string[][] => [
  ...Array.from({ length: text.length - 1 }, (_, i) => [text.slice(0, i + 1), text.slice(i + 1)]),
  [...text],
];

const bytes = (...parts: Array<string | number[]>): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "string" ? [...new TextEncoder().encode(p)] : p)));
const BOM = [0xef, 0xbb, 0xbf];

describe("SSE parser: fields (WHATWG event stream interpretation)", () => {
  it("names an event without an event field, the stream's first included, message", () => {
    expect(parse(["data: first\n\nevent: named\ndata: second\n\ndata: third\n\n"])).toEqual([
      { event: "message", data: "first" },
      { event: "named", data: "second" },
      { event: "message", data: "third" },
    ]);
  });

  it("reads a line without a colon as a field with an empty value", () => {
    expect(parse(["data\n\n"])).toEqual([{ event: "message", data: "" }]);
    expect(parse(["data\ndata\n\n"])).toEqual([{ event: "message", data: "\n" }]);
    expect(parse(["event: a\nevent\ndata: x\n\n"])).toEqual([{ event: "message", data: "x" }]);
  });

  it("dispatches a data field with an empty value; one space after the colon is dropped, no more", () => {
    expect(parse(["data:\n\n"])).toEqual([{ event: "message", data: "" }]);
    expect(parse(["data:  two\ndata:none\n\n"])).toEqual([{ event: "message", data: " two\nnone" }]);
    expect(parse(["data: a:b: c\n\n"])).toEqual([{ event: "message", data: "a:b: c" }]);
  });

  it("ignores comments, id, retry and unknown fields; field names are case-sensitive", () => {
    const stream = ": hi\n:\nid: 7\nretry: 3000\nfoo: bar\nData: no\nEvent: no\n data: no\ndata: yes\n\n";
    expect(parse([stream])).toEqual([{ event: "message", data: "yes" }]);
    // A blank line after nothing but ignored fields dispatches nothing.
    expect(parse(["id: 1\nretry: 10\n: c\nevent: e\n\ndata: z\n\n"])).toEqual([
      { event: "message", data: "z" },
    ]);
  });

  it("ignores a colon line even when its text would read as a field", () => {
    expect(parse([":data: hidden\ndata: shown\n\n"])).toEqual([{ event: "message", data: "shown" }]);
  });
});

describe("SSE parser: line ends and chunks", () => {
  it("ends lines on LF, CR and CRLF alike, however the chunks are cut", () => {
    const expected = [
      { event: "a", data: "1\n2" },
      { event: "message", data: "3" },
    ];
    for (const eol of ["\n", "\r", "\r\n"]) {
      const text = `event: a${eol}data: 1${eol}data: 2${eol}${eol}data: 3${eol}${eol}`;
      expect(parse([text])).toEqual(expected);
      for (const chunks of splits(text)) expect(parse(chunks), JSON.stringify(chunks)).toEqual(expected);
    }
  });

  it("reads CR then LF as one line end only when adjacent, across a chunk cut too", () => {
    // CR LF is one line end; LF CR is two; CR, then a chunk starting with CR, is two.
    expect(parse(["data: x\r\n\r\n"])).toEqual([{ event: "message", data: "x" }]);
    expect(parse(["data: x\n\rdata: y\n\n"])).toEqual([
      { event: "message", data: "x" },
      { event: "message", data: "y" },
    ]);
    expect(parse(["data: x\r", "\r"])).toEqual([{ event: "message", data: "x" }]);
    expect(parse(["data: x\r", "data: y\r", "\r"])).toEqual([{ event: "message", data: "x\ny" }]);
    expect(parse(["data: x\n", "\n"])).toEqual([{ event: "message", data: "x" }]);
    expect(parse(["data: x\r", "", "\n\n"])).toEqual([{ event: "message", data: "x" }]);
  });

  it("decodes UTF-8 split inside a sequence", () => {
    const all = bytes("data: é€😀\n\n");
    for (let cut = 1; cut < all.length; cut++) {
      expect(parse([all.subarray(0, cut), all.subarray(cut)])).toEqual([{ event: "message", data: "é€😀" }]);
    }
  });

  it("drops a last event not ended by a blank line, and a last line not ended at all", () => {
    expect(parse(["data: a\n\ndata: b\n"])).toEqual([{ event: "message", data: "a" }]);
    expect(parse(["data: a\n\ndata: b"])).toEqual([{ event: "message", data: "a" }]);
    const parser = new SseParser();
    expect(parser.push("data: a\n\ndata: b\n")).toEqual([{ event: "message", data: "a" }]);
    expect(parser.end()).toEqual([]);
  });

  it("starts afresh after end(): nothing of the dropped event or line reaches the next stream", () => {
    const parser = new SseParser();
    parser.push("event: old\ndata: old\ndata: torn");
    expect(parser.end()).toEqual([]);
    expect(parser.push("data: new\n\n")).toEqual([{ event: "message", data: "new" }]);
    // A stream whose over-long line was cut off: the next stream's first line is read.
    const small = new SseParser({ maxEventChars: 4 });
    small.push("data: too long");
    small.end();
    expect(small.push("data: ok\n\n")).toEqual([{ event: "message", data: "ok" }]);
    // The next stream may open with a BOM of its own.
    parser.push(Uint8Array.from([...BOM, ...bytes("data: a\n\n")]));
    parser.end();
    expect(parser.push(Uint8Array.from([...BOM, ...bytes("data: b\n\n")]))).toEqual([
      { event: "message", data: "b" },
    ]);
    expect(parser.end()).toEqual([]);
  });
});

describe("SSE parser: byte order mark", () => {
  it("ignores one leading BOM, in bytes (even cut inside it) or in text", () => {
    const expected = [{ event: "message", data: "x" }];
    const stream = bytes(BOM, "data: x\n\n");
    for (let cut = 0; cut <= 4; cut++) {
      expect(parse([stream.subarray(0, cut), stream.subarray(cut)])).toEqual(expected);
    }
    expect(parse(["\uFEFFdata: x\n\n"])).toEqual(expected);
    expect(parse(["", "\uFEFF", "data: x\n\n"])).toEqual(expected);
  });

  it("ignores no second BOM, and none later in the stream", () => {
    // The second BOM is part of the field name "\uFEFFdata", which names nothing.
    expect(parse([bytes(BOM, BOM, "data: x\n\n")])).toEqual([]);
    expect(parse(["\uFEFF\uFEFFdata: x\n\n"])).toEqual([]);
    expect(parse(["data: a\n\n", "\uFEFFdata: b\n\n"])).toEqual([{ event: "message", data: "a" }]);
    expect(parse(["data: a", "\uFEFF\n\n"])).toEqual([{ event: "message", data: "a\uFEFF" }]);
    expect(parse(["data: \uFEFF", "\n\n"])).toEqual([{ event: "message", data: "\uFEFF" }]);
  });
});

describe("SSE parser: size limit", () => {
  it("keeps data of exactly the limit, over lines and within one line, whole or in pieces", () => {
    expect(parse(["data: 12345\ndata: 67890\n\n"], { maxEventChars: 10 })).toEqual([
      { event: "message", data: "12345\n67890" },
    ]);
    // The line itself, "data: " included, is exactly the limit while it waits for its end.
    expect(parse(["data: 1234", "\n\n"], { maxEventChars: 10 })).toEqual([
      { event: "message", data: "1234" },
    ]);
  });

  it("drops an event whose data lines add up to more than the limit, even arriving at once", () => {
    expect(parse(["data: 12345\ndata: 678901\n\nevent: next\ndata: ok\n\n"], { maxEventChars: 10 })).toEqual([
      { event: "next", data: "ok" },
    ]);
  });

  it("drops the whole event of a line over the limit, its lines before and after too", () => {
    const out = parse(
      ["event: big\ndata: before\ndata: ", "x".repeat(30), "\ndata: after\n\ndata: next\n\n"],
      { maxEventChars: 12 },
    );
    expect(out).toEqual([{ event: "message", data: "next" }]);
    // Its line end arriving on its own, in the next chunk.
    expect(
      parse([`data: ${"x".repeat(20)}`, "\ndata: tail\n\ndata: next\n\n"], { maxEventChars: 12 }),
    ).toEqual([{ event: "message", data: "next" }]);
  });

  it("counts every long line, not only data: an over-long event name drops its event", () => {
    expect(
      parse([`event: ${"e".repeat(10)}`, `${"e".repeat(10)}\ndata: x\n\ndata: y\n\n`], { maxEventChars: 12 }),
    ).toEqual([{ event: "message", data: "y" }]);
  });
});
