/**
 * Whether a process with this pid exists (signal 0 checks without sending anything): what tells a
 * lock file left by a process that died from one held by a live one.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists, under another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
