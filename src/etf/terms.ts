/**
 * Erlang terms as JS values, chosen so that nothing is lost either way:
 *
 * | Erlang            | JS                                                        |
 * |-------------------|-----------------------------------------------------------|
 * | integer           | `number` when a safe integer, else `bigint`               |
 * | float             | `number` when not integral, else `Float` (so 1.0 ≠ 1)      |
 * | atom              | `Atom` (interned: `atom('ok') === atom('ok')`)            |
 * | binary            | `Buffer` (any `Uint8Array` is accepted when encoding)     |
 * | bitstring         | `BitString`                                               |
 * | proper list       | `Term[]`, or `Charlist` for a list of character codes     |
 * | improper list     | `ImproperList`                                            |
 * | tuple             | `Tuple`                                                   |
 * | map               | `Map<Term, Term>` (wire order kept, so re-encoding is exact) |
 * | pid, port, ref    | `Pid`, `Port`, `Reference` with node and creation         |
 * | fun               | `Fun` (opaque, re-encodes byte for byte)                  |
 * | external fun      | `ExportFun`                                               |
 *
 * JS strings, booleans, null and undefined are refused by the encoder rather than
 * guessed at: use `atom('true')`, `Buffer.from(s)` or `charlist(s)`.
 */
import { type InspectOptions, inspect } from 'node:util';

export type Term =
  | number
  | bigint
  | Float
  | Atom
  | Uint8Array
  | BitString
  | Term[]
  | Charlist
  | ImproperList
  | Tuple
  | Map<Term, Term>
  | Pid
  | Port
  | Reference
  | Fun
  | ExportFun;

const atomTable = new Map<string, WeakRef<Atom>>();
// Atoms are interned so that identity is equality (and atoms work as JS Map keys), but
// only while something holds them: a peer sending many distinct atoms cannot grow
// this table without bound.
const atomReaper = new FinalizationRegistry<string>((name) => {
  const ref = atomTable.get(name);
  if (ref !== undefined && ref.deref() === undefined) atomTable.delete(name);
});

export class Atom {
  private constructor(readonly name: string) {}

  static of(name: string): Atom {
    const existing = atomTable.get(name)?.deref();
    if (existing !== undefined) return existing;
    const created = new Atom(name);
    atomTable.set(name, new WeakRef(created));
    atomReaper.register(created, name);
    return created;
  }

  toString(): string {
    return /^[a-z][a-zA-Z0-9_@]*$/.test(this.name)
      ? this.name
      : `'${this.name.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

export function atom(name: string): Atom {
  return Atom.of(name);
}

/** An Erlang float whose value is integral (1.0, -0.0, 1.0e300): a plain JS number would encode as an integer. */
export class Float {
  constructor(readonly value: number) {}

  valueOf(): number {
    return this.value;
  }

  toString(): string {
    return Object.is(this.value, -0) ? '-0.0' : Number.isInteger(this.value) ? `${this.value}.0` : `${this.value}`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

export function float(value: number): Float {
  return new Float(value);
}

/**
 * Options for inspecting the elements of a term inspected with `depth` levels left: each
 * `inspect` call counts its depth afresh, so passing the options on unchanged would let
 * nested tuples print (and recurse) without end.
 */
function nested(depth: number, options: InspectOptions): InspectOptions {
  return { ...options, depth: options.depth === null ? null : depth - 1 };
}

export class Tuple {
  readonly elements: Term[];

  constructor(elements: Term[]) {
    this.elements = elements;
  }

  get length(): number {
    return this.elements.length;
  }

  /** 0-based, unlike `element/2`. */
  at(index: number): Term | undefined {
    return this.elements[index];
  }

  [inspect.custom](depth: number, options: InspectOptions): string {
    if (depth < 0) return '{…}';
    const inner = nested(depth, options);
    return `{${this.elements.map((e) => inspect(e, inner)).join(', ')}}`;
  }
}

export function tuple(...elements: Term[]): Tuple {
  return new Tuple(elements);
}

/** `[a, b | tail]` where `tail` is not a list. */
export class ImproperList {
  constructor(
    readonly elements: Term[],
    readonly tail: Term,
  ) {}

  [inspect.custom](depth: number, options: InspectOptions): string {
    if (depth < 0) return '[… | …]';
    const inner = nested(depth, options);
    return `[${this.elements.map((e) => inspect(e, inner)).join(', ')} | ${inspect(this.tail, inner)}]`;
  }
}

export function improperList(elements: Term[], tail: Term): ImproperList {
  return new ImproperList(elements, tail);
}

/** A bitstring whose size is not a whole number of bytes: `bits` (1–7) of the last byte are used. */
export class BitString {
  constructor(
    readonly data: Uint8Array,
    readonly bits: number,
  ) {}

  get bitSize(): number {
    return (this.data.length - 1) * 8 + this.bits;
  }

  [inspect.custom](): string {
    const last = this.data.length - 1;
    const whole = Array.from(this.data.subarray(0, last)).join(',');
    const tail = `${(this.data[last] ?? 0) >> (8 - this.bits)}:${this.bits}`;
    return `<<${whole ? `${whole},` : ''}${tail}>>`;
  }
}

export class Pid {
  constructor(
    readonly node: Atom,
    readonly id: number,
    readonly serial: number,
    readonly creation: number,
  ) {}

  /** As the pid prints on its own node: `<0.id.serial>`. */
  toString(): string {
    return `<0.${this.id}.${this.serial}>`;
  }

  [inspect.custom](): string {
    return `#Pid<${this.id}.${this.serial}@${this.node.name}/${this.creation}>`;
  }
}

