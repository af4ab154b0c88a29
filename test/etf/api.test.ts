/** The surface a user of src/etf touches: constructors, equality, printing, errors. */
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  Atom,
  asList,
  atom,
  BitString,
  Charlist,
  charlist,
  charlistToString,
  decode,
  decodeFrom,
  decodeWithoutVersion,
  EtfEncodeError,
  ExportFun,
  encode,
  encodeSequence,
  encodeWithoutVersion,
  Float,
  float,
  ImproperList,
  improperList,
  mapGet,
  Pid,
  Port,
  Reference,
  showTerm,
  type Term,
  Tuple,
  termEquals,
  tuple,
} from '../../src/etf/index.js';

const node = atom('peer@host');

describe('term constructors', () => {
  it('interns atoms, so identity is equality and atoms work as Map keys', () => {
    expect(atom('ok')).toBe(atom('ok'));
    expect(Atom.of('ok')).toBe(atom('ok'));
    expect(atom('ok')).not.toBe(atom('OK'));
    const m = new Map<Term, Term>([[atom('k'), 1]]);
    expect(m.get(atom('k'))).toBe(1);
  });

  it('keeps 1 and 1.0 apart, and -0.0 as a float', () => {
    expect(decode(encode(1))).toBe(1);
    expect(decode(encode(float(1)))).toEqual(float(1));
    expect(decode(encode(1.5))).toBe(1.5);
    const negZero = decode(encode(float(-0)));
    expect(negZero).toBeInstanceOf(Float);
    expect(Object.is((negZero as Float).value, -0)).toBe(true);
    expect(termEquals(1, float(1))).toBe(false);
    expect(termEquals(float(0), float(-0))).toBe(false);
  });

  it('decodes integers beyond 2^53 as bigint and smaller ones as number', () => {
    expect(decode(encode(2n ** 53n))).toBe(2n ** 53n);
    expect(decode(encode(2n ** 53n - 1n))).toBe(2 ** 53 - 1);
    expect(decode(encode(-(10n ** 999n)))).toBe(-(10n ** 999n));
    expect(termEquals(5, 5n)).toBe(true);
  });

  it('keeps atoms, binaries and charlists apart', () => {
    const terms: Term[] = [atom('abc'), Buffer.from('abc'), charlist('abc')];
    const back = terms.map((t) => decode(encode(t)));
    expect(back[0]).toBe(atom('abc'));
    expect(Buffer.isBuffer(back[1])).toBe(true);
    expect(back[2]).toBeInstanceOf(Charlist);
    expect(termEquals(back[2]!, [97, 98, 99])).toBe(true);
    expect(termEquals(back[0]!, back[1]!)).toBe(false);
    expect(termEquals(back[1]!, back[2]!)).toBe(false);
  });

  it('reads STRING_EXT as a Charlist that is the same list as its code points', () => {
    const fromBeam = decode(encode([104, 105]));
    expect(fromBeam).toBeInstanceOf(Charlist);
    expect(String(fromBeam)).toBe('hi');
    expect(termEquals(fromBeam, charlist('hi'))).toBe(true);
    expect(encode(charlist('hi'))).toEqual(encode([104, 105]));
    expect(decode(encode(charlist('')))).toEqual([]);
    expect(inspect(fromBeam)).toBe('"hi"');
  });

  it('gives the elements of any proper list with asList, STRING_EXT ones included', () => {
    expect(asList(decode(encode([1, 2])))).toEqual([1, 2]);
    expect(asList(decode(encode([atom('a')])))).toEqual([atom('a')]);
    expect(asList(decode(encode([])))).toEqual([]);
    expect(asList(tuple(1))).toBeUndefined();
    expect(asList(improperList([1], 2))).toBeUndefined();
  });

  it('turns JS strings into charlists of code points and back', () => {
    expect(charlist('hé€😀').codePoints()).toEqual([104, 233, 8364, 0x1f600]);
    expect(charlist('hé€😀').length).toBe(4);
    // Code points above 255 cannot be a STRING_EXT: they go as a list of integers.
    expect(decode(encode(charlist('hé€😀')))).toEqual([104, 233, 8364, 0x1f600]);
    expect(charlistToString(decode(encode(charlist('hé€😀'))))).toBe('hé€😀');
    expect(charlistToString([atom('a')])).toBeUndefined();
    expect(charlistToString(Buffer.from('x'))).toBeUndefined();
  });

  it('compares maps by content whatever their order, with any keys', () => {
    const a = new Map<Term, Term>([
      [tuple(1, 2), atom('x')],
      [Buffer.from('k'), [1]],
    ]);
    const b = new Map<Term, Term>([
      [Buffer.from('k'), [1]],
      [tuple(1, 2), atom('x')],
    ]);
    expect(termEquals(a, b)).toBe(true);
    expect(mapGet(a, tuple(1, 2))).toBe(atom('x'));
    expect(mapGet(a, Buffer.from('k'))).toEqual([1]);
    expect(mapGet(a, tuple(1, 3))).toBeUndefined();
    expect(termEquals(a, new Map([[tuple(1, 2), atom('y')]]))).toBe(false);
  });

  it('round-trips improper lists, bitstrings and external funs', () => {
    const terms: Term[] = [
      improperList([1, 2], atom('tail')),
      new BitString(Buffer.from([0xa0]), 3),
      new ExportFun(atom('lists'), atom('map'), 2),
    ];
    for (const t of terms) expect(termEquals(decode(encode(t)), t)).toBe(true);
    expect((terms[1] as BitString).bitSize).toBe(3);
  });
});

