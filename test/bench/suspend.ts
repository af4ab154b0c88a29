/**
 * `npm run bench -- suspend [--procs N] [--rounds N]`: a hot upgrade of demo_erl
 * 1.0.0 -> 1.0.1 with N processes (default 10,000) running the changed counter
 * module. The suspend window (first suspend sent to last resume answered) through
 * baton_upgrader, against the same four phases run by a plain script inside the VM
 * (test/erl/baton_bench_suspend.erl), each on a fresh peer, in rotating order, same
 * run; and baton_upgrader with snapshot_states => false (no get_state per process).
 * Target: ratio <= 1.0x, window < 50 ms.
 */
import { join } from 'node:path';
import { fixtures } from '../support/fixtures.js';
import { Control, newCookie, type Started, startDemoErl } from '../support/nodes.js';

function flag(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : dflt;
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} wants a positive integer`);
  return v;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export async function run(args: string[]): Promise<void> {
  const procs = flag(args, 'procs', 10_000);
  const rounds = flag(args, 'rounds', 7);
  const fx = await fixtures();
  const cookie = newCookie();
  const ctl = new Control(fx.erlEbin, cookie);
  const ebin = join(fx.demoErl['1.0.1'], 'lib', 'demo_erl-1.0.1', 'ebin');
  type Mode = 'baton' | 'baton-nosnap' | 'plain';
  const results: Record<Mode, number[]> = { baton: [], 'baton-nosnap': [], plain: [] };
  const phases: Record<string, number[]> = {};

  const once = async (mode: Mode): Promise<number> => {
    let peer: Started | undefined;
    try {
      peer = await startDemoErl(fx.demoErl['1.0.0'], { cookie });
      const n = peer.node;
      await ctl.eval(`baton_test_ctl:load('${n}', [baton_upgrader, baton_test_probe, baton_bench_suspend])`);
      await ctl.eval(`length(erpc:call('${n}', baton_test_probe, start_counters, [${procs}], 120000))`, 120_000);
      if (mode !== 'plain') {
        const opts = mode === 'baton' ? '#{}' : '#{snapshot_states => false}';
        const r = await ctl.eval<{
          status: string;
          suspend_us: number;
          suspended: unknown[];
          phases_us: Record<string, number>;
        }>(
          `R = erpc:call('${n}', baton_upgrader, upgrade, [baton_test_ctl:beams("${ebin}"), ${opts}], 120000),
           R#{suspended := length(maps:get(suspended, R))}`,
          120_000,
        );
        if (r.status !== 'ok') throw new Error(`baton_upgrader failed: ${JSON.stringify(r)}`);
        if ((r.suspended as unknown as number) !== procs + 1)
          throw new Error(`suspended ${String(r.suspended)}, wanted ${procs + 1}`);
        if (mode === 'baton') {
          for (const [k, v] of Object.entries(r.phases_us)) {
            phases[k] ??= [];
            phases[k].push(v);
          }
        }
        return r.suspend_us;
      }
      const r = await ctl.eval<{ suspend_us: number; processes: number }>(
        `erpc:call('${n}', baton_bench_suspend, plain, [baton_test_ctl:beams("${ebin}")], 120000)`,
        120_000,
      );
      if (r.processes !== procs + 1) throw new Error(`plain script saw ${r.processes} processes, wanted ${procs + 1}`);
      return r.suspend_us;
    } finally {
      await peer?.stop();
    }
  };

  try {
    console.log(`suspend window, hot upgrade demo_erl 1.0.0 -> 1.0.1, ${procs + 1} processes running demo_erl_counter`);
    for (let i = 0; i < rounds; i++) {
      // Rotate which goes first, so drift in the machine's load hits all alike.
      const modes: Mode[] = ['baton', 'plain', 'baton-nosnap'];
      const order = modes.map((_, k) => modes[(i + k) % modes.length]!);
      const line: string[] = [];
      for (const mode of order) {
        const us = await once(mode);
        results[mode].push(us);
        line.push(`${mode} ${(us / 1000).toFixed(2)} ms`);
      }
      console.log(`  round ${i + 1}: ${line.join(', ')}`);
    }
    const b = median(results.baton);
    const bn = median(results['baton-nosnap']);
    const p = median(results.plain);
    console.log(`median baton_upgrader:                         ${(b / 1000).toFixed(2)} ms (${Math.round(b)} µs)`);
    console.log(`median baton_upgrader, snapshot_states false:  ${(bn / 1000).toFixed(2)} ms (${Math.round(bn)} µs)`);
    console.log(`median plain script:                           ${(p / 1000).toFixed(2)} ms (${Math.round(p)} µs)`);
    const order = ['suspend', 'load', 'change_code', 'resume'];
    console.log(
      `baton_upgrader phases (median): ${order.map((k) => `${k} ${(median(phases[k] ?? [0]) / 1000).toFixed(2)} ms`).join(', ')}`,
    );
    console.log(`ratio baton/plain: ${(b / p).toFixed(2)}x (target <= 1.0x); window ${b < 50_000 ? '<' : '>='} 50 ms`);
    console.log(
      `ratio baton (snapshot_states false)/plain: ${(bn / p).toFixed(2)}x; window ${bn < 50_000 ? '<' : '>='} 50 ms`,
    );
  } finally {
    await ctl.close();
  }
}
