import { ConfigError } from "../config/config-schema.js";
import { describeError } from "../observability/logger.js";

/** The one line a runtime prints when stepwatch cannot start: the variable to fix, never a value or a stack. */
export function startupErrorMessage(error: unknown): string {
  return error instanceof ConfigError ? error.message : `stepwatch could not start: ${describeError(error)}`;
}

/**
 * Starts something once, from the input of the first call, and shares it (per isolate, per Lambda
 * environment). A failed start is not
 * kept: the next caller tries again and reports the failure itself, rather than answering from a
 * stale rejection.
 */
export function startOnce<A, T>(start: (input: A) => Promise<T>): (input: A) => Promise<T> {
  let started: Promise<T> | undefined;
  return (input) => {
    if (!started) {
      started = start(input);
      started.catch(() => {
        started = undefined;
      });
    }
    return started;
  };
}
