/** Deepest nesting accepted anywhere in a body: far beyond any run step, far below what breaks JSON.stringify. */
export const MAX_JSON_DEPTH = 128;

/** One problem found in a JSON document, with a dot path to it. */
export interface JsonValueIssue {
  readonly path: string;
  readonly message: string;
}

const MAX_ISSUES = 10;

/**
 * Checks every value of a parsed JSON document, unknown fields included, for what JSON.parse lets
 * through but the store must not keep: ill-formed Unicode (lone surrogates), non-finite numbers
 * (`1e400` parses as Infinity) and absurd nesting. Recursion stops at MAX_JSON_DEPTH, so hostile
 * depth cannot overflow the stack; paths are only built for the values that fail.
 */
export function checkJsonValues(root: unknown): JsonValueIssue[] {
  const issues: JsonValueIssue[] = [];
  const path: string[] = [];
  const fail = (message: string) => issues.push({ path: path.join("."), message });

  const visit = (value: unknown): void => {
    if (issues.length >= MAX_ISSUES) return;
    if (typeof value === "string") {
      if (!value.isWellFormed()) fail("must be well-formed Unicode (no lone surrogates)");
      return;
    }
    if (typeof value === "number") {
      if (!Number.isFinite(value)) fail("must be a finite number");
      return;
    }
    if (typeof value !== "object" || value === null) return;
    if (path.length >= MAX_JSON_DEPTH) {
      fail(`nesting is deeper than ${MAX_JSON_DEPTH} levels`);
      return;
    }
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        path.push(String(i));
        visit(value[i]);
        path.pop();
      }
      return;
    }
    for (const key of Object.keys(value)) {
      // A bad key is reported at its object: the key itself cannot be shown faithfully.
      if (!key.isWellFormed()) {
        fail("object keys must be well-formed Unicode (no lone surrogates)");
        continue;
      }
      path.push(key);
      visit((value as Record<string, unknown>)[key]);
      path.pop();
    }
  };

  visit(root);
  return issues;
}
