import { chmodSync, mkdirSync, statSync } from "node:fs";

/**
 * Creates `dir` (and its missing parents) readable by this user alone (0700), and tightens it to
 * 0700 when it exists with a looser mode and belongs to this user: it holds the store's data or
 * credentials, which no other local user may read. A directory of another user is left alone
 * (chmod would fail); the operator chose it.
 */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { mode, uid } = statSync(dir);
  // Stryker disable next-line OptionalChaining: process.getuid exists on every POSIX Node; Windows has no modes to tighten.
  if ((mode & 0o777) !== 0o700 && uid === process.getuid?.()) chmodSync(dir, 0o700);
}
