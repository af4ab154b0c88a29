/** Release inspection and `--mode auto` on real rebar3 releases that differ in one thing each. */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { atom, charlist, tuple } from '../../src/etf/index.js';
import { consult, decideMode, detectKind, inspectRelease, type ReleaseInfo } from '../../src/release/index.js';
import { buildTinyRelease, type TinyRelease } from './helpers/fixture.js';

let work: string;
const rel: Record<string, string> = {};
const variants: Record<string, TinyRelease> = {
  base: {},
  code: { hello: 'changed' },
  newModule: { hello: 'changed', extraModule: true },
  appAdded: { withExtraApp: true },
  appUpgraded: { appVsn: '0.2.0' },
  appEnv: { appEnvExtra: '{flag, true}' },
  sysConfig: { greeting: 'bonjour' },
  vmArgs: { vmArgsExtra: '+P 2000000\n' },
  supervisor: { supChildren: '#{id => w, start => {tiny_worker, start_link, []}}' },
};

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'baton-auto-'));
  for (const [name, v] of Object.entries(variants)) rel[name] = buildTinyRelease(work, name, v);
  // Another ERTS: the same release claiming to run on another one.
  rel.erts = join(work, 'erts-variant');
  cpSync(rel.base!, rel.erts, { recursive: true });
  writeFileSync(join(rel.erts, 'releases/start_erl.data'), '14.2 0.1.0\n');
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

const info = (name: string): ReleaseInfo => inspectRelease(rel[name]!);

describe('inspectRelease', () => {
  it('reads version, ERTS, applications with their .app data, sys.config and vm.args', () => {
    const i = info('base');
    expect(i.kind).toBe('full');
    expect(detectKind(rel.base!)).toBe('full');
    expect(i.version).toBe('0.1.0');
    expect(i.ertsVersion).toMatch(/^\d+\.\d+/);
    expect(i.apps.map((a) => a.name)).toEqual(['kernel', 'stdlib', 'tiny']);
    const tiny = i.apps.find((a) => a.name === 'tiny')!;
    expect(tiny).toMatchObject({ vsn: '0.1.0', dir: 'lib/tiny-0.1.0' });
    expect(tiny.modules.sort()).toEqual(['tiny_app', 'tiny_sup', 'tiny_worker']);
    expect(tiny.beams.get('tiny_sup')?.behaviours).toEqual(['supervisor']);
    expect(i.sysConfig).toEqual([[tuple(atom('tiny'), [tuple(atom('greeting'), charlist('hi'))])]]);
    expect(i.vmArgs).toMatch(/-sname tiny/);
  });
});

describe('decideMode', () => {
  const cases: [string, 'hot' | 'blue-green', string[]][] = [
    ['code', 'hot', []],
    ['newModule', 'hot', []],
    ['erts', 'blue-green', [`ERTS changed: ${'{erts}'} -> 14.2`]],
    ['appAdded', 'blue-green', ['application added: extra 1.0.0']],
    ['appUpgraded', 'blue-green', ['application upgraded: tiny 0.1.0 -> 0.2.0']],
    ['appEnv', 'blue-green', ['application tiny: tiny.app changed (beyond its modules list)']],
    ['sysConfig', 'blue-green', ['sys.config changed']],
    ['vmArgs', 'blue-green', ['vm.args changed']],
    ['supervisor', 'blue-green', ['supervisor changed: tiny_sup']],
  ];
  for (const [name, mode, reasons] of cases) {
    it(`${name}: ${mode}`, () => {
      const base = info('base');
      const d = decideMode(base, info(name));
      expect(d.mode).toBe(mode);
      expect(d.reasons).toEqual(reasons.map((r) => r.replace('{erts}', base.ertsVersion ?? '')));
    });
  }

  it('an application removed is a reason too, and a code-only change lists the changed modules', () => {
    expect(decideMode(info('appAdded'), info('base')).reasons).toEqual(['application removed: extra']);
    expect([...decideMode(info('base'), info('newModule')).changedModules]).toEqual([
      ['tiny', ['tiny_extra', 'tiny_worker']],
    ]);
  });
});

describe('consult', () => {
  it('reads the term syntax of .app and sys.config files', () => {
    const [t] = consult(
      `%% comment\n{a, 'B c', "s\\n", <<"bin"/utf8>>, [1, -2.5, 16#ff, $a | [x]], #{k => v}, 1.0e3}.`,
    );
    expect(t).toEqual(
      tuple(
        atom('a'),
        atom('B c'),
        charlist('s\n'),
        Buffer.from('bin'),
        [1, -2.5, 255, 97, atom('x')],
        new Map([[atom('k'), atom('v')]]),
        expect.anything(),
      ),
    );
    expect(consult('[{demo, [{greeting, <<104,105>>}]}].')).toEqual([
      [tuple(atom('demo'), [tuple(atom('greeting'), Buffer.from('hi'))])],
    ]);
    expect(() => consult('<<256>>.')).toThrow(/binary segments must be strings or bytes/);
    expect(() => consult('{a, b', 'f.config')).toThrow(/cannot read Erlang terms in f\.config at offset 5/);
  });
});
