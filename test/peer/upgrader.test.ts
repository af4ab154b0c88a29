/**
 * baton_upgrader inside a real demo_erl 1.0.0 release, upgraded to 1.0.1 (and to
 * broken variants of it). The upgrader and a probe are loaded into the peer from
 * binaries, as baton will load them; a hidden control node drives them over erpc.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Fixtures, fixtures } from '../support/fixtures.js';
import { KeepAlive } from '../support/keepalive.js';
import { Control, getJson, newCookie, type Started, startDemoErl, startInteractive } from '../support/nodes.js';

interface Proc {
  pid: string;
  name: string | null;
  initial_call: [string, string, number] | null;
}
interface UpgradeResult {
  status: 'ok' | 'error';
  reason?: unknown;
  reloaded: string[];
  added: string[];
  unchanged: string[];
  suspended: Proc[];
  timed_out: Proc[];
  not_suspended: Proc[];
  change_code_failed: Array<[Proc, unknown]>;
  rolled_back: boolean;
  not_rolled_back: string[];
  states_not_restored: Proc[];
  old_code_kept: string[];
  suspend_us: number;
  phases_us?: Partial<Record<'suspend' | 'load' | 'change_code' | 'resume', number>>;
  total_us: number;
}

let fx: Fixtures;
let ctl: Control;
const cookie = newCookie();
let peer: Started | undefined;
let ebin101: string;

beforeAll(async () => {
  fx = await fixtures();
  ctl = new Control(fx.erlEbin, cookie);
  ebin101 = join(fx.demoErl['1.0.1'], 'lib', 'demo_erl-1.0.1', 'ebin');
});

afterAll(async () => {
  await peer?.stop();
  await ctl?.close();
});

function node(): string {
  if (peer === undefined) throw new Error('no peer');
  return peer.node;
}

/** An Erlang expression calling Fun on the peer. */
function on(fun: string, args: string): string {
  const [m, f] = fun.split(':');
  return `erpc:call('${node()}', ${m}, ${f}, [${args}], 60000)`;
}

function upgrade(beamsExpr: string, opts = '#{}'): Promise<UpgradeResult> {
  return ctl.eval<UpgradeResult>(on('baton_upgrader:upgrade', `${beamsExpr}, ${opts}`), 90_000);
}

/** `Expr`'s value printed by Erlang (`~w`), exact where JSON numbers would not be. */
const erlText = (expr: string): string => `unicode:characters_to_binary(io_lib:format("~w", [${expr}]))`;
/** The `vsn` attribute of the module loaded on the peer now. */
const vsnOf = (mod: string): Promise<string> =>
  ctl.eval<string>(erlText(`proplists:get_value(vsn, ${on(`${mod}:module_info`, 'attributes')})`));
const md5 = (mod: string): Promise<string> => ctl.eval<string>(on('baton_test_probe:md5', mod));
const names = (ps: Proc[]): Array<string | null> => ps.map((p) => p.name).sort();

async function bump(times: number): Promise<unknown> {
  let last: unknown;
  for (let i = 0; i < times; i++) last = await getJson(peer!.port, '/counter');
  return last;
}

