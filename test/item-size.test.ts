import { describe, expect, it } from "vitest";
import { itemSize, MAX_ITEM_BYTES, numberSize, utf8Length, valueSize } from "../src/store/item-size.js";

// AWS, "DynamoDB item sizes and formats": strings count their UTF-8 bytes, binaries their bytes,
// numbers about one byte per two significant digits plus one, BOOL and NULL one byte, lists and
// maps three bytes plus one per element, sets the sum of their elements; an item, its attribute
// names plus its values. The figures below are worked out from those rules by hand.

const bytes = (n: number) => new Uint8Array(n);

describe("item sizes by DynamoDB's rules", () => {
  it("the largest item is 400 KB", () => {
    expect(MAX_ITEM_BYTES).toBe(409_600);
  });

  it("strings: UTF-8 bytes", () => {
    expect(utf8Length("")).toBe(0);
    expect(utf8Length("abc")).toBe(3);
    expect(utf8Length("é")).toBe(2);
    expect(utf8Length("€")).toBe(3);
    expect(utf8Length("😀")).toBe(4);
  });

  it.each([
    ["0", 1],
    ["7", 2],
    ["12", 2],
    ["123", 3],
    ["1234", 3],
    ["12345", 4],
    ["100", 2],
    ["-0.00120", 2],
    ["+12.5E3", 3],
    ["1e20", 2],
    [" 9007199254740991 ", 9],
  ])("a number %s: %i bytes (significant digits only)", (value, size) => {
    expect(numberSize(value)).toBe(size);
  });

  it("each kind of value", () => {
    expect(valueSize({ S: "abc" })).toBe(3);
    expect(valueSize({ N: "12345" })).toBe(4);
    expect(valueSize({ B: bytes(7) })).toBe(7);
    expect(valueSize({ BOOL: false })).toBe(1);
    expect(valueSize({ NULL: true })).toBe(1);
    expect(valueSize({ SS: ["a", "bb"] })).toBe(3);
    expect(valueSize({ NS: ["1", "12345"] })).toBe(6);
    expect(valueSize({ BS: [bytes(2), bytes(3)] })).toBe(5);
    expect(valueSize({ L: [] })).toBe(3);
    expect(valueSize({ L: [{ S: "ab" }, { N: "1" }] })).toBe(3 + (1 + 2) + (1 + 2));
    expect(valueSize({ M: {} })).toBe(3);
    expect(valueSize({ M: { k: { S: "v" }, é: { BOOL: true } } })).toBe(3 + (1 + 1 + 1) + (1 + 2 + 1));
    expect(valueSize({ L: [{ M: { a: { L: [{ NULL: true }] } } }] })).toBe(3 + 1 + (3 + 1 + 1 + (3 + 1 + 1)));
  });

  it("an attribute value of no known type is a programming error, named", () => {
    expect(() => valueSize({ X: 1 } as never)).toThrow(new TypeError("unknown attribute value type: X"));
  });

  it("an item: its names plus its values; no item, nothing", () => {
    expect(itemSize(undefined)).toBe(0);
    expect(itemSize({})).toBe(0);
    expect(itemSize({ pk: { S: "S#x" }, n: { N: "42" }, é: { B: bytes(10) } })).toBe(
      2 + 3 + (1 + 2) + (2 + 10),
    );
  });
});
