/**
 * SIGTERM / SIGINT for a supervised peer: the first stops it gracefully (endpoint stop,
 * drain, init:stop), a second kills it at once.
 */
import type { Supervisor } from './supervisor.js';

/** Routes the signals to `sup`; returns the function that removes the handlers. */
export function stopOnSignals(sup: Supervisor, signals: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): () => void {
  const onSignal = (sig: NodeJS.Signals): void => {
    if (sup.stopping) void sup.kill(`${sig} again`);
    else void sup.stop(sig);
  };
  for (const s of signals) process.on(s, onSignal);
  return () => {
    for (const s of signals) process.off(s, onSignal);
  };
}
