/**
 * Untrusted input: truncated, mutated and random bytes may only ever produce an
 * EtfDecodeError with an offset inside the input, never another exception, a hang, or
 * an allocation sized by a length field instead of by the input.
 */
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  atom,
  BitString,
  decode,
  EtfDecodeError,
  ExportFun,
  encode,
  float,
  improperList,
  Pid,
  Port,
  Reference,
  type Term,
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
  it('throws only EtfDecodeError over 100,000 truncated, mutated and random inputs', () => {
    const rand = prng(0xba7011);
    const int = (n: number) => Math.floor(rand() * n);
    let refused = 0;
    for (let i = 0; i < 100_000; i++) {
      const base = valid[int(valid.length)]!;
      let input: Buffer;
      switch (i % 3) {
        case 0:
          input = base.subarray(0, int(base.length));
          break;
        case 1: {
          input = Buffer.from(base.subarray(0, Math.min(base.length, 4096)));
          for (let m = 1 + int(4); m > 0; m--) input[int(input.length)] = int(256);
          break;
        }
        default: {
          input = Buffer.alloc(1 + int(64));
          for (let k = 0; k < input.length; k++) input[k] = int(256);
          input[0] = 131;
          if (i % 2)
            input[1] = [97, 98, 104, 105, 106, 107, 108, 109, 110, 111, 116, 77, 88, 90, 112, 113, 118, 119, 80][
              int(19)
            ]!;
        }
      }
      try {
        decode(input);
      } catch (err) {
        if (!(err instanceof EtfDecodeError))
          throw new Error(`input ${i} (${input.toString('hex').slice(0, 80)}): ${err}`);
        refused++;
      }
    }
    // Most of these inputs are broken; if almost none were refused the generator is wrong.
    expect(refused).toBeGreaterThan(60_000);
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

  it('refuses nesting deeper than maxDepth instead of overflowing the stack', () => {
    const depth = 200_000;
    const input = Buffer.alloc(1 + depth * 2 + 1);
    input[0] = 131;
    for (let i = 0; i < depth; i++) {
      input[1 + i * 2] = 104; // SMALL_TUPLE_EXT
      input[2 + i * 2] = 1;
    }
    input[input.length - 1] = 106;
    expect(() => decode(input)).toThrow(/nested deeper than 2000/);
    expect(() => decode(input, { maxDepth: 100_000_000 })).toThrow(EtfDecodeError);
  });

  it('accepts nesting up to maxDepth', () => {
    let t: Term = [];
    for (let i = 0; i < 1999; i++) t = [t];
    expect(decode(encode(t))).toEqual(t);
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