export class Port {
  constructor(
    readonly node: Atom,
    readonly id: bigint,
    readonly creation: number,
  ) {}

  toString(): string {
    return `#Port<0.${this.id}>`;
  }

  [inspect.custom](): string {
    return `#Port<${this.id}@${this.node.name}/${this.creation}>`;
  }
}

export class Reference {
  /** `ids` as on the wire (least significant word first), 1 to 5 words. */
  constructor(
    readonly node: Atom,
    readonly creation: number,
    readonly ids: readonly number[],
  ) {}

  /** As the reference prints on its own node: `#Ref<0.c.b.a>` (most significant word first). */
  toString(): string {
    return `#Ref<0.${[...this.ids].reverse().join('.')}>`;
  }

  [inspect.custom](): string {
    return `#Ref<${[...this.ids].reverse().join('.')}@${this.node.name}/${this.creation}>`;
  }
}

/** A fun (NEW_FUN_EXT). Kept opaque: only the module and arity are read out, and it re-encodes identically. */
export class Fun {
  constructor(
    readonly module: Atom,
    readonly arity: number,
    /** The encoding after the tag byte, size field included. */
    readonly raw: Uint8Array,
  ) {}

  [inspect.custom](): string {
    return `#Fun<${this.module.name}/${this.arity}>`;
  }
}

/** `fun Module:Function/Arity`. */
export class ExportFun {
  constructor(
    readonly module: Atom,
    readonly fun: Atom,
    readonly arity: number,
  ) {}

  [inspect.custom](): string {
    return `fun ${this.module}:${this.fun}/${this.arity}`;
  }
}

/**
 * A proper list of character codes (an Erlang string) held as JS text: what the BEAM
 * sends as STRING_EXT decodes to this, so `"hello"` from `io_lib:format/2` reads as
 * text. It is a list all the same: it equals the array of its code points.
 */
export class Charlist {
  private points: number[] | undefined;
  private decoded: string | undefined;
  /** Set when decoded from STRING_EXT: its bytes, one per character, read lazily. */
  private latin1: Uint8Array | undefined;

  constructor(text: string) {
    this.decoded = text;
  }

  /**
   * A charlist over STRING_EXT bytes (each a character code 0–255). Like a decoded
   * binary it is a view into those bytes: the text is built on first use, so decoding
   * a long string costs no more than decoding a binary.
   */
  static fromLatin1(bytes: Uint8Array): Charlist {
    const c = new Charlist('');
    c.decoded = undefined;
    c.latin1 = bytes;
    return c;
  }

  get text(): string {
    if (this.decoded === undefined) {
      const b = this.latin1!;
      this.decoded = Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
    }
    return this.decoded;
  }

  /** The STRING_EXT bytes this charlist was decoded from, if it was. */
  latin1Bytes(): Uint8Array | undefined {
    return this.latin1;
  }

  /** The elements of the list. */
  codePoints(): number[] {
    if (this.points === undefined) {
      const out: number[] = [];
      if (this.latin1 !== undefined) for (const b of this.latin1) out.push(b);
      else for (const ch of this.text) out.push(ch.codePointAt(0)!);
      this.points = out;
    }
    return this.points;
  }

  get length(): number {
    return this.latin1 !== undefined ? this.latin1.length : this.codePoints().length;
  }

  toString(): string {
    return this.text;
  }

  [inspect.custom](): string {
    return JSON.stringify(this.text);
  }
}

/**
 * The elements of a proper list, or `undefined` when the term is not one. Use it where
 * Erlang code would match a list: the BEAM sends a list of small integers (`[1, 2]`,
 * `"ok"`) as STRING_EXT, which decodes to a `Charlist`, not an array.
 */
export function asList(term: Term): Term[] | undefined {
  if (Array.isArray(term)) return term;
  if (term instanceof Charlist) return term.codePoints();
  return undefined;
}

/** A charlist (Erlang string) from a JS string. */
export function charlist(text: string): Charlist {
  return new Charlist(text);
}

/** The JS string a charlist spells, or `undefined` when the term is not a list of code points. */
export function charlistToString(term: Term): string | undefined {
  if (term instanceof Charlist) return term.text;
  if (!Array.isArray(term)) return undefined;
  let out = '';
  for (const c of term) {
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 0 || c > 0x10ffff) return undefined;
    out += String.fromCodePoint(c);
  }
  return out;
}