describe('U+FEFF (a byte-order mark) is text like any other', () => {
  const BOM = '\uFEFF';
  const utf8 = (s: string) => [...Buffer.from(s, 'utf8')];

  it.each([
    ['at the start', `${BOM}a`],
    ['alone', BOM],
    ['in the middle', `a${BOM}b`],
    ['at the end', `a${BOM}`],
    ['repeated', `${BOM}${BOM}${BOM}x`],
    ['255 times (a 765-byte ATOM_UTF8_EXT)', BOM.repeat(255)],
  ])('keeps it in an atom %s, both UTF-8 atom tags', (_where, name) => {
    const text = utf8(name);
    const small = Buffer.from([131, 119, text.length, ...text]);
    const large = Buffer.from([131, 118, text.length >> 8, text.length & 0xff, ...text]);
    if (text.length <= 255) {
      expect(decode(small)).toBe(atom(name));
      expect(encode(decode(small))).toEqual(small);
    }
    expect(decode(large)).toBe(atom(name));
    expect(encode(decode(large)).subarray(text.length <= 255 ? 3 : 4)).toEqual(Buffer.from(text));
  });

  it('decodes binary_to_term(<<131,118,0,4,239,187,191,97>>) to the atom U+FEFF a and writes it back in 7 bytes', () => {
    const bytes = Buffer.from([131, 118, 0, 4, 239, 187, 191, 97]);
    expect(decode(bytes)).toBe(atom(`${BOM}a`));
    expect([...encode(decode(bytes))]).toEqual([131, 119, 4, 239, 187, 191, 97]);
  });

  it('keeps the bytes EF BB BF of a Latin-1 atom or a STRING_EXT as the three characters they are', () => {
    expect(decode(Buffer.from([131, 100, 0, 4, 0xef, 0xbb, 0xbf, 97]))).toBe(atom('\u00ef\u00bb\u00bfa'));
    expect(decode(Buffer.from([131, 115, 3, 0xef, 0xbb, 0xbf]))).toBe(atom('\u00ef\u00bb\u00bf'));
    const str = Buffer.from([131, 107, 0, 4, 0xef, 0xbb, 0xbf, 97]);
    expect((decode(str) as Charlist).text).toBe('\u00ef\u00bb\u00bfa');
    expect(encode(decode(str))).toEqual(str);
  });

  it('keeps it in charlists, binaries and nested atoms', () => {
    const term = tuple(
      charlist(`${BOM}a`),
      Buffer.from(`${BOM}b`),
      [atom(BOM), atom(`x${BOM}`)],
      new Pid(atom(`${BOM}n@h`), 1, 0, 1),
    );
    const back = decode(encode(term));
    expect(termEquals(back, term)).toBe(true);
    expect(charlistToString((back as Tuple).elements[0]!)).toBe(`${BOM}a`);
    expect(((back as Tuple).elements[3] as Pid).node).toBe(atom(`${BOM}n@h`));
  });
});