describe('baton_upgrader, demo_erl 1.0.0 -> 1.0.1', () => {
  // A fresh 1.0.0 peer per test: every test starts from the same code and state.
  beforeEach(async () => {
    peer = await startDemoErl(fx.demoErl['1.0.0'], { cookie });
    await ctl.eval(`baton_test_ctl:load('${peer.node}', [baton_upgrader, baton_test_probe])`);
  });

  afterEach(async () => {
    await peer?.stop();
    peer = undefined;
  });

  it('keeps the counter through code_change, reloads only changed modules, suspends only their processes', async () => {
    expect(await bump(3)).toEqual({ count: 3, state: 'integer' });
    const before = await ctl.eval<Record<string, string>>(
      `maps:from_list([{M, ${on('baton_test_probe:md5', 'M')}} || M <- [demo_erl_http, demo_erl_counter]])`,
    );
    // A keep-alive connection opened on the old code, used again after the upgrade.
    const conn = await KeepAlive.open(peer!.port);
    expect((await conn.get('/counter')).body).toEqual({ count: 4, state: 'integer' });
    const tracer = await ctl.eval<string>(on('baton_test_probe:trace_suspends', ''));
    const oldVsn = await vsnOf('demo_erl_counter');

    const r = await upgrade(`baton_test_ctl:beams("${ebin101}")`);

    const seen = await ctl.eval<string[]>(on('baton_test_probe:suspends_seen', `list_to_pid("${tracer}")`));
    expect(r.status).toBe('ok');
    expect(r.reloaded.sort()).toEqual(['demo_erl_counter', 'demo_erl_vsn']);
    expect(r.added).toEqual([]);
    expect(r.unchanged).toEqual(
      expect.arrayContaining([
        'demo_erl_acceptor',
        'demo_erl_app',
        'demo_erl_http',
        'demo_erl_listener',
        'demo_erl_sup',
      ]),
    );
    // Only the counter runs a changed module; the sup, listener, acceptors and
    // connections were not sent a suspend at all (seen from the side, by tracing).
    expect(names(r.suspended)).toEqual(['demo_erl_counter']);
    const counterPid = await ctl.eval<string>(on('erlang:whereis', 'demo_erl_counter'));
    expect(seen).toEqual([counterPid]);
    expect(r.timed_out).toEqual([]);
    expect(r.suspend_us).toBeGreaterThan(0);
    expect(r.suspend_us).toBeLessThan(1_000_000);
    const phases = r.phases_us ?? {};
    expect(Object.keys(phases).sort()).toEqual(['change_code', 'load', 'resume', 'suspend']);
    const sum = Object.values(phases).reduce((a, b) => a + b, 0);
    expect(Math.abs(sum - r.suspend_us)).toBeLessThanOrEqual(1);

    expect((await conn.get('/counter')).body).toEqual({ count: 5, state: 'map' });
    expect((await conn.get('/')).body).toMatchObject({ version: '1.0.1' });
    conn.close();
    expect(await getJson(peer!.port, '/counter')).toEqual({ count: 6, state: 'map' });
    // code_change got the vsn attribute of the code it replaced (the 1.0.0 module's, not
    // the new one's), compared as Erlang text: the attribute is a 128-bit integer.
    const state = await ctl.eval<{ count: number; migrated_from: string }>(
      `S = ${on('sys:get_state', 'demo_erl_counter')}, #{count => maps:get(count, S), migrated_from => ${erlText('maps:get(migrated_from, S)')}}`,
    );
    expect(state.count).toBe(6);
    expect(oldVsn).toMatch(/^\[\d+\]$/);
    expect(state.migrated_from).toBe(oldVsn);
    expect(await vsnOf('demo_erl_counter')).not.toBe(oldVsn);
    expect(await md5('demo_erl_http')).toBe(before['demo_erl_http']);
    expect(await md5('demo_erl_counter')).not.toBe(before['demo_erl_counter']);
    expect(await ctl.eval(on('baton_test_probe:sys_state', '[demo_erl_counter]'))).toEqual(['running']);
  });

  it('upgrades a module loaded from a binary with no file, and loads new modules', async () => {
    await ctl.eval(
      on(
        'code:load_binary',
        `baton_test_hand, "no/such/dir/baton_test_hand.beam", baton_test_ctl:module_binary(baton_test_hand, 1)`,
      ),
    );
    const r = await upgrade(
      `[{baton_test_hand, "no/such/dir/baton_test_hand.beam", baton_test_ctl:module_binary(baton_test_hand, 2)},
        {baton_test_new, "no/such/dir/baton_test_new.beam", baton_test_ctl:module_binary(baton_test_new, new)}
        | baton_test_ctl:beams("${ebin101}")]`,
    );
    expect(r.status).toBe('ok');
    expect(r.reloaded.sort()).toEqual(['baton_test_hand', 'demo_erl_counter', 'demo_erl_vsn']);
    expect(r.added).toEqual(['baton_test_new']);
    expect(await ctl.eval(on('baton_test_hand:v', ''))).toBe(2);
    // Called from a process that did not exist during the upgrade.
    expect(await ctl.eval(`erpc:call('${node()}', erlang, apply, [fun baton_test_new:v/0, []])`)).toBe('new');
    expect(await getJson(peer!.port, '/counter')).toEqual({ count: 1, state: 'map' });

    // Again: the code replaced above is still there as old code and must be purged
    // first; nothing runs it, so softly.
    const again = await upgrade(
      `[{baton_test_hand, "no/such/dir/baton_test_hand.beam", baton_test_ctl:module_binary(baton_test_hand, 3)}]`,
    );
    expect(again).toMatchObject({ status: 'ok', reloaded: ['baton_test_hand'], suspended: [] });
    expect(await ctl.eval(on('baton_test_hand:v', ''))).toBe(3);
  });

  it('does not wait for processes that only happen to run a changed module, and sends plain ones nothing', async () => {
    await ctl.eval(
      on(
        'code:load_binary',
        `baton_test_hand, "no/such/dir/baton_test_hand.beam", baton_test_ctl:module_binary(baton_test_hand, 1)`,
      ),
    );
    // A plain process (spawn) and a proc_lib one, both in a receive loop of a module
    // the upgrade changes, neither sys-compliant.
    const plain = await ctl.eval<string>(on('erlang:spawn', 'baton_test_hand, loop, []'));
    const special = await ctl.eval<string>(on('proc_lib:spawn', 'baton_test_hand, loop, []'));
    const tracer = await ctl.eval<string>(on('baton_test_probe:trace_suspends', ''));
    const r = await upgrade(
      `[{baton_test_hand, "no/such/dir/baton_test_hand.beam", baton_test_ctl:module_binary(baton_test_hand, 2)}
        | baton_test_ctl:beams("${ebin101}")]`,
      '#{suspend_timeout => 1000}',
    );
    const seen = await ctl.eval<string[]>(on('baton_test_probe:suspends_seen', `list_to_pid("${tracer}")`));
    expect(r.status).toBe('ok');
    expect(names(r.suspended)).toEqual(['demo_erl_counter']);
    expect(r.not_suspended.map((p) => p.pid).sort()).toEqual([plain, special].sort());
    expect(r.timed_out).toEqual([]);
    // The proc_lib one was asked (and could not answer); the plain one was not.
    expect(seen).toContain(special);
    expect(seen).not.toContain(plain);
    expect(await ctl.eval(on('baton_test_hand:v', ''))).toBe(2);
    expect(await getJson(peer!.port, '/counter')).toEqual({ count: 1, state: 'map' });
    // Both still run, in the old code they are in (kept, not purged under them).
    expect(
      await ctl.eval(
        `[erpc:call('${node()}', erlang, is_process_alive, [list_to_pid(P)]) || P <- ["${plain}", "${special}"]]`,
      ),
    ).toEqual([true, true]);
    expect(r.old_code_kept).toContain('baton_test_hand');
  });

  it('aborts on a corrupt beam before anything is suspended, and keeps serving the old code', async () => {
    await bump(2);
    const before = await md5('demo_erl_counter');
    const tracer = await ctl.eval<string>(on('baton_test_probe:trace_suspends', ''));

    // demo_erl_vsn's Code chunk is garbage but its md5 computes: only the loader,
    // in prepare_loading, can refuse it.
    const r = await upgrade(
      `[case B of
          {demo_erl_vsn, F, Bin} -> {demo_erl_vsn, F, baton_test_ctl:corrupt_code(Bin)};
          _ -> B
        end || B <- baton_test_ctl:beams("${ebin101}")]`,
    );
    const seen = await ctl.eval<string[]>(on('baton_test_probe:suspends_seen', `list_to_pid("${tracer}")`));
    expect(r.status).toBe('error');
    expect(r.reason).toEqual(['prepare_failed', [['demo_erl_vsn', 'badfile']]]);
    expect(r.suspended).toEqual([]);
    expect(seen).toEqual([]);
    expect(await md5('demo_erl_counter')).toBe(before);
    expect(await getJson(peer!.port, '/counter')).toEqual({ count: 3, state: 'integer' });
    expect(await getJson(peer!.port, '/')).toMatchObject({ version: '1.0.0' });

    // A binary that is not a beam at all is refused the same way.
    const r2 = await upgrade(`[{demo_erl_counter, "x.beam", <<"not a beam">>}]`);
    expect(r2).toMatchObject({
      status: 'error',
      reason: ['prepare_failed', [['demo_erl_counter', 'badfile']]],
      suspended: [],
    });
  });

  it('a process that cannot be suspended in time: all resumed, old code kept, reported by name', async () => {
    await bump(1);
    const before = await md5('demo_erl_counter');
    const others = await ctl.eval<string[]>(on('baton_test_probe:start_counters', '20'));
    const holder = await ctl.eval<string>(on('baton_test_probe:hold', 'demo_erl_counter'));
    try {
      const r = await upgrade(`baton_test_ctl:beams("${ebin101}")`, '#{suspend_timeout => 1000}');
      expect(r.status).toBe('error');
      expect(r.reason).toBe('suspend_timeout');
      expect(names(r.timed_out)).toEqual(['demo_erl_counter']);
      expect(r.suspended.map((p) => p.pid).sort()).toEqual([...others].sort());
      expect(await md5('demo_erl_counter')).toBe(before);
      const pids = others.map((p) => `list_to_pid("${p}")`).join(',');
      expect(await ctl.eval(on('baton_test_probe:sys_state', `[${pids}]`))).toEqual(others.map(() => 'running'));
    } finally {
      await ctl.eval(on('baton_test_probe:release', `list_to_pid("${holder}")`));
    }
    // The suspend it got late was followed by a resume: it runs, on the old code.
    expect(await ctl.eval(on('baton_test_probe:sys_state', '[demo_erl_counter]'))).toEqual(['running']);
    expect(await getJson(peer!.port, '/counter')).toEqual({ count: 2, state: 'integer' });
    expect(await getJson(peer!.port, '/')).toMatchObject({ version: '1.0.0' });
  });

  it('a crashing code_change rolls back to the old binaries and the old states', async () => {
    await bump(3); // odd: the broken code_change crashes on this one
    const before = await md5('demo_erl_counter');
    const others = await ctl.eval<string[]>(on('baton_test_probe:start_counters', '4'));
    const pids = others.map((p) => `list_to_pid("${p}")`);
    // Counts 0, 1, 2, 3: the even ones migrate, the odd ones crash.
    for (const [i, p] of pids.entries()) {
      for (let k = 0; k < i; k++) await ctl.eval(on('demo_erl_counter:bump', p));
    }
    const r = await upgrade(`baton_test_ctl:beams("${fx.brokenCounterDir}")`);
    expect(r.status).toBe('error');
    expect(r.reason).toBe('change_code_failed');
    expect(r.rolled_back).toBe(true);
    expect(r.not_rolled_back).toEqual([]);
    expect(r.states_not_restored).toEqual([]);
    const failedPids = r.change_code_failed.map(([p]) => p.pid).sort();
    expect(failedPids).toEqual(
      [await ctl.eval<string>(on('erlang:whereis', 'demo_erl_counter')), others[1]!, others[3]!].sort(),
    );
    expect(await md5('demo_erl_counter')).toBe(before);
    // The even ones had been migrated to maps; they are integers again, same counts.
    expect(await ctl.eval(on('baton_test_probe:counts', `[${pids.join(',')}]`))).toEqual([
      [0, 'integer'],
      [1, 'integer'],
      [2, 'integer'],
      [3, 'integer'],
    ]);
    expect(await ctl.eval(on('baton_test_probe:sys_state', `[demo_erl_counter, ${pids.join(',')}]`))).toEqual(
      Array(5).fill('running'),
    );
    expect(await getJson(peer!.port, '/counter')).toEqual({ count: 4, state: 'integer' });
  });

  it('without state snapshots, a rollback names the processes whose state it could not put back', async () => {
    const others = await ctl.eval<string[]>(on('baton_test_probe:start_counters', '2'));
    await ctl.eval(on('demo_erl_counter:bump', `list_to_pid("${others[1]}")`));
    // Registered counter at 0 and others[0] at 0 migrate; others[1] at 1 crashes.
    const r = await upgrade(`baton_test_ctl:beams("${fx.brokenCounterDir}")`, '#{snapshot_states => false}');
    expect(r).toMatchObject({ status: 'error', reason: 'change_code_failed', rolled_back: true, not_rolled_back: [] });
    expect(r.change_code_failed.map(([p]) => p.pid)).toEqual([others[1]]);
    const counter = await ctl.eval<string>(on('erlang:whereis', 'demo_erl_counter'));
    expect(r.states_not_restored.map((p) => p.pid).sort()).toEqual([counter, others[0]!].sort());
  });

  it('a rollback names the modules it could not restore (no binary of the old code anywhere)', async () => {
    await ctl.eval(
      on(
        'code:load_binary',
        `baton_test_hand, "no/such/dir/baton_test_hand.beam", baton_test_ctl:module_binary(baton_test_hand, 1)`,
      ),
    );
    await bump(1);
    const before = await md5('demo_erl_counter');
    const r = await upgrade(
      `[{baton_test_hand, "no/such/dir/baton_test_hand.beam", baton_test_ctl:module_binary(baton_test_hand, 2)}
        | baton_test_ctl:beams("${fx.brokenCounterDir}")]`,
    );
    expect(r).toMatchObject({
      status: 'error',
      reason: 'change_code_failed',
      rolled_back: true,
      not_rolled_back: ['baton_test_hand'],
    });
    expect(await md5('demo_erl_counter')).toBe(before);
    expect(await getJson(peer!.port, '/counter')).toEqual({ count: 2, state: 'integer' });
  });

  describe('a gen_event handler whose module changed', () => {
    // Versions of one handler module: 1 keeps an integer, 2 a map (its code_change
    // converts), 3's code_change crashes. Version 1 is loaded from a file, so that a
    // rollback finds its binary.
    const dir = mkdtempSync(join(tmpdir(), 'baton-evh-'));
    const beamFile = join(dir, 'baton_test_evh.beam');
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const source = (vsn: 1 | 2 | 3): string => {
      const common = `-module(baton_test_evh). -behaviour(gen_event).
        -export([init/1, handle_event/2, handle_call/2, handle_info/2, code_change/3]).
        handle_info(_, S) -> {ok, S}.`;
      const body = {
        1: `init(_) -> {ok, 0}. handle_event(bump, N) -> {ok, N + 1}. handle_call(get, N) -> {ok, {v1, N}, N}.
            code_change(_, S, _) -> {ok, S}.`,
        2: `init(_) -> {ok, #{count => 0}}. handle_event(bump, #{count := N} = S) -> {ok, S#{count := N + 1}}.
            handle_call(get, S) -> {ok, {v2, S}, S}. code_change(_, N, _) when is_integer(N) -> {ok, #{count => N}}.`,
        3: `init(_) -> {ok, 0}. handle_event(bump, N) -> {ok, N + 1}. handle_call(get, N) -> {ok, {v3, N}, N}.
            code_change(_, _, _) -> error(boom).`,
      }[vsn];
      return `baton_test_ctl:module_from_source("${common} ${body}")`;
    };
    const handler = (vsn: 2 | 3): string => `{baton_test_evh, "${beamFile}", ${source(vsn)}}`;

    beforeEach(async () => {
      await ctl.eval(`file:write_file("${beamFile}", ${source(1)})`);
      await ctl.eval(on('code:load_binary', `baton_test_evh, "${beamFile}", ${source(1)}`));
      await ctl.eval(on('gen_event:start', '{local, baton_test_em}'));
      await ctl.eval(on('gen_event:add_handler', 'baton_test_em, baton_test_evh, []'));
      for (let i = 0; i < 3; i++) await ctl.eval(on('gen_event:sync_notify', 'baton_test_em, bump'));
    });

    it("suspends its manager (found with get_modules) and migrates the handler's state", async () => {
      const r = await upgrade(`[${handler(2)}]`);
      expect(r.status).toBe('ok');
      expect(r.reloaded).toEqual(['baton_test_evh']);
      expect(names(r.suspended)).toContain('baton_test_em');
      expect(await ctl.eval(on('gen_event:call', 'baton_test_em, baton_test_evh, get'))).toEqual(['v2', { count: 3 }]);
      await ctl.eval(on('gen_event:sync_notify', 'baton_test_em, bump'));
      expect(await ctl.eval(on('gen_event:call', 'baton_test_em, baton_test_evh, get'))).toEqual(['v2', { count: 4 }]);
    });

    it("a crashing handler code_change rolls back to the old code and the handler's old state", async () => {
      const r = await upgrade(`[${handler(3)}]`);
      expect(r).toMatchObject({
        status: 'error',
        reason: 'change_code_failed',
        rolled_back: true,
        not_rolled_back: [],
      });
      expect(names(r.change_code_failed.map(([p]) => p))).toEqual(['baton_test_em']);
      expect(await ctl.eval(on('gen_event:call', 'baton_test_em, baton_test_evh, get'))).toEqual(['v1', 3]);
    });
  });

  it('refuses a sticky (OTP) module before suspending anything', async () => {
    const r = await upgrade(
      `[{lists, "lists.beam", baton_test_ctl:module_binary(lists, 1)} | baton_test_ctl:beams("${ebin101}")]`,
    );
    expect(r).toMatchObject({
      status: 'error',
      reason: ['prepare_failed', [['lists', 'sticky_directory']]],
      suspended: [],
    });
    expect(await getJson(peer!.port, '/')).toMatchObject({ version: '1.0.0' });
  });

  it('runs one upgrade at a time: a second one while the first is suspending is refused as busy', async () => {
    const holder = await ctl.eval<string>(on('baton_test_probe:hold', 'demo_erl_counter'));
    try {
      // The first waits 1.5 s for the held counter; the second starts once the first
      // runs, from a process of the peer's own.
      const r = await ctl.eval<[UpgradeResult, UpgradeResult]>(
        `Beams = baton_test_ctl:beams("${ebin101}"),
         erpc:call('${node()}', erlang, apply, [fun() ->
           Self = self(),
           spawn(fun() -> Self ! {first, baton_upgrader:upgrade(Beams, #{suspend_timeout => 1500})} end),
           WaitRunning = fun W(0) -> error(first_never_started);
                             W(K) -> case whereis(baton_upgrader_running) of
                                         undefined -> timer:sleep(10), W(K - 1);
                                         _ -> ok
                                     end
                         end,
           ok = WaitRunning(500),
           Second = baton_upgrader:upgrade(Beams, #{}),
           receive {first, First} -> [First, Second] end
         end, []], 30000)`,
        40_000,
      );
      expect(r[0]).toMatchObject({ status: 'error', reason: 'suspend_timeout' });
      expect(r[1]).toMatchObject({ status: 'error', reason: 'busy', suspended: [] });
    } finally {
      await ctl.eval(on('baton_test_probe:release', `list_to_pid("${holder}")`));
    }
    // Free again once the first is done.
    expect((await upgrade(`baton_test_ctl:beams("${ebin101}")`)).status).toBe('ok');
    expect(await getJson(peer!.port, '/counter')).toEqual({ count: 1, state: 'map' });
  });

  it('an unchanged release reloads nothing and suspends nothing', async () => {
    const same = join(fx.demoErl['1.0.0'], 'lib', 'demo_erl-1.0.0', 'ebin');
    const r = await upgrade(`baton_test_ctl:beams("${same}")`);
    expect(r).toMatchObject({ status: 'ok', reloaded: [], added: [], suspended: [], suspend_us: 0 });
    expect(r.unchanged.length).toBeGreaterThan(5);
  });
});

