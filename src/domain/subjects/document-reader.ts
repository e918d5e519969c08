import type { SubjectView } from "../subject.js";

/**
 * Lenient reads of a stored document's fields: a wrong or missing field reads as empty, never as
 * an error, because a stored subject was validated when it arrived and must render however the
 * schemas have moved since.
 */
export const reader = {
  /** A string field, or `fallback`. */
  str(doc: Readonly<Record<string, unknown>> | null, key: string, fallback = ""): string {
    const value = doc?.[key];
    return typeof value === "string" ? value : fallback;
  },
  /** A string field, or null. */
  strOrNull(doc: Readonly<Record<string, unknown>> | null, key: string): string | null {
    const value = doc?.[key];
    return typeof value === "string" ? value : null;
  },
  /** A finite number field, or null. */
  num(doc: Readonly<Record<string, unknown>> | null, key: string): number | null {
    const value = doc?.[key];
    return typeof value === "number" && Number.isFinite(value) ? value : null;
  },
  /** An object field (not an array), or null. */
  obj(doc: Readonly<Record<string, unknown>> | null, key: string): Readonly<Record<string, unknown>> | null {
    const value = doc?.[key];
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  },
  /** An array field, or an empty one. */
  list(doc: Readonly<Record<string, unknown>> | null, key: string): readonly unknown[] {
    const value = doc?.[key];
    return Array.isArray(value) ? value : [];
  },
  /** A map of strings (metadata): non-string values left out; null when absent. */
  strings(
    doc: Readonly<Record<string, unknown>> | null,
    key: string,
  ): Readonly<Record<string, string>> | null {
    const value = reader.obj(doc, key);
    if (!value) return null;
    // fromEntries defines own properties, so a key named `__proto__` stays a key, not a prototype.
    return Object.fromEntries(
      Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === "string"),
    );
  },
  /** Token usage under the given names, or null when any is missing. */
  usage(
    usage: Readonly<Record<string, unknown>> | null,
    prompt: string,
    completion: string,
    total: string,
  ): SubjectView["usage"] {
    const p = reader.num(usage, prompt);
    const c = reader.num(usage, completion);
    const t = reader.num(usage, total);
    return p === null || c === null || t === null
      ? null
      : { prompt_tokens: p, completion_tokens: c, total_tokens: t };
  },
};
