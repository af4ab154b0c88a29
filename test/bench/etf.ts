/**
 * `npm run bench -- etf [rounds] [entry]`: encode and decode throughput of baton's codec
 * against erlang_js and erlpack, in the same run, on a mixed corpus.
 *
 * Decoding: every library decodes the same bytes, the entry as OTP's own
 * `term_to_binary/1` writes it (erl, started once, writes the corpus; on OTP 25 that is
 * also the only form erlpack reads, as it lacks the UTF-8 atom tags of OTP 26+). Before
 * a library is timed, what it decoded is checked to be the expected term: baton's and
 * erlang_js's results (the latter converted to baton's types) with termEquals, erlpack's
 * (strings for atoms and binaries, objects for maps) by a structural walk.
 *
 * Encoding: each library gets the entry in its own representation (erlang_js: arrays
 * are tuples; erlpack: strings are binaries), and its output must decode to the
 * expected term, so no library is timed doing less work. A library that cannot
 * represent an entry (erlpack has no atoms, pids or refs) shows n/a.
 */
import { readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Atom,
  atom,
  Charlist,
  charlist,
  decode,
  encode,
  improperList,
  Pid,
  Reference,
  type Term,
  Tuple,
  termEquals,
  tuple,
} from '../../src/etf/index.js';
import { compileTestModules, erlEval, erlString } from '../support/erl.js';
import { formatRate, interleaved, table } from './_measure.js';

const require = createRequire(import.meta.url);

interface Codec {
  encode?: () => unknown;
  decode?: (b: Buffer) => unknown;
  /** Whether what `decode` returned is the expected term, in this library's representation. */
  means: (decoded: unknown, expected: Term) => boolean;
}

interface ErlangJsAtom {
  value: string;
}
interface ErlangJsList {
  value: unknown[];
  improper: boolean;
}

