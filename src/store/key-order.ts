/**
 * Compares two string key values the way DynamoDB orders them: by their UTF-8 bytes, which is
 * Unicode code point order. Negative when `a` comes first, 0 when equal, positive when `b` does.
 *
 * JavaScript's `<` compares UTF-16 code units instead, and the two disagree when a character
 * above U+FFFF (a surrogate pair, D800–DFFF) meets one from U+E000 to U+FFFF: DynamoDB puts the
 * first after the second, `<` before it. Code that merges or bounds what DynamoDB returned must
 * use DynamoDB's order, or a page can end where DynamoDB would not continue from.
 */
export function compareKeys(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}

// A code unit's place in code point order where two strings first differ: surrogates (the start
// of a character above U+FFFF) move above U+E000–U+FFFF, everything else keeps its order.
function rank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}
