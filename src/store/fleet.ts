/**
 * Where a fleet stands on an upgrade, from the per-machine results: who reported for
 * the upgrade before it (the machines expected to answer), and who has answered.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import type { CurrentDoc } from './current.js';
import { previousUpgrade } from './layers.js';
import type { MachineResult } from './results.js';
import type { Store } from './store.js';

export interface FleetOutcome {
  /** Machines that reported for the previous upgrade. */
  expected: string[];
  completed: string[];
  failed: { machine: string; error: string }[];
  timedOut: string[];
}

/** Pure: how `results` stand against the machines `expected`. */
export function fleetOutcome(
  expected: string[],
  results: Map<string, MachineResult>,
  final: boolean,
): FleetOutcome & { done: boolean } {
  const completed: string[] = [];
  const failed: FleetOutcome['failed'] = [];
  const waiting: string[] = [];
  for (const m of expected) {
    const r = results.get(m);
    if (r?.state === 'completed') completed.push(m);
    else if (r?.state === 'failed') failed.push({ machine: m, error: r.error ?? 'failed' });
    else waiting.push(m);
  }
  return { expected, completed, failed, timedOut: final ? waiting : [], done: waiting.length === 0 };
}

export interface WaitOptions {
  timeoutMs: number;
  pollMs: number;
  onProgress?: (o: FleetOutcome) => void;
}

/**
 * Waits until every machine that reported for the upgrade before `upgradeId` has a
 * final result (completed or failed) for it, or the timeout passes.
 */
export async function waitForFleet(
  store: Store,
  app: string,
  doc: CurrentDoc,
  upgradeId: string,
  opts: WaitOptions,
): Promise<FleetOutcome> {
  const prev = previousUpgrade(doc, upgradeId);
  const expected = prev === undefined ? [] : [...(await store.readResults(app, prev)).keys()].sort();
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const results = expected.length === 0 ? new Map<string, MachineResult>() : await store.readResults(app, upgradeId);
    const final = Date.now() >= deadline;
    const o = fleetOutcome(expected, results, final);
    opts.onProgress?.(o);
    if (o.done || final)
      return { expected: o.expected, completed: o.completed, failed: o.failed, timedOut: o.timedOut };
    await sleep(Math.min(opts.pollMs, Math.max(0, deadline - Date.now())));
  }
}
