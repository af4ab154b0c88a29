/** Exponential backoff with jitter for store calls that failed for reasons worth retrying. */
import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Told before each wait, so the CLI can say the store is being retried. */
  onRetry?: (attempt: number, delayMs: number, err: unknown) => void;
}

export const defaultRetry: RetryPolicy = { attempts: 5, baseDelayMs: 200, maxDelayMs: 5_000 };

export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  // Full jitter keeps many machines polling one store from retrying in lockstep.
  return Math.round(exp / 2 + (Math.random() * exp) / 2);
}

/**
 * Runs `fn` until it succeeds, `retryable(err)` says no, or attempts run out; then
 * `giveUp(lastErr, attempts)` builds what is thrown.
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  fn: () => Promise<T>,
  retryable: (err: unknown) => boolean,
  giveUp: (err: unknown, attempts: number) => unknown,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!retryable(err)) throw err;
      if (attempt >= policy.attempts) throw giveUp(err, attempt);
      const delay = backoffDelay(policy, attempt);
      policy.onRetry?.(attempt, delay, err);
      await sleep(delay);
    }
  }
}