describe('termEquals and mapGet', () => {
  /** A small deterministic PRNG (mulberry32). */
  function prng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function generate(rand: () => number, depth: number): Term {
    const pick = rand();
    const few = () => Math.floor(rand() * 4);
    if (depth === 0 || pick < 0.35) {
      const leaves: Term[] = [
        Math.floor(rand() * 1000),
        atom(`a${few()}`),
        Buffer.from([few()]),
        float(few()),
        charlist(`c${few()}`),
        new Pid(node, few(), 0, 1),
      ];
      return leaves[Math.floor(rand() * leaves.length)]!;
    }
    if (pick < 0.5) return tuple(...Array.from({ length: few() }, () => generate(rand, depth - 1)));
    if (pick < 0.65) return Array.from({ length: few() }, () => generate(rand, depth - 1));
    if (pick < 0.9) {
      // Keys of every kind (tuples, lists, maps), distinct by their first element.
      return new Map<Term, Term>(
        Array.from({ length: few() }, (_, i) => [tuple(i, generate(rand, depth - 1)), generate(rand, depth - 1)]),
      );
    }
    return improperList([generate(rand, depth - 1)], atom('tail'));
  }

  /** A deep copy with every map's order shuffled; the `change.at`-th leaf (counting from 1) replaced. */
  function copy(t: Term, rand: () => number, change: { at: number }): Term {
    if (t instanceof Tuple) return new Tuple(t.elements.map((e) => copy(e, rand, change)));
    if (Array.isArray(t)) return t.map((e) => copy(e, rand, change));
    if (t instanceof ImproperList)
      return improperList(
        t.elements.map((e) => copy(e, rand, change)),
        t.tail,
      );
    if (t instanceof Map) {
      const entries = [...t].map(([k, v]) => [copy(k, rand, change), copy(v, rand, change)] as [Term, Term]);
      entries.sort(() => rand() - 0.5);
      return new Map(entries);
    }
    if (--change.at === 0) return typeof t === 'number' ? t + 1 : atom('changed');
    return t instanceof Uint8Array ? Buffer.from(t) : t;
  }

  it('finds a term equal to a copy with its maps in another order, keys of any kind included', () => {
    const rand = prng(7);
    for (let i = 0; i < 300; i++) {
      const t = generate(rand, 5);
      const same = copy(t, rand, { at: 0 });
      expect(termEquals(t, same)).toBe(true);
      expect(termEquals(same, t)).toBe(true);
    }
  });

  it('finds the difference when any one leaf of such a copy differs', () => {
    const rand = prng(11);
    let changed = 0;
    for (let i = 0; i < 300; i++) {
      const t = generate(rand, 5);
      const change = { at: 1 + Math.floor(rand() * 20) };
      const other = copy(t, rand, change);
      if (change.at > 0) continue; // fewer leaves than that: nothing changed
      changed++;
      expect(termEquals(t, other)).toBe(false);
      expect(termEquals(other, t)).toBe(false);
    }
    expect(changed).toBeGreaterThan(50);
  });

  it('looks up map keys of any kind by Erlang equality', () => {
    const key = new Map<Term, Term>([[tuple(1, [atom('a')]), charlist('x')]]);
    const m = new Map<Term, Term>([
      [atom('k'), 1],
      [key, 2],
      [tuple(1, 2), 3],
    ]);
    expect(mapGet(m, new Map<Term, Term>([[tuple(1, [atom('a')]), decode(encode(charlist('x')))]]))).toBe(2);
    expect(mapGet(m, new Map<Term, Term>([[tuple(1, [atom('b')]), charlist('x')]]))).toBeUndefined();
    expect(mapGet(m, tuple(1, 2))).toBe(3);
    expect(mapGet(m, atom('k'))).toBe(1);
  });
});

describe('printing', () => {
  it('prints pids, refs and ports as Erlang does on their own node', () => {
    expect(String(new Pid(node, 12, 0, 3))).toBe('<0.12.0>');
    expect(String(new Reference(node, 1, [3, 2, 1]))).toBe('#Ref<0.1.2.3>');
    expect(String(new Port(node, 5n, 1))).toBe('#Port<0.5>');
  });

  it('inspects nested tuples and improper lists only as deep as asked', () => {
    let t: Term = atom('leaf');
    for (let i = 0; i < 10; i++) t = tuple(improperList([t], atom('z')));
    expect(inspect(t, { depth: 1 })).toBe('{[{…} | z]}');
    // As Node shows arrays: depth n shows n + 1 levels.
    expect(inspect(t, { depth: 3 })).toBe('{[{[{…} | z]} | z]}');
    expect(inspect(t, { depth: 100 })).toContain('leaf');
  });

  it('shows the node and creation when inspected', () => {
    expect(inspect(new Pid(node, 12, 0, 3))).toBe('#Pid<12.0@peer@host/3>');
    expect(inspect(tuple(atom('ok'), float(2), new BitString(Buffer.from([1, 0xe0]), 3)))).toBe('{ok, 2.0, <<1,7:3>>}');
    expect(inspect(improperList([1], atom('b')))).toBe('[1 | b]');
    expect(String(atom('Quoted atom'))).toBe("'Quoted atom'");
    expect(String(atom('plain_atom@x'))).toBe('plain_atom@x');
  });

  it('showTerm gives one bounded line for any received term, however deep or long', () => {
    let deep: Term = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    // String() of the same list overflows the JS stack.
    expect(() => String(deep)).toThrow(RangeError);
    expect(showTerm(deep).length).toBeLessThan(100);
    const long = showTerm(
      tuple(
        Buffer.alloc(1 << 20),
        Array.from({ length: 10_000 }, (_, i) => i),
      ),
    );
    expect(long.length).toBeLessThan(2000);
    expect(long).not.toContain('\n');
    expect(showTerm(tuple(atom('error'), atom('badarg')))).toBe('{error, badarg}');
  });
});

