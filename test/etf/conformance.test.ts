/**
 * The codec against the real BEAM, both ways: every term of a seeded corpus that covers
 * every tag OTP emits is decoded and re-encoded byte for byte, and what baton encodes is
 * read back by binary_to_term/1 and compared =:= with the original.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decode, encode, type Term, termEquals } from '../../src/etf/index.js';
import { compileTestModules, erlEval, erlString } from '../support/erl.js';

const SEED = 20261124;
const COUNT = 6000;
/** Corpus terms that erl also writes wrapped 70 levels deep. */
const DEEP_WRAPPED = 400;
/** The deep terms before them (see etf_corpus:write_deep/3). */
const DEEP_NAMED = [
  'a list 5,000 deep',
  'a tuple 2,000 deep (around an empty tuple)',
  'a mix of lists, tuples, maps and improper lists 3,000 deep',
  'a list 100,000 deep',
  'a list of two 100,000 deep',
  'maps 100,000 deep in values',
  'maps 20,000 deep in keys',
  'a term of 4,096 shared subterms 12 deep',
  'a mix 100,000 deep',
];

function undump(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < buf.length; ) {
    const len = buf.readUInt32BE(at);
    out.push(buf.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return out;
}

function dump(bins: Buffer[]): Buffer {
  return Buffer.concat(bins.flatMap((b) => [lenPrefix(b.length), b]));
}

function lenPrefix(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

let codePath: string;
let dir: string;
let plain: Buffer[];
let mv2: Buffer[];
let compressed: Buffer[];
let terms: Term[];
let deep: Buffer[];

/** What erl says of baton's encodings `bins` of the terms in `originals` (a file erl wrote). */
async function beamCheck(name: string, bins: Buffer[], originals = 'plain.bin'): Promise<string> {
  const file = join(dir, `${name}.bin`);
  const report = join(dir, `${name}.report`);
  await writeFile(file, dump(bins));
  await erlEval(
    codePath,
    `etf_corpus:check(${erlString(file)}, ${erlString(join(dir, originals))}, ${erlString(report)})`,
  );
  return (await readFile(report, 'utf8')).trim();
}

beforeAll(async () => {
  codePath = await compileTestModules('etf_corpus');
  dir = await mkdtemp(join(tmpdir(), 'baton-etf-'));
  await erlEval(codePath, `etf_corpus:write(${erlString(dir)}, ${SEED}, ${COUNT})`);
  await erlEval(codePath, `etf_corpus:write_deep(${erlString(dir)}, ${SEED}, ${DEEP_WRAPPED})`);
  deep = undump(await readFile(join(dir, 'deep.bin')));
  plain = undump(await readFile(join(dir, 'plain.bin')));
  mv2 = undump(await readFile(join(dir, 'mv2.bin')));
  compressed = undump(await readFile(join(dir, 'compressed.bin')));
  terms = plain.map((b) => decode(b));
});

describe('ETF conformance with OTP term_to_binary / binary_to_term', () => {
  it('has a corpus of at least 5,000 terms that covers every tag the BEAM emits', () => {
    expect(plain.length).toBeGreaterThanOrEqual(5000);
    expect(mv2.length).toBe(plain.length);
    const topTags = new Set<number>();
    for (const b of [...plain, ...mv2, ...compressed]) topTags.add(b[1]!);
    // Every tag term_to_binary writes on OTP 25, each standing at the top of some term.
    const expected = [
      70, 77, 80, 88, 89, 90, 97, 98, 100, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 116, 118, 119, 120,
    ];
    expect([...topTags].sort((a, b) => a - b)).toEqual(expect.arrayContaining(expected));
  });

  it('holds text with U+FEFF (a byte-order mark) at its start, alone, in the middle and repeated', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const holding = plain.filter((b) => b.includes(bom));
    expect(holding.length).toBeGreaterThanOrEqual(18);
    // Among them the atom '\x{FEFF}a' as OTP writes it (minor_version 1: SMALL_ATOM_UTF8_EXT).
    expect(plain.some((b) => b.equals(Buffer.from([131, 119, 4, 0xef, 0xbb, 0xbf, 97])))).toBe(true);
  });

  it('re-encodes every term_to_binary/1 output byte for byte (minor_version 1, OTP 25 default)', () => {
    const mismatches: number[] = [];
    plain.forEach((b, i) => {
      if (!encode(terms[i]!, { minorVersion: 1 }).equals(b)) mismatches.push(i);
    });
    expect(mismatches).toEqual([]);
  });

  it('re-encodes every {minor_version, 2} output byte for byte (the OTP 26+ default)', () => {
    const mismatches: number[] = [];
    mv2.forEach((b, i) => {
      const t = decode(b);
      if (!encode(t).equals(b)) mismatches.push(i);
    });
    expect(mismatches).toEqual([]);
  });

  it('decodes compressed terms to the same terms as their plain encoding', () => {
    const wrong: number[] = [];
    let actuallyCompressed = 0;
    compressed.forEach((b, i) => {
      if (b[1] === 80) actuallyCompressed++;
      if (!termEquals(decode(b), terms[i]!)) wrong.push(i);
    });
    expect(wrong).toEqual([]);
    expect(actuallyCompressed).toBeGreaterThan(100);
  });

  it('writes terms that binary_to_term reads back =:= to the originals', async () => {
    expect(
      await beamCheck(
        'ts_mv2',
        terms.map((t) => encode(t)),
      ),
    ).toBe(`ok ${plain.length}`);
  });

  it('writes minor_version 1 and compressed terms that binary_to_term reads back =:=', async () => {
    expect(
      await beamCheck(
        'ts_mv1',
        terms.map((t) => encode(t, { minorVersion: 1 })),
      ),
    ).toBe(`ok ${plain.length}`);
    expect(
      await beamCheck(
        'ts_z',
        terms.map((t) => encode(t, { compressed: true })),
      ),
    ).toBe(`ok ${plain.length}`);
  });

  it('reads legacy encodings (PID_EXT, PORT_EXT, REFERENCE_EXT, FLOAT_EXT, Latin-1 atoms) as the BEAM does', async () => {
    const node = [100, 0, 3, ...Buffer.from('a@b')];
    const legacy = [
      [131, 103, ...node, 0, 0, 0, 5, 0, 0, 0, 1, 2], // PID_EXT
      [131, 102, ...node, 0, 0, 0, 9, 1], // PORT_EXT
      [131, 101, ...node, 0, 0, 0, 42, 3], // REFERENCE_EXT
      [131, 114, 0, 3, ...node, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3], // NEW_REFERENCE_EXT
      [131, 99, ...Buffer.from('1.50000000000000000000e+00'.padEnd(31, '\0'))], // FLOAT_EXT
      [131, 99, ...Buffer.from('-2.00000000000000000000e+00'.padEnd(31, '\0'))],
      [131, 115, 2, 0xe9, 0x61], // SMALL_ATOM_EXT 'éa'
      [131, 100, 0, 1, 0xff], // ATOM_EXT 'ÿ'
      [131, 118, 0, 2, 0xce, 0xbb], // ATOM_UTF8_EXT 'λ'
      [131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 106], // [1 | [2]]
      [131, 110, 2, 0, 5, 0], // SMALL_BIG 5
      [131, 111, 0, 0, 0, 1, 1, 7], // LARGE_BIG -7
      [131, 77, 0, 0, 0, 1, 8, 0xab], // BIT_BINARY with 8 bits: a binary
    ].map((bytes) => Buffer.from(bytes));
    const inFile = join(dir, 'legacy.bin');
    const outFile = join(dir, 'legacy.out');
    await writeFile(inFile, dump(legacy));
    await erlEval(codePath, `etf_corpus:reencode(${erlString(inFile)}, ${erlString(outFile)})`);
    const beam = undump(await readFile(outFile));
    legacy.forEach((b, i) => {
      expect(beam[i]![0], `BEAM refused legacy input ${i}`).toBe(0);
      expect(encode(decode(b), { minorVersion: 1 }).toString('hex'), `legacy input ${i}`).toBe(
        beam[i]!.subarray(1).toString('hex'),
      );
    });
  });
});

describe('terms nested deeper than recursion allows, as the BEAM writes them', () => {
  it('has the deep terms erl wrote, as deep as they say', () => {
    expect(deep.length).toBe(DEEP_NAMED.length + DEEP_WRAPPED);
    let depth = 0;
    for (let t: Term = decode(deep[3]!); Array.isArray(t) && t.length > 0; t = t[0]!) depth++;
    expect(depth).toBe(100_000);
  });

  it.each(DEEP_NAMED.map((name, i) => [name, i] as const))('decodes %s and re-encodes it byte for byte', (_name, i) => {
    const term = decode(deep[i]!);
    expect(encode(term, { minorVersion: 1 }).equals(deep[i]!)).toBe(true);
    expect(termEquals(decode(encode(term)), term)).toBe(true);
  });

  it('decodes and re-encodes byte for byte every corpus term wrapped 70 levels deep (every tag read and written past the depth where the codec stops recursing)', () => {
    const mismatches: number[] = [];
    for (let i = DEEP_NAMED.length; i < deep.length; i++) {
      if (!encode(decode(deep[i]!), { minorVersion: 1 }).equals(deep[i]!)) mismatches.push(i);
    }
    expect(mismatches).toEqual([]);
  });

  it('writes them so that binary_to_term reads them back =:=', async () => {
    const mine = deep.map((b) => encode(decode(b)));
    expect(await beamCheck('ts_deep', mine, 'deep.bin')).toBe(`ok ${deep.length}`);
  });
});
