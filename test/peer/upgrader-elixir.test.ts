/**
 * baton_upgrader in an Elixir release: demo_ex 0.1.0 -> 0.1.1 hot, where the change is
 * a protocol implementation, so the consolidated protocol module must be shipped and
 * loaded too (fly_deploy 0.1.8) and a new implementation module is added (0.1.15).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixtures, fixtures } from '../support/fixtures.js';
import { Control, getJson, newCookie, type Started, startDemoEx } from '../support/nodes.js';

let fx: Fixtures;
let ctl: Control;
const cookie = newCookie();
let peer: Started | undefined;

beforeAll(async () => {
  fx = await fixtures();
  ctl = new Control(fx.erlEbin, cookie);
  peer = await startDemoEx(fx.demoEx, { cookie, env: { DEMO_EX_VALUE: 'green' } });
  await ctl.eval(`baton_test_ctl:load('${peer.node}', [baton_upgrader])`);
});

afterAll(async () => {
  await peer?.stop();
  await ctl?.close();
});

describe('baton_upgrader, demo_ex 0.1.0 -> 0.1.1', () => {
  it('loads the consolidated protocol with its new implementation; the release keeps serving', async () => {
    const n = peer!.node;
    expect(await getJson(peer!.port, '/')).toMatchObject({ describe: `info(${n}, GREEN/prod)`, consolidated: true });
    expect(await ctl.eval(`erpc:call('${n}', 'Elixir.DemoEx.Describe', impl_for, [some_atom])`)).toBe('nil');

    const next = fx.demoExNext;
    // A module in both places ships once: the consolidated protocol wins over the
    // plain one from ebin (as the release's own code path orders them).
    const r = await ctl.eval<{
      status: string;
      reloaded: string[];
      added: string[];
      unchanged: string[];
      suspended: unknown[];
    }>(
      `C = baton_test_ctl:beams("${join(next, 'releases', '0.1.1', 'consolidated')}"),
       E = [B || {M, _, _} = B <- baton_test_ctl:beams("${join(next, 'lib', 'demo_ex-0.1.1', 'ebin')}"),
                 not lists:keymember(M, 1, C)],
       erpc:call('${n}', baton_upgrader, upgrade, [C ++ E, #{}], 60000)`,
      70_000,
    );
    expect(r.status).toBe('ok');
    expect(r.reloaded).toEqual(
      expect.arrayContaining(['Elixir.DemoEx.Describe', 'Elixir.DemoEx.Describe.DemoEx.Info']),
    );
    expect(r.reloaded).not.toContain('Elixir.DemoEx.Http');
    expect(r.added).toEqual(['Elixir.DemoEx.Describe.Atom']);
    expect(r.unchanged).toEqual(
      expect.arrayContaining(['Elixir.DemoEx.Http', 'Elixir.DemoEx.Listener', 'Elixir.Enumerable']),
    );
    expect(r.suspended).toEqual([]);

    expect(await getJson(peer!.port, '/')).toMatchObject({
      describe: `info-next(${n}, GREEN/prod)`,
      consolidated: true,
    });
    expect(await ctl.eval(`erpc:call('${n}', 'Elixir.DemoEx.Describe', impl_for, [some_atom])`)).toBe(
      'Elixir.DemoEx.Describe.Atom',
    );
    expect(await ctl.eval(`erpc:call('${n}', 'Elixir.DemoEx.Describe', describe, [some_atom])`)).toBe(
      'atom(some_atom)',
    );
  });
});
