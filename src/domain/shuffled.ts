/**
 * A copy of `items` in random order (Fisher–Yates): sweepers walk partitions in their own order,
 * so several at once spread over the partitions instead of racing for the first.
 */
export function shuffled<T>(items: readonly T[], random: () => number = Math.random): T[] {
  const copy = [...items];
  // Stryker disable next-line EqualityOperator: at i = 0 the only draw is j = 0, a swap of the first item with itself.
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}
