/**
 * Erlang's exact equality (`=:=`) over the JS representation of terms, and map lookup
 * by it.
 *
 * Like the codec, the comparison keeps an explicit stack rather than recursing, so it
 * works on terms of any depth the decoder returns. Map keys that are not found by
 * identity are matched against the other map's keys one candidate at a time: a
 * candidate is compared on the same stack (under a probe frame), and a mismatch anywhere
 * above a probe moves that probe to its next candidate instead of ending the comparison.
 */
import {
  Atom,
  BitString,
  Charlist,
  ExportFun,
  Float,
  Fun,
  ImproperList,
  Pid,
  Port,
  Reference,
  type Term,
  Tuple,
} from './terms.js';

const DIFFERENT = 0;
const SAME = 1;
/** Both are containers of the same kind and size: their elements decide. */
const OPEN = 2;

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function isInt(x: Term): x is number | bigint {
  return typeof x === 'bigint' || Number.isSafeInteger(x);
}

/** Compares two terms as far as can be done without looking into their elements. */
function head(a: Term, b: Term): number {
  if (a === b) return SAME;
  if (typeof a === 'bigint' || typeof b === 'bigint') {
    // A bigint built by hand may hold a small value; the decoder never makes one.
    return isInt(a) && isInt(b) && BigInt(a) === BigInt(b) ? SAME : DIFFERENT;
  }
  // NaN never occurs in a term; 0 vs -0 only matters for floats, which are wrapped when integral.
  if (typeof a === 'number' || typeof b === 'number') return DIFFERENT;
  if (a instanceof Float) return b instanceof Float && Object.is(a.value, b.value) ? SAME : DIFFERENT;
  if (a instanceof Atom || b instanceof Atom) return DIFFERENT; // interned
  if (a instanceof Charlist || b instanceof Charlist) {
    if (a instanceof Charlist && b instanceof Charlist) return a.text === b.text ? SAME : DIFFERENT;
    const list = a instanceof Charlist ? b : a;
    const chars = (a instanceof Charlist ? a : b) as Charlist;
    if (!Array.isArray(list)) return DIFFERENT;
    const points = chars.codePoints();
    if (points.length !== list.length) return DIFFERENT;
    for (let i = 0; i < points.length; i++) if (head(points[i]!, list[i]!) !== SAME) return DIFFERENT;
    return SAME;
  }
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return DIFFERENT;
    return a.length === 0 ? SAME : OPEN;
  }
  if (a instanceof Uint8Array) return b instanceof Uint8Array && bytesEqual(a, b) ? SAME : DIFFERENT;
  if (a instanceof Tuple) {
    if (!(b instanceof Tuple) || a.elements.length !== b.elements.length) return DIFFERENT;
    return a.elements.length === 0 ? SAME : OPEN;
  }
  if (a instanceof Map) {
    if (!(b instanceof Map) || a.size !== b.size) return DIFFERENT;
    return a.size === 0 ? SAME : OPEN;
  }
  if (a instanceof ImproperList) {
    return b instanceof ImproperList && a.elements.length === b.elements.length ? OPEN : DIFFERENT;
  }
  if (a instanceof BitString) {
    return b instanceof BitString && a.bits === b.bits && bytesEqual(a.data, b.data) ? SAME : DIFFERENT;
  }
  if (a instanceof Pid) {
    return b instanceof Pid && a.node === b.node && a.id === b.id && a.serial === b.serial && a.creation === b.creation
      ? SAME
      : DIFFERENT;
  }
  if (a instanceof Port) {
    return b instanceof Port && a.node === b.node && a.id === b.id && a.creation === b.creation ? SAME : DIFFERENT;
  }
  if (a instanceof Reference) {
    return b instanceof Reference &&
      a.node === b.node &&
      a.creation === b.creation &&
      a.ids.length === b.ids.length &&
      a.ids.every((id, i) => id === b.ids[i])
      ? SAME
      : DIFFERENT;
  }
  if (a instanceof Fun) return b instanceof Fun && bytesEqual(a.raw, b.raw) ? SAME : DIFFERENT;
  if (a instanceof ExportFun) {
    return b instanceof ExportFun && a.module === b.module && a.fun === b.fun && a.arity === b.arity ? SAME : DIFFERENT;
  }
  return DIFFERENT;
}

const SEQ = 0;
const MAP = 1;
const PROBE = 2;
const NONE: Term[] = [];

/** Elements still to compare: one per pair of containers open on the stack. */
class Frame {
  kind = SEQ;
  /** SEQ: the two element lists. MAP: `xs` is the first map's keys and values, alternating. */
  xs: Term[] = NONE;
  ys: Term[] = NONE;
  i = 0;
  n = 0;
  /** SEQ of an improper list: the tails, compared after the elements. */
  tails = false;
  tx: Term = NONE;
  ty: Term = NONE;
  /** MAP and PROBE: the second map. PROBE: its keys, the candidate tried (`i`), and the pair sought. */
  other: Map<Term, Term> | undefined = undefined;
  key: Term = NONE;
  value: Term = NONE;
  /** PROBE: the candidate's comparison is on the stack above this frame. */
  waiting = false;
}

