/**
 * Reading a peer's log file (its stdout and stderr) while the peer writes it: the last
 * part for an error message, what was added since a position (`baton run` forwards it),
 * and waiting for it to go quiet (a dying VM's last reports are written asynchronously).
 * A file that is missing or rotated reads as empty, never as an error.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** Size in bytes; 0 when the file is missing. */
export function logSize(path: string): number {
  return withFd(path, 0, (fd) => fstatSync(fd).size);
}

/** At most `maxBytes` from byte `from` on, and the position after them. */
export function readFrom(path: string, from: number, maxBytes: number): { text: string; next: number } {
  return withFd(path, { text: '', next: from }, (fd) => {
    const size = fstatSync(fd).size;
    // A file shorter than the position was truncated or replaced: start over.
    const start = size < from ? 0 : from;
    const buf = Buffer.alloc(Math.min(size - start, maxBytes));
    const n = buf.length === 0 ? 0 : readSync(fd, buf, 0, buf.length, start);
    return { text: buf.subarray(0, n).toString('utf8'), next: start + n };
  });
}

/** The last `maxBytes` of the file. */
export function lastBytes(path: string, maxBytes: number): string {
  return readFrom(path, Math.max(0, logSize(path) - maxBytes), maxBytes).text;
}

/**
 * Calls `out` with what is appended to the file, polled every `intervalMs`, from its
 * start or from its current end. Returns the function that stops following.
 */
export function followLog(
  path: string,
  out: (s: string) => void,
  o: { fromStart: boolean; intervalMs?: number },
): () => void {
  let pos = o.fromStart ? 0 : logSize(path);
  const t = setInterval(() => {
    const r = readFrom(path, pos, 1 << 20);
    pos = r.next;
    if (r.text !== '') out(r.text);
  }, o.intervalMs ?? 250);
  return () => clearInterval(t);
}

/**
 * Resolves once the file has not grown for `quietMs`, after at most `maxMs`, or as soon
 * as `writing()` says nothing writes it any more.
 */
export async function waitQuiet(
  path: string,
  o: { maxMs: number; quietMs: number; writing?: () => boolean },
): Promise<void> {
  const deadline = Date.now() + o.maxMs;
  let size = logSize(path);
  let quietSince = Date.now();
  while (Date.now() < deadline && (o.writing?.() ?? true)) {
    await sleep(25);
    const now = logSize(path);
    if (now !== size) {
      size = now;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= o.quietMs) return;
  }
}

function withFd<T>(path: string, missing: T, fn: (fd: number) => T): T {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return missing;
  }
  try {
    return fn(fd);
  } catch {
    return missing;
  } finally {
    closeSync(fd);
  }
}