describe('baton_upgrader in a peer booted as baton boots one (start_clean, interactive code loading)', () => {
  let ipeer: Started | undefined;

  afterAll(async () => {
    await ipeer?.stop();
  });

  it('upgrades 1.0.0 -> 1.0.1; OTP modules are sticky there too', async () => {
    ipeer = await startInteractive(fx.demoErl['1.0.0'], '1.0.0', 'demo_erl', { cookie });
    const n = ipeer.node;
    await ctl.eval(`baton_test_ctl:load('${n}', [baton_upgrader])`);
    expect(await ctl.eval(`erpc:call('${n}', code, get_mode, [])`)).toBe('interactive');
    expect(await ctl.eval(`erpc:call('${n}', code, is_sticky, [lists])`)).toBe(true);
    expect(await getJson(ipeer.port, '/counter')).toEqual({ count: 1, state: 'integer' });

    const r = await ctl.eval<UpgradeResult>(
      `erpc:call('${n}', baton_upgrader, upgrade, [baton_test_ctl:beams("${ebin101}"), #{}], 60000)`,
      70_000,
    );
    expect(r.status).toBe('ok');
    expect(r.reloaded.sort()).toEqual(['demo_erl_counter', 'demo_erl_vsn']);
    expect(names(r.suspended)).toEqual(['demo_erl_counter']);
    expect(await getJson(ipeer.port, '/counter')).toEqual({ count: 2, state: 'map' });
    expect(await getJson(ipeer.port, '/')).toEqual({ version: '1.0.1', node: n });
  });
});
