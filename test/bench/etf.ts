/**
 * `npm run bench -- etf`: encode and decode throughput of baton's codec against
 * erlang_js and erlpack, in the same run, on a mixed corpus.
 *
 * Each library gets the corpus entry in its own representation (erlang_js: arrays are
 * tuples; erlpack: strings are binaries), and its output is checked to decode to the
 * same Erlang term as baton's, so no library is timed doing less work. A library that
 * cannot represent an entry (erlpack has no atoms, pids or refs) shows n/a. All decode
 * from the same bytes: what term_to_binary/1 writes on OTP 25 (erlpack cannot read the
 * UTF-8 atom tags of OTP 26+).
 */
import { createRequire } from 'node:module';
import { atom, charlist, decode, encode, Pid, Reference, type Term, termEquals, tuple } from '../../src/etf/index.js';
import { formatRate, interleaved, table } from './_measure.js';

const require = createRequire(import.meta.url);

type Codec = { encode?: () => unknown; decodeInput?: Buffer; decode?: (b: Buffer) => unknown };

interface ErlangJs {
  term_to_binary(term: unknown, cb: (err: unknown, b: Buffer) => void): void;
  binary_to_term(b: Buffer, cb: (err: unknown, t: unknown) => void): void;
  OtpErlangAtom: new (name: string) => unknown;
  OtpErlangList: new (items: unknown[]) => unknown;
  OtpErlangBinary: new (b: Buffer) => unknown;
  OtpErlangMap: new (m: Map<unknown, unknown>) => unknown;
  OtpErlangPid: new (node: unknown, id: Buffer, serial: Buffer, creation: Buffer) => unknown;
  OtpErlangReference: new (node: unknown, id: Buffer, creation: Buffer) => unknown;
}

function loadErlangJs(): ErlangJs | undefined {
  try {
    return (require('erlang_js') as { Erlang: ErlangJs }).Erlang;
  } catch {
    return undefined;
  }
}

function loadErlpack(): { pack(v: unknown): Buffer; unpack(b: Buffer): unknown } | undefined {
  try {
    return require('erlpack');
  } catch {
    return undefined;
  }
}

const E = loadErlangJs();
const erlpack = loadErlpack();

function ejsEncode(term: unknown): Buffer {
  let out: Buffer | undefined;
  let error: unknown;
  E!.term_to_binary(term, (err, b) => {
    error = err;
    out = b;
  });
  if (error || !out) throw new Error(`erlang_js: ${String(error)}`);
  return out;
}

function ejsDecode(b: Buffer): unknown {
  let out: unknown;
  let error: unknown;
  E!.binary_to_term(b, (err, t) => {
    error = err;
    out = t;
  });
  if (error) throw new Error(`erlang_js: ${String(error)}`);
  return out;
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

interface Entry {
  name: string;
  term: Term;
  erlangJs?: unknown;
  erlpack?: unknown;
}

function corpus(): Entry[] {
  const node = atom('peer@host');
  const from = new Pid(node, 101, 0, 3);
  const to = new Pid(atom('baton-1@host'), 7, 0, 1);
  const ref = new Reference(node, 3, [17, 2, 3]);
  const ejsNode = E ? new E.OtpErlangAtom('peer@host') : undefined;
  const ejsPid = E ? new E.OtpErlangPid(ejsNode, u32(101), u32(0), u32(3)) : undefined;
  const ejsTo = E ? new E.OtpErlangPid(new E.OtpErlangAtom('baton-1@host'), u32(7), u32(0), u32(1)) : undefined;
  const ejsRef = E ? new E.OtpErlangReference(ejsNode, Buffer.concat([u32(17), u32(2), u32(3)]), u32(3)) : undefined;
  const A = (s: string) => (E ? new E.OtpErlangAtom(s) : undefined);

  // Control messages as they cross a distribution connection: SEND_SENDER, MONITOR_P, SPAWN_REPLY.
  const control = [tuple(22, from, to), tuple(19, from, to, ref), tuple(31, ref, to, 0, from)];
  const ejsControl = E
    ? [
        [22, ejsPid, ejsTo],
        [19, ejsPid, ejsTo, ejsRef],
        [31, ejsRef, ejsTo, 0, ejsPid],
      ]
    : undefined;

  const mib = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < mib.length; i++) mib[i] = 32 + (i % 95); // printable, so erlpack can carry it in a string
  const mibString = mib.toString('latin1');

  const ints = Array.from({ length: 100_000 }, (_, i) => i);

  const nested = (depth: number): Map<Term, Term> => {
    const m = new Map<Term, Term>();
    for (let i = 0; i < 8; i++) {
      m.set(atom(`key_${i}`), depth > 0 ? nested(depth - 1) : i);
      m.set(Buffer.from(`bin_${i}`), [i, atom('v')]);
    }
    return m;
  };
  const ejsNested = (depth: number): unknown => {
    const m = new Map<unknown, unknown>();
    for (let i = 0; i < 8; i++) {
      m.set(A(`key_${i}`), depth > 0 ? ejsNested(depth - 1) : i);
      m.set(new E!.OtpErlangBinary(Buffer.from(`bin_${i}`)), new E!.OtpErlangList([i, A('v')]));
    }
    return new E!.OtpErlangMap(m);
  };

  const text = 'the quick brown fox jumps over the lazy dog. '.repeat(1400).slice(0, 60_000);
  const chars = [...text].map((c) => c.charCodeAt(0));

  return [
    { name: 'control messages (3)', term: control, erlangJs: E ? new E.OtpErlangList(ejsControl!) : undefined },
    { name: '1 MiB binary', term: mib, erlangJs: E ? new E.OtpErlangBinary(mib) : undefined, erlpack: mibString },
    { name: '100,000 small ints', term: ints, erlangJs: E ? new E.OtpErlangList(ints) : undefined, erlpack: ints },
    { name: 'nested maps, atom+binary keys', term: nested(2), erlangJs: E ? ejsNested(2) : undefined },
    { name: '60,000-char charlist', term: charlist(text), erlangJs: text, erlpack: chars },
  ];
}

