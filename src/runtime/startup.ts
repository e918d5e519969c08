import { ConfigError } from "../config/config-schema.js";
import { describeError } from "../observability/logger.js";
import { StartupError } from "./startup-error.js";

/**
 * What a runtime prints when stepwatch cannot start: one line per problem, each naming the
 * variable or file to fix, never a value or a stack.
 */
export function startupErrorMessage(error: unknown): string {
  if (error instanceof ConfigError) return error.message;
  if (error instanceof StartupError)
    return `stepwatch could not start: ${error.message.replaceAll("\n", "\nstepwatch could not start: ")}`;
  return `stepwatch could not start: ${describeError(error)}`;
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
