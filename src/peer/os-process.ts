/**
 * OS processes a peer is made of: its process group (the VM, erl_child_setup, port
 * programs), signalled as one, and the exit of a VM that may not be baton's child (a
 * re-adopted peer), which can only be polled.
 */
import type { ChildProcess } from 'node:child_process';

export interface ProcessExit {
  /** Exit status; `null` when killed by a signal or when it cannot be known (not our child). */
  code: number | null;
  signal: string | null;
}

/** Signals every process of the group `pid` leads; a group already gone is no error. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Gone already.
  }
}

/** Whether a process with this pid exists (EPERM: it does, as another user's). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Exit of a process that is not our child: polled every `intervalMs` (no exit status to be had). */
export function watchPid(pid: number, intervalMs = 200): Promise<ProcessExit> {
  return new Promise((resolve) => {
    const t = setInterval(() => {
      if (!pidAlive(pid)) {
        clearInterval(t);
        resolve({ code: null, signal: null });
      }
    }, intervalMs);
    t.unref();
  });
}

/** Exit of our child; a child that could not be spawned at all counts as exited with neither. */
export function childExit(child: ChildProcess): Promise<ProcessExit> {
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
}

/** `signal SIGKILL` or `status 1`, for messages. */
export function exitText(e: ProcessExit): string {
  return e.signal !== null ? `signal ${e.signal}` : `status ${String(e.code)}`;
}
