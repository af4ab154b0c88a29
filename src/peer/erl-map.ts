/**
 * Typed reads of the maps baton's Erlang helpers answer with (`#{atom_key => Value}`):
 * one reader for every answer, so a missing or oddly typed field reads as absent
 * rather than throwing halfway through a decode.
 */
import { Atom, asList, atom, mapGet, type Term } from '../etf/index.js';

export class ErlMap {
  private constructor(private readonly m: Map<Term, Term>) {}

  /** `t` when it is a map, else an empty one. */
  static of(t: Term | undefined): ErlMap {
    return new ErlMap(t instanceof Map ? t : new Map());
  }

  get(key: string): Term | undefined {
    return mapGet(this.m, atom(key));
  }

  /** An atom's name, a binary as UTF-8, anything else as `String(t)` (missing: `undefined`). */
  text(key: string): string {
    return termText(this.get(key));
  }

  /** The atom's name, when the value is an atom. */
  atom(key: string): string | undefined {
    const v = this.get(key);
    return v instanceof Atom ? v.name : undefined;
  }

  /** The binary as UTF-8, when the value is a binary. */
  binary(key: string): string | undefined {
    const v = this.get(key);
    return Buffer.isBuffer(v) ? v.toString('utf8') : undefined;
  }

  /** The value when it is a number (an integer or a float). */
  number(key: string): number | undefined {
    const v = this.get(key);
    return typeof v === 'number' ? v : undefined;
  }

  /** `true` only for the atom `true`. */
  flag(key: string): boolean {
    return this.get(key) === atom('true');
  }

  /** The elements of a proper list (missing or not a list: none). */
  list(key: string): Term[] {
    return termList(this.get(key));
  }

  /** A list of maps, each read with this reader. */
  maps(key: string): ErlMap[] {
    return this.list(key).map(ErlMap.of);
  }

  /** A nested map. */
  map(key: string): ErlMap {
    return ErlMap.of(this.get(key));
  }

  /** The entries whose key is an atom and whose value is a number, by the atom's name. */
  numbers(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of this.m) if (k instanceof Atom && typeof v === 'number') out[k.name] = v;
    return out;
  }
}

/** An atom's name, a binary as UTF-8, anything else as `String(t)`. */
export function termText(t: Term | undefined): string {
  if (t instanceof Atom) return t.name;
  if (Buffer.isBuffer(t)) return t.toString('utf8');
  return String(t);
}

/** The elements of a proper list; anything else: none. */
export function termList(t: Term | undefined): Term[] {
  return (t === undefined ? undefined : asList(t)) ?? [];
}