describe('encoding', () => {
  it.each([
    ['a JS string', 'abc', /JS string is ambiguous/],
    ['a boolean', true, /atom\('true'\)/],
    ['null', null, /null has no Erlang term/],
    ['undefined', undefined, /undefined has no Erlang term/],
    ['NaN', Number.NaN, /NaN is not an Erlang float/],
    ['Infinity', Number.POSITIVE_INFINITY, /Infinity is not an Erlang float/],
    ['a plain object', { a: 1 }, /class Object is not a term/],
    ['a 256-character atom', atom('x'.repeat(256)), /256 characters/],
    ['a bitstring with 8 bits', new BitString(Buffer.from([1]), 8), /1 to 7 bits/],
    ['a reference of 6 words', new Reference(node, 0, [1, 2, 3, 4, 5, 6]), /6 id words/],
    ['an improper list with a list tail', improperList([1], [2]), /must not be a list/],
  ])('refuses %s with EtfEncodeError', (_name, value, message) => {
    expect(() => encode(value as Term)).toThrow(EtfEncodeError);
    expect(() => encode(value as Term)).toThrow(message);
  });

  it('says where in the term the bad value is', () => {
    const term = tuple(atom('ok'), [1, new Map<Term, Term>([[atom('key'), tuple('oops' as unknown as Term)]])]);
    expect(() => encode(term)).toThrow('cannot encode term at {1}[1]#{key =>}{0}: a JS string is ambiguous');
  });

  it('writes atoms as UTF-8 by default and as Latin-1 with minorVersion 1, as term_to_binary does', () => {
    expect([...encode(atom('é'))]).toEqual([131, 119, 2, 0xc3, 0xa9]);
    expect([...encode(atom('é'), { minorVersion: 1 })]).toEqual([131, 100, 0, 1, 0xe9]);
    expect([...encode(atom('λ'), { minorVersion: 1 })]).toEqual([131, 119, 2, 0xce, 0xbb]);
  });

  it('compresses only when that is smaller', () => {
    expect(encode(atom('a'), { compressed: true })[1]).toBe(119);
    const big = encode(Buffer.alloc(10_000), { compressed: true });
    expect(big[1]).toBe(80);
    expect(decode(big)).toEqual(Buffer.alloc(10_000));
  });

  it('returns buffers that later encodes do not overwrite', () => {
    const first = encode(tuple(atom('first'), 1));
    encode(tuple(atom('second'), 2));
    expect(decode(first)).toEqual(tuple(atom('first'), 1));
    expect(first).toBeInstanceOf(Buffer);
    expect(decode(encode(Buffer.alloc(200_000, 3)))).toEqual(Buffer.alloc(200_000, 3));
  });
});

