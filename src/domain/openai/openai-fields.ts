import * as v from "valibot";
import type { JsonValueIssue } from "../json-value-check.js";

/**
 * Longest OpenAI id accepted. Ids of events, responses, sessions and items become DynamoDB key
 * parts (beside a prefix and a sink id); OpenAI's are about 30–60 characters, 255 leaves room for
 * Azure and compatible servers while keeping every key far below DynamoDB's 1,024-byte sort key.
 */
export const MAX_OPENAI_ID_LENGTH = 255;

/**
 * The characters an OpenAI id may use. Keys are joined with `#` and shown in URLs and logs, so an
 * id is kept to a charset that can neither forge a key separator nor need escaping anywhere.
 */
// `*`, not `+`: an empty id is reported once, by minLength.
export const OPENAI_ID_PATTERN = /^[A-Za-z0-9_.:-]*$/;

/** A producer id that becomes part of keys: non-empty, at most 255 characters, safe charset. */
export const openAiId = (what: string) =>
  v.pipe(
    v.string(`${what} must be a string`),
    v.minLength(1, `${what} must not be empty`),
    v.maxLength(MAX_OPENAI_ID_LENGTH, `${what} must be at most ${MAX_OPENAI_ID_LENGTH} characters`),
    v.regex(OPENAI_ID_PATTERN, `${what} may only use letters, digits and _ . : -`),
  );

/** Upper bound of a timestamp: catches milliseconds sent where seconds are due (as §3 does). */
const MAX_UNIX_SECONDS = 10_000_000_000;

/** Integer Unix seconds, 0..10^10. */
export const UnixSecondsSchema = v.pipe(
  v.number("must be a number"),
  v.integer("must be a whole number of seconds"),
  v.minValue(0, "must not be negative"),
  v.maxValue(MAX_UNIX_SECONDS, "must be Unix seconds, not milliseconds (at most 10^10)"),
);

/** A token count that sums exactly in a rollup and fits a DynamoDB number. */
export const TokenCountSchema = v.pipe(
  v.number("must be a number"),
  v.integer("must be an integer"),
  v.minValue(0, "must not be negative"),
  v.maxValue(Number.MAX_SAFE_INTEGER, "must be at most 2^53 - 1 (9007199254740991)"),
);

/** A non-empty string (types, models, names): forward compatible, so no closed list. */
export const nonEmptyString = (what: string) =>
  v.pipe(v.string(`${what} must be a string`), v.minLength(1, `${what} must not be empty`));

const MAX_ISSUES = 20;

/**
 * Valibot issues in the `{path, message}` shape every 422 of the project carries (the same as
 * run-step-event's: dot paths, "is required" for a missing key), at most 20, under `prefix`.
 */
export function issuesOf(issues: readonly v.BaseIssue<unknown>[], prefix = ""): JsonValueIssue[] {
  return issues.slice(0, MAX_ISSUES).map((issue) => {
    const path = v.getDotPath(issue) ?? "";
    return {
      path: prefix && path ? `${prefix}.${path}` : prefix || path,
      message: issue.input === undefined && issue.kind === "schema" ? "is required" : issue.message,
    };
  });
}
