/**
 * Untrusted input: truncated, mutated and random bytes may only ever produce an
 * EtfDecodeError with an offset inside the input, never another exception, a hang, or
 * an allocation sized by a length field instead of by the input. Nesting is bounded by
 * nothing but the input's size: deep input decodes (or is refused) quickly and never
 * overflows the stack.
 */
import { inspect } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  atom,
  BitString,
  decode,
  EtfDecodeError,
  EtfEncodeError,
  ExportFun,
  encode,
  float,
  improperList,
  Pid,
  Port,
  Reference,
  type Term,
  termEquals,
  tuple,
} from '../../src/etf/index.js';

/** A small deterministic PRNG (mulberry32) so a failure can be replayed. */
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

const node = atom('peer@host');
const seeds: Term[] = [
  tuple(atom('ok'), 1, -1, 300, 2 ** 40, -(2n ** 70n), float(1), 0.25),
  [1, 2, 3],
  [atom('a'), improperList([1], atom('b'))],
  new Map<Term, Term>([
    [atom('k'), Buffer.from('v')],
    [Buffer.from('x'), [tuple()]],
  ]),
  new Pid(node, 12, 0, 3),
  new Reference(node, 7, [1, 2, 3]),
  new Port(node, 2n ** 40n, 1),
  new BitString(Buffer.from([0xf0]), 4),
  new ExportFun(atom('lists'), atom('map'), 2),
  atom('λλλ'),
  Buffer.alloc(300, 7),
  tuple(...Array.from({ length: 300 }, (_, i) => i)),
  Array.from({ length: 70000 }, (_, i) => i % 256),
  tuple(tuple(tuple([new Map([[atom('deep'), [atom('er')]]])]))),
];
const valid = [...seeds.map((t) => encode(t)), encode(seeds[12]!, { compressed: true })];

/** What decoding `bytes` throws (undefined when it decodes). */
function refusal(bytes: number[]): unknown {
  try {
    decode(Buffer.from(bytes));
    return undefined;
  } catch (err) {
    return err;
  }
}

