/** What `baton run` says for each supervision event: the lines its users (and the run tests) read. */
import { describe, expect, it } from 'vitest';
import { eventLine } from '../../src/cli/run.js';
import type { Peer, StopResult } from '../../src/peer/index.js';

// Only what the wording reads of a peer.
const peer = { node: 'app-3@h', osPid: 4242 } as Peer;
const cfg = { drainMs: 15_000 };
const stopped = (r: Partial<StopResult>): string | undefined =>
  eventLine({ type: 'stopped', peer, result: { endpoint: 'ok', leftOpen: 0, killed: false, ...r } }, cfg);

describe('baton run event lines', () => {
  it('words starts, failures, restarts and giving up', () => {
    expect(eventLine({ type: 'progress', line: 'starting peer app-3@h' }, cfg)).toBe('starting peer app-3@h');
    expect(eventLine({ type: 'adopted', peer }, cfg)).toBe('re-adopted peer app-3@h (os pid 4242); not restarted');
    expect(eventLine({ type: 'adopt_failed', error: new Error('gone') }, cfg)).toBe('gone; starting a new peer');
    expect(eventLine({ type: 'running', peer, adopted: false }, cfg)).toBeUndefined();
    expect(eventLine({ type: 'start_failed', error: new Error('boom'), failures: 1 }, cfg)).toBe('boom');
    expect(eventLine({ type: 'retrying', delayMs: 2000, attempt: 3 }, cfg)).toBe(
      'starting again in 2000 ms (attempt 3)',
    );
    expect(eventLine({ type: 'gave_up', failures: 5 }, cfg)).toBe('the peer failed to start 5 times; giving up');
    expect(eventLine({ type: 'exited', peer, exit: { code: null, signal: 'SIGKILL' }, delayMs: 200 }, cfg)).toBe(
      'peer app-3@h exited (SIGKILL); restarting in 200 ms',
    );
    expect(eventLine({ type: 'exited', peer, exit: { code: 1, signal: null }, delayMs: 400 }, cfg)).toBe(
      'peer app-3@h exited (status 1); restarting in 400 ms',
    );
  });

  it('words the stop: the signal, the drain bound, what was left', () => {
    expect(eventLine({ type: 'stopping', reason: 'SIGTERM' }, cfg)).toBe(
      'SIGTERM: stopping the peer (drain up to 15000 ms)',
    );
    expect(eventLine({ type: 'killing', reason: 'SIGINT again' }, cfg)).toBe('SIGINT again: killing the peer');
    expect(stopped({})).toBe('peer app-3@h stopped');
    expect(stopped({ leftOpen: 2, killed: true, endpoint: 'fallback: no_listener' })).toBe(
      'peer app-3@h stopped; 2 connection(s) still open after the drain; it was killed after not exiting in time (endpoint: fallback: no_listener)',
    );
  });
});
