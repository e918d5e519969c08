import type { AttributeValue } from "@aws-sdk/client-dynamodb";

/**
 * DynamoDB's largest item, in bytes as {@link itemSize} counts them: 400 KB. A write of anything
 * larger is refused by DynamoDB, so stepwatch decides it before writing (a 413 at the edge).
 */
export const MAX_ITEM_BYTES = 400 * 1024;

const encoder = new TextEncoder();

/** UTF-8 bytes of a string. */
export function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/** Size of a number: 1 byte per two significant digits (leading and trailing zeros trimmed), plus 1. */
export function numberSize(value: string): number {
  const mantissa = (value.trim().split(/[eE]/)[0] ?? "").replace(/^[-+]/, "");
  const digits = mantissa.replace(".", "").replace(/^0+/, "").replace(/0+$/, "");
  return Math.ceil(digits.length / 2) + 1;
}

/**
 * Size of an attribute value without its name, by AWS's rules ("DynamoDB item sizes and formats"):
 * strings their UTF-8 bytes, binaries their bytes, numbers by significant digits, BOOL and NULL 1,
 * lists and maps 3 plus 1 per element, sets the sum of their elements.
 */
export function valueSize(value: AttributeValue): number {
  if (value.S !== undefined) return utf8Length(value.S);
  if (value.N !== undefined) return numberSize(value.N);
  if (value.B !== undefined) return value.B.byteLength;
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1;
  if (value.SS !== undefined) return value.SS.reduce((sum, s) => sum + utf8Length(s), 0);
  if (value.NS !== undefined) return value.NS.reduce((sum, n) => sum + numberSize(n), 0);
  if (value.BS !== undefined) return value.BS.reduce((sum, b) => sum + b.byteLength, 0);
  if (value.L !== undefined) return 3 + value.L.reduce((sum, e) => sum + 1 + valueSize(e), 0);
  if (value.M !== undefined) {
    return 3 + Object.entries(value.M).reduce((sum, [k, e]) => sum + 1 + utf8Length(k) + valueSize(e), 0);
  }
  throw new TypeError(`unknown attribute value type: ${Object.keys(value).join(",")}`);
}

/** Size of an item as DynamoDB counts it against its limits and write units: names plus values. */
export function itemSize(item: Readonly<Record<string, AttributeValue>> | undefined): number {
  if (!item) return 0;
  return Object.entries(item).reduce((sum, [name, value]) => sum + utf8Length(name) + valueSize(value), 0);
}
