import { timingSafeEqual } from "hono/utils/buffer";

/** Compares two strings without revealing, by its timing, where they differ. */
export type TokenEquality = (a: string, b: string) => Promise<boolean>;

/**
 * Whether `candidate` is one of `tokens`. Every token is compared, in constant time, whether or not
 * an earlier one matched: stopping at the first match (as Hono's bearerAuth does over a list) would
 * tell a caller, by the answer's timing, how far down the list a token sits.
 */
export async function matchesAnyToken(
  tokens: readonly string[],
  candidate: string,
  equal: TokenEquality = timingSafeEqual,
): Promise<boolean> {
  const results = await Promise.all(tokens.map((token) => equal(token, candidate)));
  return results.includes(true);
}
