/**
 * A start-up problem an operator can fix: the message names the variable or file and what to do,
 * one line per problem, and never carries a secret or a stack trace.
 */
export class StartupError extends Error {
  override readonly name = "StartupError";
}