interface ErlangJs {
  term_to_binary(term: unknown, cb: (err: unknown, b: Buffer) => void): void;
  binary_to_term(b: Buffer, cb: (err: unknown, t: unknown) => void): void;
  OtpErlangAtom: new (name: string) => ErlangJsAtom;
  OtpErlangList: new (items: unknown[]) => ErlangJsList;
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

/** erlang_js's decoding of a term, in baton's types (for the check, not timed). */
function fromErlangJs(v: unknown): Term {
  if (typeof v === 'number') return v;
  if (v === true || v === false) return atom(String(v));
  if (v === null) return atom('undefined');
  // STRING_EXT, read as Latin-1 text.
  if (typeof v === 'string') return charlist(v);
  if (Array.isArray(v)) return tuple(...v.map(fromErlangJs));
  if (v instanceof E!.OtpErlangAtom) return atom(v.value);
  if (v instanceof E!.OtpErlangList) {
    const elements = v.value.map(fromErlangJs);
    return v.improper ? improperList(elements.slice(0, -1), elements.at(-1)!) : elements;
  }
  if (v instanceof E!.OtpErlangBinary) return (v as unknown as { value: Buffer }).value;
  if (v instanceof E!.OtpErlangMap) {
    const m = new Map<Term, Term>();
    for (const [k, x] of (v as unknown as { value: Map<unknown, unknown> }).value)
      m.set(fromErlangJs(k), fromErlangJs(x));
    return m;
  }
  if (v instanceof E!.OtpErlangPid) {
    const p = v as unknown as { node: ErlangJsAtom; id: Buffer; serial: Buffer; creation: Buffer };
    return new Pid(atom(p.node.value), p.id.readUInt32BE(), p.serial.readUInt32BE(), p.creation.readUInt32BE());
  }
  if (v instanceof E!.OtpErlangReference) {
    const r = v as unknown as { node: ErlangJsAtom; id: Buffer; creation: Buffer };
    const ids = Array.from({ length: r.id.length / 4 }, (_, i) => r.id.readUInt32BE(i * 4));
    return new Reference(atom(r.node.value), r.creation.readUInt32BE(), ids);
  }
  throw new Error(`erlang_js returned ${String(v)}, which the check does not know`);
}

/**
 * Whether erlpack's decoding means `expected`: erlpack returns atoms and binaries as
 * strings (true, false, nil and null as themselves), lists and tuples as arrays, maps
 * as objects keyed by those strings.
 */
function erlpackMeans(v: unknown, expected: Term): boolean {
  if (typeof expected === 'number') return v === expected;
  if (expected instanceof Atom) {
    const special: Record<string, unknown> = { true: true, false: false, nil: null, null: null };
    return expected.name in special ? v === special[expected.name] : v === expected.name;
  }
  if (expected instanceof Uint8Array) return typeof v === 'string' && v === Buffer.from(expected).toString('utf8');
  if (expected instanceof Charlist) return erlpackMeans(v, expected.codePoints());
  if (Array.isArray(expected) || expected instanceof Tuple) {
    const items = Array.isArray(expected) ? expected : expected.elements;
    return Array.isArray(v) && v.length === items.length && items.every((e, i) => erlpackMeans(v[i], e));
  }
  if (expected instanceof Map) {
    if (typeof v !== 'object' || v === null || Object.keys(v).length !== expected.size) return false;
    for (const [k, x] of expected) {
      const key = k instanceof Atom ? k.name : k instanceof Uint8Array ? Buffer.from(k).toString('utf8') : undefined;
      if (key === undefined || !erlpackMeans((v as Record<string, unknown>)[key], x)) return false;
    }
    return true;
  }
  return false;
}

/** The corpus as OTP's term_to_binary/1 writes it, from a fresh erl (etf_corpus:write_bench/1). */
async function otpCorpus(): Promise<Buffer[]> {
  const codePath = await compileTestModules('etf_corpus');
  const file = join(tmpdir(), `baton-etf-bench-${process.pid}.bin`);
  await erlEval(codePath, `etf_corpus:write_bench(${erlString(file)})`);
  const buf = await readFile(file);
  await rm(file, { force: true });
  const out: Buffer[] = [];
  for (let at = 0; at < buf.length; ) {
    const len = buf.readUInt32BE(at);
    out.push(buf.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
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

function codecs(entry: Entry): Record<string, Codec> {
  const out: Record<string, Codec> = {
    baton: { encode: () => encode(entry.term), decode: (b) => decode(b), means: (t, x) => termEquals(t as Term, x) },
  };
  if (E) {
    out.erlang_js = {
      encode: entry.erlangJs === undefined ? undefined : () => ejsEncode(entry.erlangJs),
      decode: ejsDecode,
      means: (t, x) => termEquals(fromErlangJs(t), x),
    };
  }
  if (erlpack) {
    out.erlpack = {
      encode: entry.erlpack === undefined ? undefined : () => erlpack.pack(entry.erlpack),
      decode: (b) => erlpack.unpack(b),
      means: erlpackMeans,
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
  const all = corpus();
  const otp = await otpCorpus();
  if (otp.length !== all.length) throw new Error(`erl wrote ${otp.length} corpus entries, the bench has ${all.length}`);
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  console.log(`ETF throughput, ops/s (median of ${rounds} interleaved rounds); ratio = baton / fastest other library`);
  console.log(`${cpus().length} CPUs, load average ${load()} at the start`);
  if (!E) console.log('erlang_js is not installed: its columns show n/a');
  if (!erlpack) console.log('erlpack (a native addon, optional) did not build: its columns show n/a');
  const rows: string[][] = [];
  for (const [index, entry] of all.entries()) {
    if (only !== undefined && !entry.name.includes(only)) continue;
    // What every library decodes: OTP's own bytes, which must mean the entry's term.
    const input = otp[index]!;
    if (!termEquals(decode(input), entry.term)) throw new Error(`erl's ${entry.name} is not the bench's term`);
    const libs = codecs(entry);
    for (const op of ['encode', 'decode'] as const) {
      const contenders: Record<string, () => unknown> = {};
      for (const [lib, c] of Object.entries(libs)) {
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
              (t) => c.means(t, entry.term),
            )
          )
            contenders[lib] = () => fn(input);
        }
      }
      if (contenders.baton === undefined) throw new Error(`baton cannot ${op} ${entry.name}`);
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
  console.log(`load average ${load()} at the end`);
}