function codecs(entry: Entry, input: Buffer): Record<string, Codec> {
  const out: Record<string, Codec> = {
    baton: { encode: () => encode(entry.term), decodeInput: input, decode: (b) => decode(b) },
  };
  if (E) {
    out.erlang_js = {
      encode: entry.erlangJs === undefined ? undefined : () => ejsEncode(entry.erlangJs),
      decodeInput: input,
      decode: ejsDecode,
    };
  }
  if (erlpack) {
    out.erlpack = {
      encode: entry.erlpack === undefined ? undefined : () => erlpack.pack(entry.erlpack),
      decodeInput: input,
      decode: (b) => erlpack.unpack(b),
    };
  }
  return out;
}

/** True when `run` works and its result means the same term; a library that throws cannot represent the entry. */
function usable(label: string, run: () => unknown, check: (result: unknown) => boolean): boolean {
  try {
    const ok = check(run());
    if (!ok) console.error(`  (${label}: output differs from baton's term, left out)`);
    return ok;
  } catch (err) {
    console.error(`  (${label}: ${(err as Error).message.split('\n')[0]}, n/a)`);
    return false;
  }
}

/** args: [rounds = 5] [substring of the entries to run] */
export async function run(args: string[]): Promise<void> {
  const rounds = Number(args[0] ?? 5);
  const only = args[1];
  const entries = corpus().filter((e) => only === undefined || e.name.includes(only));
  console.log(`ETF throughput, ops/s (median of ${rounds} interleaved rounds); ratio = baton / fastest other library`);
  if (!E) console.log('erlang_js is not installed: its columns show n/a');
  if (!erlpack) console.log('erlpack (a native addon, optional) did not build: its columns show n/a');
  const rows: string[][] = [];
  for (const entry of entries) {
    const input = encode(entry.term, { minorVersion: 1 });
    const all = codecs(entry, input);
    for (const op of ['encode', 'decode'] as const) {
      const contenders: Record<string, () => unknown> = {};
      for (const [lib, c] of Object.entries(all)) {
        if (op === 'encode' && c.encode) {
          const fn = c.encode;
          if (usable(`${lib} encode ${entry.name}`, fn, (b) => termEquals(decode(b as Buffer), entry.term)))
            contenders[lib] = fn;
        } else if (op === 'decode' && c.decode) {
          const fn = c.decode;
          if (
            usable(
              `${lib} decode ${entry.name}`,
              () => fn(input),
              (t) => t !== undefined,
            )
          )
            contenders[lib] = () => fn(input);
        }
      }
      const rates = interleaved(contenders, rounds);
      const others = Object.entries(rates).filter(([lib]) => lib !== 'baton');
      const fastest = others.length ? Math.max(...others.map(([, r]) => r)) : undefined;
      rows.push([
        entry.name,
        op,
        formatRate(rates.baton!),
        rates.erlang_js === undefined ? 'n/a' : formatRate(rates.erlang_js),
        rates.erlpack === undefined ? 'n/a' : formatRate(rates.erlpack),
        fastest === undefined ? 'n/a' : `${(rates.baton! / fastest).toFixed(2)}×`,
      ]);
    }
  }
  console.log(table(['corpus entry', 'op', 'baton', 'erlang_js', 'erlpack', 'ratio'], rows));
}