// A full collection before measuring makes "what this batch allocated" the growth since.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** JS heap and ArrayBuffer bytes in use (collected garbage excluded only after a gc()). */
function memoryInUse(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** CPU time of this process in ms: unlike wall time, not stretched by other processes on a loaded machine. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Decodes `input` and returns the error (undefined if it decoded) and the CPU time it took. */
function timedDecode(input: Buffer): { error: unknown; ms: number } {
  const start = cpuMs();
  let error: unknown;
  try {
    decode(input);
  } catch (err) {
    error = err;
  }
  return { error, ms: cpuMs() - start };
}

function expectOnlyDecodeErrors(input: Buffer): void {
  try {
    decode(input);
  } catch (err) {
    if (!(err instanceof EtfDecodeError))
      throw new Error(`non-ETF error for ${input.subarray(0, 32).toString('hex')}: ${err}`);
    expect(err.offset).toBeGreaterThanOrEqual(0);
    expect(err.offset).toBeLessThanOrEqual(input.length);
  }
}

describe('decoding hostile input', () => {
  it('refuses 100,000 truncated, mutated and random inputs only with EtfDecodeError at an offset inside the input, each quickly, allocating by the input not by its length fields', () => {
    const rand = prng(0xba7011);
    const int = (n: number) => Math.floor(rand() * n);
    // Tags whose length fields claim elements or bytes, each given a random (mostly huge) length.
    const sized = [104, 105, 107, 108, 109, 110, 111, 116, 77, 90, 112, 118, 119, 80];
    const BATCH = 1000;
    let refused = 0;
    let slowest = 0;
    let worstGrowth = 0;
    let biggestClaim = 0;
    for (let batch = 0; batch < 100_000 / BATCH; batch++) {
      const inputs: Buffer[] = [];
      for (let k = 0; k < BATCH; k++) {
        const i = batch * BATCH + k;
        const base = valid[int(valid.length)]!;
        let input: Buffer;
        switch (i % 4) {
          case 0:
            input = base.subarray(0, int(base.length));
            break;
          case 1: {
            input = Buffer.from(base.subarray(0, Math.min(base.length, 4096)));
            for (let m = 1 + int(4); m > 0; m--) input[int(input.length)] = int(256);
            break;
          }
          case 2: {
            input = Buffer.alloc(1 + int(64));
            for (let j = 0; j < input.length; j++) input[j] = int(256);
            input[0] = 131;
            if (i % 2)
              input[1] = [97, 98, 104, 105, 106, 107, 108, 109, 110, 111, 116, 77, 88, 90, 112, 113, 118, 119, 80][
                int(19)
              ]!;
            break;
          }
          default: {
            input = Buffer.alloc(6 + int(32));
            for (let j = 6; j < input.length; j++) input[j] = int(256);
            input[0] = 131;
            input[1] = sized[int(sized.length)]!;
            input.writeUInt32BE(int(2) ? 0xffffffff - int(0x1000) : int(0x100000000), 2);
          }
        }
        inputs.push(input);
      }
      gc();
      const before = memoryInUse();
      let bytes = 0;
      for (let k = 0; k < BATCH; k++) {
        const input = inputs[k]!;
        bytes += input.length;
        // The inputs made of a header with a huge length: what one decode allocates.
        const claims = k % 4 === 3;
        const start = claims ? memoryInUse() : 0;
        const { error, ms } = timedDecode(input);
        if (claims) biggestClaim = Math.max(biggestClaim, memoryInUse() - start);
        slowest = Math.max(slowest, ms);
        if (error === undefined) continue;
        if (!(error instanceof EtfDecodeError))
          throw new Error(`input ${input.toString('hex').slice(0, 80)}: ${error}`);
        if (!(error.offset >= 0 && error.offset <= input.length))
          throw new Error(`offset ${error.offset} outside an input of ${input.length} bytes: ${error.message}`);
        refused++;
      }
      // Without a collection in between, the growth is what the batch allocated (a
      // collection can only make it smaller): terms and errors a small multiple of the
      // input, never the gigabytes the length fields claim.
      worstGrowth = Math.max(worstGrowth, (memoryInUse() - before) / (bytes + 64 * 1024));
    }
    // Most of these inputs are broken; if almost none were refused the generator is wrong.
    expect(refused).toBeGreaterThan(60_000);
    // The inputs are at most a few hundred KB: each takes well under a millisecond, and a
    // bound this far above it only trips on work that grows faster than the input.
    expect(slowest).toBeLessThan(250);
    expect(worstGrowth).toBeLessThan(64);
    // A header claiming up to 4 GiB followed by at most 32 bytes: nothing near a MiB.
    expect(biggestClaim).toBeLessThan(1024 * 1024);
  });

  it.each([
    ['LIST_EXT', [131, 108, 0xff, 0xff, 0xff, 0xff, 97, 1]],
    ['BINARY_EXT', [131, 109, 0xff, 0xff, 0xff, 0xf0, 1, 2, 3]],
    ['LARGE_TUPLE_EXT', [131, 105, 0xff, 0xff, 0xff, 0xff, 106]],
    ['MAP_EXT', [131, 116, 0x7f, 0xff, 0xff, 0xff, 97, 1, 97, 2]],
    ['LARGE_BIG_EXT', [131, 111, 0xff, 0xff, 0xff, 0xff, 0, 1]],
    ['STRING_EXT', [131, 107, 0xff, 0xff, 65]],
    ['BIT_BINARY_EXT', [131, 77, 0xff, 0xff, 0xff, 0xff, 3, 1]],
    ['ATOM_UTF8_EXT', [131, 118, 0xff, 0xff, 97]],
    ['NEW_FUN_EXT', [131, 112, 0xff, 0xff, 0xff, 0xff, 1]],
    ['NEWER_REFERENCE_EXT', [131, 90, 0xff, 0xff, 100, 0, 1, 97]],
  ])('refuses a %s that claims gigabytes without allocating them', (_tag, bytes) => {
    const before = process.memoryUsage().arrayBuffers;
    const error = refusal(bytes);
    expect(error).toBeInstanceOf(EtfDecodeError);
    expect((error as EtfDecodeError).message).toMatch(/needs|bytes|left|words|end of input/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
  });

  it('refuses a compressed term that declares more than the limit, before inflating anything', () => {
    const input = Buffer.concat([Buffer.from([131, 80, 0xff, 0xff, 0xff, 0xff]), deflateSync(Buffer.from([106]))]);
    expect(() => decode(input)).toThrow(/over the limit/);
  });

  it('refuses a decompression bomb whose data inflates past its declared size', () => {
    // A few KiB of zlib that would inflate to 64 MiB, declared as 100 bytes.
    const bomb = deflateSync(Buffer.alloc(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(128 * 1024);
    const input = Buffer.concat([Buffer.from([131, 80, 0, 0, 0, 100]), bomb]);
    const before = process.memoryUsage().arrayBuffers;
    expect(() => decode(input)).toThrow(EtfDecodeError);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
  });

  it('refuses compressed data that is not zlib, naming it', () => {
    expect(() => decode(Buffer.from([131, 80, 0, 0, 0, 10, 1, 2, 3, 4]))).toThrow(/not valid zlib/);
  });

  /** A NEW_FUN_EXT (as `fun() -> X end` encodes) with `free` as its one free variable. */
  function funWithFreeVariable(free: Buffer): Buffer {
    const module = [119, 1, 109];
    const pid = [88, 119, 3, ...Buffer.from('a@b'), 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    const rest = Buffer.from([...module, 97, 0, 98, 0, 0, 0, 1, ...pid]);
    const head = Buffer.alloc(4 + 1 + 16 + 4 + 4);
    head.writeUInt32BE(head.length + rest.length + free.length, 0);
    head.writeUInt32BE(1, 25); // one free variable
    return Buffer.concat([Buffer.from([131, 112]), head, rest, free]);
  }

  /** Headers of `tag` (with a 32-bit count) to the end of 200 KB, each claiming as many elements as bytes remain. */
  function claiming(tag: number, perElement: number): Buffer {
    const input = Buffer.alloc(200_001);
    input[0] = 131;
    for (let p = 1; p + 5 <= input.length; p += 5) {
      input[p] = tag;
      input.writeUInt32BE(Math.floor((input.length - p - 5) / perElement), p + 1);
    }
    return input;
  }

  /** `count` copies of `unit` after the version byte, then `end`. */
  function repeated(unit: number[], count: number, end: number[] = []): Buffer {
    const input = Buffer.alloc(1 + unit.length * count + end.length);
    input[0] = 131;
    for (let i = 0; i < count; i++) input.set(unit, 1 + i * unit.length);
    input.set(end, 1 + unit.length * count);
    return input;
  }

  it.each([
    ['LIST_EXT headers, 40,000 deep, without an end', repeated([108, 0, 0, 0, 1], 40_000)],
    ['LIST_EXT headers, 40,000 deep, ended', repeated([108, 0, 0, 0, 1], 40_000, [106, ...Array(40_000).fill(106)])],
    ['SMALL_TUPLE_EXT headers, 100,000 deep, without an end', repeated([104, 1], 100_000)],
    ['SMALL_TUPLE_EXT headers, 100,000 deep, ended', repeated([104, 1], 100_000, [106])],
    ['MAP_EXT headers, 30,000 deep, without an end', repeated([116, 0, 0, 0, 1, 97, 1], 30_000)],
    ['list tails, 30,000 deep ([1 | [1 | ...]])', repeated([108, 0, 0, 0, 1, 97, 1], 30_000, [106])],
    [
      'improper list heads, 30,000 deep',
      repeated([108, 0, 0, 0, 1], 30_000, [...Array(30_000).fill([97, 1]).flat(), 106]),
    ],
    ['LARGE_TUPLE_EXT headers, each claiming every byte left', claiming(105, 1)],
    ['LIST_EXT headers, each claiming every byte left', claiming(108, 1)],
    ['MAP_EXT headers, each claiming every byte left', claiming(116, 2)],
    [
      'a fun whose free variable nests 50,000 tuples',
      funWithFreeVariable(repeated([104, 1], 50_000, [106]).subarray(1)),
    ],
  ])(
    'decodes or refuses %s within a second, without overflowing the stack or allocating by the claims',
    (_name, input) => {
      expect(input.length).toBeLessThan(300_000);
      gc();
      const before = memoryInUse();
      const { error, ms } = timedDecode(input);
      // A frame, an array and a term for each level (a few hundred bytes per input byte at
      // most), not arrays sized by what each level claims: those would take gigabytes.
      expect(memoryInUse() - before).toBeLessThan(400 * input.length);
      if (error !== undefined) {
        expect(error).toBeInstanceOf(EtfDecodeError);
        expect((error as EtfDecodeError).offset).toBeLessThanOrEqual(input.length);
      }
      expect(ms).toBeLessThan(1000);
    },
  );

  it('refuses what the caller caps with maxDepth, at the offset of the first container too deep', () => {
    const input = repeated([104, 1], 5000, [106]);
    let error: unknown;
    try {
      decode(input, { maxDepth: 1000 });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(EtfDecodeError);
    expect((error as EtfDecodeError).message).toMatch(/nested deeper than 1000/);
    // Containers 0 to 999 are accepted; the 1001st starts at 1 + 1000 * 2.
    expect((error as EtfDecodeError).offset).toBe(2001);
    expect(decode(input, { maxDepth: 5000 })).toBeInstanceOf(Object);
    expect(() => decode(encode([[[[]]]]), { maxDepth: 2 })).toThrow(EtfDecodeError);
    expect(decode(encode([[[[]]]]), { maxDepth: 3 })).toEqual([[[[]]]]);
  });

  it.each([
    ['a list', (t: Term): Term => [t]],
    ['a tuple', (t: Term): Term => tuple(t)],
    ['a map value', (t: Term): Term => new Map<Term, Term>([[atom('k'), t]])],
    ['a map key', (t: Term): Term => new Map<Term, Term>([[t, 1]])],
    ['an improper list', (t: Term): Term => improperList([t], atom('tail'))],
    ['a list of two', (t: Term): Term => [1, t]],
  ])('decodes, re-encodes and compares terms nested 100,000 deep in %s', (_name, wrap) => {
    let term: Term = atom('leaf');
    for (let i = 0; i < 100_000; i++) term = wrap(term);
    const bytes = encode(term);
    const back = decode(bytes);
    expect(encode(back).equals(bytes)).toBe(true);
    expect(termEquals(back, term)).toBe(true);
    expect(inspect(back, { depth: 6 }).length).toBeLessThan(400);
  });

  it('refuses to encode or compare a JS value that contains itself instead of looping', () => {
    const cyclic: Term[] = [1];
    cyclic.push(cyclic);
    expect(() => encode(cyclic)).toThrow(EtfEncodeError);
    expect(() => encode(cyclic)).toThrow(/contains itself/);
    const t = tuple(1, new Map<Term, Term>());
    ((t.elements as Term[])[1] as Map<Term, Term>).set(atom('k'), [t]);
    expect(() => encode(t)).toThrow(/contains itself/);
    // A cycle through 30,000 distinct lists.
    const first: Term[] = [0];
    let last = first;
    for (let i = 0; i < 30_000; i++) {
      const next: Term[] = [i];
      last.push(next);
      last = next;
    }
    last.push(first);
    expect(() => encode(first)).toThrow(/contains itself/);
    // Not a cycle: the same list twice, 16,384 deep on one side and 20,000 on the other.
    const shared: Term[] = [1, [2]];
    let a: Term = shared;
    for (let i = 0; i < 16_383; i++) a = [a];
    let b: Term = shared;
    for (let i = 0; i < 19_999; i++) b = [b];
    expect(termEquals(decode(encode([a, b])), [a, b])).toBe(true);
    // Equality would never end on two such values either.
    const c1: Term[] = [1];
    c1.push(c1);
    const c2: Term[] = [1];
    c2.push(c2);
    expect(() => termEquals(c1, c2)).toThrow(/contains itself/);
  });

  it.each([
    ['no version byte', [104, 0], /version byte 131/],
    ['an unknown tag', [131, 200], /unknown tag 200/],
    ['trailing bytes', [131, 106, 106], /1 bytes left after the term/],
    ['an atom cache reference', [131, 82, 0], /atom cache/],
    ['a non-finite float', [131, 70, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0], /not finite/],
    ['invalid UTF-8 in an atom', [131, 119, 2, 0xc3, 0x28], /not valid UTF-8/],
    ['an atom of 256 characters', [131, 118, 1, 0, ...Buffer.alloc(256, 97)], /longer than 255/],
    ['a big integer sign byte of 2', [131, 110, 1, 2, 5], /sign byte/],
    ['a bitstring with 0 bits', [131, 77, 0, 0, 0, 1, 0, 5], /0 bits/],
    ['a reference of 6 words', [131, 90, 0, 6, 119, 1, 97], /6 id words/],
    ['a map with a key twice', [131, 116, 0, 0, 0, 2, 97, 1, 106, 97, 1, 106], /key 1 twice/],
    ['an empty list with a tail', [131, 108, 0, 0, 0, 0, 97, 1], /non-list tail/],
    ['a compressed tag inside a term', [131, 104, 1, 80, 0, 0, 0, 1], /only stand right after/],
    ['an export with a non-integer arity', [131, 113, 119, 1, 109, 119, 1, 102, 98, 0, 0, 0, 1], /arity/],
  ])('refuses %s with an error that names it', (_name, bytes, message) => {
    const error = refusal(bytes);
    expect(error).toBeInstanceOf(EtfDecodeError);
    expect((error as Error).message).toMatch(message);
  });

  it('reports the offset where decoding stopped', () => {
    const input = Buffer.from([131, 104, 2, 97, 1, 200]);
    try {
      decode(input);
      expect.unreachable('decode accepted an unknown tag');
    } catch (err) {
      expect(err).toBeInstanceOf(EtfDecodeError);
      expect((err as EtfDecodeError).offset).toBe(5);
      expect((err as EtfDecodeError).code).toBe('ETF_DECODE');
    }
    expectOnlyDecodeErrors(input);
  });
});
