/** When baton starts its peer again, and when it gives up (README, "What happens when"). */
import { describe, expect, it } from 'vitest';
import { backoff, DEFAULT_RESTART_POLICY, failuresAfterExit, givesUp, restartDelay } from '../../src/manager/index.js';

describe('restart policy', () => {
  it('backs off by doubling from the first delay up to 30 s', () => {
    expect([1, 2, 3, 4, 10].map((n) => backoff(n, 1000, 30_000))).toEqual([1000, 2000, 4000, 8000, 30_000]);
    expect(backoff(0, 1000, 30_000)).toBe(1000);
    expect([1, 2, 3, 6, 50].map((n) => restartDelay(n, DEFAULT_RESTART_POLICY))).toEqual([
      1000, 2000, 4000, 30_000, 30_000,
    ]);
  });

  it('a peer that ran more than 60 s starts the count over; one that died sooner adds to it', () => {
    const p = DEFAULT_RESTART_POLICY;
    expect(failuresAfterExit(4, 60_001, p)).toBe(1);
    expect(failuresAfterExit(4, 60_000, p)).toBe(5);
    expect(failuresAfterExit(0, 10, p)).toBe(1);
    expect(restartDelay(failuresAfterExit(4, 120_000, p), p)).toBe(1000);
  });

  it('gives up only on a first peer that failed its attempts (5 by default)', () => {
    const p = DEFAULT_RESTART_POLICY;
    expect(givesUp(4, false, p)).toBe(false);
    expect(givesUp(5, false, p)).toBe(true);
    // Once a peer has run, baton keeps trying.
    expect(givesUp(500, true, p)).toBe(false);
    expect(givesUp(1, false, { startAttempts: 1 })).toBe(true);
  });
});
