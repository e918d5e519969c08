/**
 * A real store (or any object) with some methods replaced, to inject a failure or an interleaving
 * at an exact point; every other method still acts on the real thing (private fields included).
 */
export function overriding<T extends object>(real: T, overrides: Partial<T>): T {
  return new Proxy(real, {
    get(target, name) {
      if (name in overrides) return overrides[name as keyof T];
      const value: unknown = Reflect.get(target, name, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