/** Cycles are looked for only this deep and deeper: few real terms get there, and a cycle repeats until it does. */
const CYCLE_CHECK_DEPTH = 10_000;

/**
 * Erlang's exact equality (`=:=`) over the JS representation: `1` and `float(1)` differ,
 * maps compare by content regardless of order, funs by their encoding.
 */
export function termEquals(a: Term, b: Term): boolean {
  const first = head(a, b);
  return first === OPEN ? compareOpen(a, b) : first === SAME;
}

function compareOpen(a: Term, b: Term): boolean {
  const stack: Frame[] = [];
  // Only a JS value can hold itself, and comparing one would never end: as in
  // encode-stack.ts, the container at each power-of-two depth (past CYCLE_CHECK_DEPTH)
  // is a checkpoint that a cycle brings round again.
  let checkpoint: object | undefined;
  let checkpointDepth = -1;
  const open = (x: Term, y: Term): void => {
    const f = new Frame();
    const depth = stack.length;
    if (depth >= CYCLE_CHECK_DEPTH) {
      if (x === checkpoint) throw new TypeError('termEquals: a term contains itself');
      if ((depth & (depth - 1)) === 0) {
        checkpoint = x as object;
        checkpointDepth = depth;
      }
    }
    if (x instanceof Map) {
      f.kind = MAP;
      f.xs = pairs(x);
      f.n = f.xs.length;
      f.other = y as Map<Term, Term>;
    } else if (x instanceof ImproperList) {
      f.xs = x.elements;
      f.ys = (y as ImproperList).elements;
      f.n = f.xs.length;
      f.tails = true;
      f.tx = x.tail;
      f.ty = (y as ImproperList).tail;
    } else {
      f.xs = x instanceof Tuple ? x.elements : (x as Term[]);
      f.ys = y instanceof Tuple ? y.elements : (y as Term[]);
      f.n = f.xs.length;
    }
    stack.push(f);
  };
  const pop = (): void => {
    stack.pop();
    if (stack.length === checkpointDepth) {
      checkpoint = undefined;
      checkpointDepth = -1;
    }
  };
  /** The pair (x, y): true to go on, false when they differ. */
  const compare = (x: Term, y: Term): boolean => {
    const r = head(x, y);
    if (r === OPEN) open(x, y);
    return r !== DIFFERENT;
  };
  /** Unwinds to the innermost probe waiting on a candidate, which then tries its next; false when none. */
  const mismatch = (): boolean => {
    while (stack.length > 0) {
      const f = stack[stack.length - 1]!;
      if (f.kind === PROBE && f.waiting) {
        f.waiting = false;
        f.i++;
        return true;
      }
      pop();
    }
    return false;
  };

  open(a, b);
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    let same = true;
    if (f.kind === SEQ) {
      if (f.i < f.n) {
        same = compare(f.xs[f.i]!, f.ys[f.i++]!);
      } else if (f.tails) {
        f.tails = false;
        same = compare(f.tx, f.ty);
      } else pop();
    } else if (f.kind === MAP) {
      if (f.i < f.n) {
        const k = f.xs[f.i]!;
        const v = f.xs[f.i + 1]!;
        f.i += 2;
        const other = f.other!;
        if (other.has(k)) same = compare(v, other.get(k)!);
        else if (k instanceof Atom || typeof k === 'number') same = false;
        else {
          const probe = new Frame();
          probe.kind = PROBE;
          probe.key = k;
          probe.value = v;
          probe.other = other;
          probe.ys = [...other.keys()];
          probe.n = probe.ys.length;
          stack.push(probe);
        }
      } else pop();
    } else if (f.waiting) {
      // The candidate's comparison ended without a mismatch: it is the key.
      pop();
      same = compare(f.value, f.other!.get(f.ys[f.i]!)!);
    } else if (f.i < f.n) {
      const r = head(f.key, f.ys[f.i]!);
      if (r === DIFFERENT) f.i++;
      else if (r === SAME) f.waiting = true;
      else {
        f.waiting = true;
        open(f.key, f.ys[f.i]!);
      }
    } else {
      // No key of the other map equals this one.
      pop();
      same = false;
    }
    if (!same && !mismatch()) return false;
  }
  return true;
}

function pairs(map: Map<Term, Term>): Term[] {
  const out: Term[] = [];
  for (const [k, v] of map) out.push(k, v);
  return out;
}

/** Looks a key up in a decoded map by Erlang equality (JS `Map.get` only finds identical keys). */
export function mapGet(map: Map<Term, Term>, key: Term): Term | undefined {
  const direct = map.get(key);
  if (direct !== undefined || map.has(key)) return direct;
  if (key instanceof Atom || typeof key === 'number') return undefined;
  for (const [k, v] of map) if (termEquals(k, key)) return v;
  return undefined;
}
