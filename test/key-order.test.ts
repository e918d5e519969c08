import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compareKeys } from "../src/store/key-order.js";

// DynamoDB orders string keys by their UTF-8 bytes; Buffer.compare of the bytes is that order.
const byBytes = (a: string, b: string) => Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));

describe("compareKeys: DynamoDB's order of string keys", () => {
  it("agrees with a comparison of the UTF-8 bytes, for any strings", () => {
    // Any character (no lone surrogates: keys are well-formed), often one of a few, so that two
    // strings share prefixes and differ where the orders could part.
    const character = fc.oneof(
      fc.constantFrom("a", "#", "\uffee", "\u{1f600}"),
      fc
        .integer({ min: 0, max: 0x10ffff })
        .filter((c) => c < 0xd800 || c > 0xdfff)
        .map((c) => String.fromCodePoint(c)),
    );
    const text = fc.array(character, { maxLength: 6 }).map((cs) => cs.join(""));
    fc.assert(
      fc.property(text, text, (a, b) => Math.sign(compareKeys(a, b)) === byBytes(a, b)),
      { numRuns: 1_000 },
    );
  });

  it("puts characters above U+FFFF after every one below, where UTF-16 units would not", () => {
    // At each edge of the ranges that change places, and at each end of Unicode.
    const characters = [
      "\u0000",
      "a",
      "\u07ff",
      "\u0800",
      "\ud7ff",
      "\ue000",
      "\uffee",
      "\uffff",
      "\u{10000}",
      "\u{1f600}",
      "\u{dffff}",
      "\u{10ffff}",
    ];
    for (const [i, low] of characters.entries()) {
      for (const high of characters.slice(i + 1)) {
        expect(compareKeys(low, high), `${low.codePointAt(0)} < ${high.codePointAt(0)}`).toBeLessThan(0);
        expect(compareKeys(`k#${high}`, `k#${low}z`)).toBeGreaterThan(0);
      }
      expect(compareKeys(low, low)).toBe(0);
    }
  });

  it("orders a prefix before what extends it", () => {
    expect(compareKeys("0000000000001#", "0000000000001#step")).toBeLessThan(0);
    expect(compareKeys("0000000000001#step", "0000000000001#")).toBeGreaterThan(0);
    expect(compareKeys("", "")).toBe(0);
  });
});