describe('framing helpers', () => {
  it('decodes terms back to back with decodeFrom, compressed ones included', () => {
    const frame = Buffer.concat([
      encode(tuple(atom('ctl'), 1)),
      encode(Buffer.alloc(5000, 1), { compressed: true }),
      encode(atom('end')),
    ]);
    const first = decodeFrom(frame, 0);
    const second = decodeFrom(frame, first.offset);
    const third = decodeFrom(frame, second.offset);
    expect(first.term).toEqual(tuple(atom('ctl'), 1));
    expect(second.term).toEqual(Buffer.alloc(5000, 1));
    expect(third.term).toBe(atom('end'));
    expect(third.offset).toBe(frame.length);
  });

  it('encodes several terms back to back after reserved headroom, as encode would one by one', () => {
    const terms: Term[] = [
      tuple(29, atom('erpc'), 'x'.length),
      [atom('monitor')],
      Buffer.alloc(20000, 7),
      atom('näive_ünïcode'),
    ];
    const out = encodeSequence(terms, 5);
    expect(out.subarray(5)).toEqual(Buffer.concat(terms.map((t) => encode(t))));
    expect(encodeSequence([atom('a')])).toEqual(encode(atom('a')));
    // The result is not a view of the shared scratch buffer that later encodes reuse.
    const kept = Buffer.from(encodeSequence([atom('first')], 1).subarray(1));
    const again = encodeSequence([atom('first')], 1);
    encodeSequence([atom('other_atom_overwriting')], 1);
    expect(again.subarray(1)).toEqual(kept);
  });

  it('encodes short and long ASCII atoms and non-ASCII atoms byte for byte as before', () => {
    for (const name of [
      'a',
      'bench_baton_12345@somehost',
      'x'.repeat(64),
      'y'.repeat(65),
      'z'.repeat(255),
      'ü',
      'π'.repeat(100),
    ]) {
      const bytes = encode(atom(name));
      expect(decode(bytes)).toBe(atom(name));
      const utf8 = Buffer.from(name, 'utf8');
      expect(bytes.subarray(utf8.length <= 255 ? 3 : 4)).toEqual(utf8);
    }
  });

  it('encodes and decodes without the version byte', () => {
    const body = encodeWithoutVersion(tuple(atom('a'), 1));
    expect(body[0]).toBe(104);
    expect(decodeWithoutVersion(body)).toEqual({ term: tuple(atom('a'), 1), offset: body.length });
  });

  it('returns views into the input unless asked to copy', () => {
    const input = encode(Buffer.from('shared'));
    const view = decode(input) as Buffer;
    const copy = decode(input, { copyBinaries: true }) as Buffer;
    input[input.length - 1] = 0x21;
    expect(view.toString()).toBe('share!');
    expect(copy.toString()).toBe('shared');
  });

  it('reads STRING_EXT as a view too: its text is built on first use', () => {
    const input = encode(charlist('shared'));
    const view = decode(input) as Charlist;
    const copy = decode(input, { copyBinaries: true }) as Charlist;
    expect(view.length).toBe(6);
    expect(encode(view)).toEqual(input);
    input[input.length - 1] = 0x21;
    expect(view.text).toBe('share!');
    expect(copy.text).toBe('shared');
    expect(copy.codePoints()).toEqual([115, 104, 97, 114, 101, 100]);
  });

  it('copies binaries shorter than copyBelow and counts the views it hands out', () => {
    const small = Buffer.alloc(100, 1);
    const large = Buffer.alloc(5000, 2);
    const input = encode(tuple(small, large, charlist('abc')));
    const { term, views } = decodeFrom(input, 0, { copyBelow: 4096 });
    const [s, l, c] = (term as Tuple).elements as [Buffer, Buffer, Charlist];
    expect(views).toBe(1);
    expect(s.buffer).not.toBe(input.buffer);
    expect(l.buffer).toBe(input.buffer);
    input.fill(0x21);
    expect(s).toEqual(small);
    expect(c.text).toBe('abc');
    expect(l.every((x) => x === 0x21)).toBe(true);
    // BIT_BINARY_EXT with all 8 bits of its last byte used is a binary: the same rule.
    const bits8 = (n: number): Buffer =>
      Buffer.concat([Buffer.from([131, 77, 0, 0, n >> 8, n & 0xff, 8]), Buffer.alloc(n, 7)]);
    expect(decodeFrom(bits8(10), 0, { copyBelow: 4096 }).views).toBe(0);
    expect(decodeFrom(bits8(5000), 0, { copyBelow: 4096 }).views).toBe(1);
    // Without the option every binary-like term is a view; with copyBinaries none is.
    expect(decodeFrom(encode([small, charlist('abc'), Buffer.alloc(0)]), 0).views).toBe(3);
    expect(decodeFrom(encode([small, large]), 0, { copyBinaries: true }).views).toBe(0);
  });

  it("does not count views into a compressed term's inflated copy as views of the input", () => {
    const input = encode(Buffer.alloc(10_000, 3), { compressed: 6 });
    const { term, views } = decodeFrom(input, 0);
    expect(views).toBe(0);
    expect((term as Buffer).buffer).not.toBe(input.buffer);
  });

  it('builds tuples with a 0-based accessor', () => {
    const t = new Tuple([atom('a'), 2]);
    expect(t.length).toBe(2);
    expect(t.at(1)).toBe(2);
  });
});
