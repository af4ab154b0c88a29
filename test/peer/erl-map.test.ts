/** The reader of the maps baton's Erlang helpers answer with: typed fields, absent when missing or mistyped. */
import { describe, expect, it } from 'vitest';
import { atom, charlist, decode, encode, type Term, Tuple } from '../../src/etf/index.js';
import { ErlMap, termList, termText } from '../../src/peer/erl-map.js';

/** Through the codec, as an answer from a peer would arrive. */
function answer(entries: Array<[string, Term]>): Term {
  return decode(encode(new Map<Term, Term>(entries.map(([k, v]) => [atom(k), v]))));
}

describe('ErlMap', () => {
  const m = ErlMap.of(
    answer([
      ['kind', atom('phoenix')],
      ['http', Buffer.from('[{port,4000}]')],
      ['port', 4000],
      ['ok', atom('true')],
      ['no', atom('false')],
      ['mods', [atom('a'), atom('b')]],
      ['procs', [new Map<Term, Term>([[atom('name'), atom('x')]]), atom('not_a_map')]],
      [
        'phases_us',
        new Map<Term, Term>([
          [atom('load'), 12],
          [atom('resume'), 3],
          [Buffer.from('bin'), 1],
        ]),
      ],
      ['chars', charlist('abc')],
    ]),
  );

  it('reads each field by its type', () => {
    expect(m.atom('kind')).toBe('phoenix');
    expect(m.text('kind')).toBe('phoenix');
    expect(m.binary('http')).toBe('[{port,4000}]');
    expect(m.text('http')).toBe('[{port,4000}]');
    expect(m.number('port')).toBe(4000);
    expect(m.flag('ok')).toBe(true);
    expect(m.flag('no')).toBe(false);
    expect(m.list('mods').map(termText)).toEqual(['a', 'b']);
    expect(m.maps('procs').map((p) => p.atom('name'))).toEqual(['x', undefined]);
    expect(m.map('phases_us').numbers()).toEqual({ load: 12, resume: 3 });
    expect(m.list('chars')).toEqual([97, 98, 99]);
  });

  it('a missing or mistyped field is absent, not an error', () => {
    expect(m.get('missing')).toBeUndefined();
    expect(m.atom('port')).toBeUndefined();
    expect(m.binary('kind')).toBeUndefined();
    expect(m.number('kind')).toBeUndefined();
    expect(m.flag('missing')).toBe(false);
    expect(m.list('port')).toEqual([]);
    expect(m.map('kind').numbers()).toEqual({});
    expect(ErlMap.of(atom('undefined')).get('kind')).toBeUndefined();
    expect(ErlMap.of(undefined).list('x')).toEqual([]);
  });

  it('termText and termList', () => {
    expect(termText(new Tuple([atom('a')]))).toBe(String(new Tuple([atom('a')])));
    expect(termText(undefined)).toBe('undefined');
    expect(termList(atom('x'))).toEqual([]);
    expect(termList(undefined)).toEqual([]);
  });
});
