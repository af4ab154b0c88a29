/**
 * When a peer is started again, and when baton gives up: pure, so each rule is a unit
 * test. Restarts back off doubling from `backoffMs` up to `maxBackoffMs`; a peer that
 * ran longer than `resetAfterMs` starts the count over; only the first peer has a
 * limited number of attempts (once one has run, baton keeps trying).
 */

export interface RestartPolicy {
  /** Attempts to start the first peer before giving up. */
  startAttempts: number;
  /** First delay before a restart. */
  backoffMs: number;
  /** Largest delay. */
  maxBackoffMs: number;
  /** A peer that ran longer than this starts the backoff over. */
  resetAfterMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  startAttempts: 5,
  backoffMs: 1000,
  maxBackoffMs: 30_000,
  resetAfterMs: 60_000,
};

/** Delay before restart attempt `n` (1-based): doubling from `base`, capped at `max`. */
export function backoff(n: number, base: number, max: number): number {
  return Math.min(max, base * 2 ** Math.max(0, n - 1));
}

/** The failure count once a peer that ran for `ranMs` has exited. */
export function failuresAfterExit(failures: number, ranMs: number, p: Pick<RestartPolicy, 'resetAfterMs'>): number {
  return (ranMs > p.resetAfterMs ? 0 : failures) + 1;
}

/** Whether a failed start ends supervision: only while no peer has ever run. */
export function givesUp(failures: number, everStarted: boolean, p: Pick<RestartPolicy, 'startAttempts'>): boolean {
  return !everStarted && failures >= p.startAttempts;
}

/** The delay before the next start after `failures` failures in a row. */
export function restartDelay(failures: number, p: Pick<RestartPolicy, 'backoffMs' | 'maxBackoffMs'>): number {
  return backoff(failures, p.backoffMs, p.maxBackoffMs);
}
