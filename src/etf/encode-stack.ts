/**
 * Writing terms of any depth with an explicit stack of frames instead of recursion:
 * whatever the decoder accepts (terms as deep as the BEAM writes them, a list 100,000
 * deep is a few hundred KB) encodes again without overflowing the JS stack. The encoder
 * recurses through the first levels of a term, which is faster for the shallow terms
 * nearly every message is, and hands anything deeper to `writeDeep`.
 *
 * Beyond a depth no real term reaches, the walk also watches for a container inside
 * itself: a JS array can hold itself, no Erlang term can, and without a recursion limit
 * such a cycle would never end.
 */
import { EtfEncodeError } from './errors.js';
import * as T from './tags.js';
import { Atom, ImproperList, type Term, Tuple } from './terms.js';
import {
  isByteString,
  type Writer,
  writeAtom,
  writeByteString,
  writeNumber,
  writeOther,
  writeScalar,
} from './writer.js';

const TUPLE = 0;
const LIST = 1;
const IMPROPER = 2;
const MAP = 3;
const NO_ITEMS: Term[] = [];

/** A container being written: one per level of nesting, kept on `frames` instead of the JS stack. */
class Frame {
  kind = TUPLE;
  items: Term[] = NO_ITEMS;
  /** Elements taken so far, and how many there are (a map's are its keys and values, alternating). */
  i = 0;
  n = 0;
  /** An improper list: its tail is still to write. */
  pending = false;
  tail: Term | undefined = undefined;
}

// Shared by every encode: encoding is synchronous and never re-entered.
const frames: Frame[] = [];
const FRAMES_KEPT = 256;
/** Cycles are looked for only this deep and deeper: few real terms get there, and a cycle repeats until it does. */
const CYCLE_CHECK_DEPTH = 10_000;
// A cycle makes the walk go deeper for ever along a path that repeats itself. The
// container at each power-of-two depth is kept as a checkpoint, and each container
// opened below it is compared with it: once the checkpoint lies on the repeating part
// and the cycle fits between it and the next power of two, the same container comes
// round again (Brent's cycle detection). One comparison per level; the checkpoint is
// dropped when the walk climbs back above it.
let checkpoint: object | undefined;
let checkpointDepth = -1;

function push(sp: number, kind: number, container: object, items: Term[], n: number): Frame {
  if (sp >= CYCLE_CHECK_DEPTH) {
    if (container === checkpoint) throw new EtfEncodeError('the term contains itself (a JS cycle)');
    if ((sp & (sp - 1)) === 0) {
      checkpoint = container;
      checkpointDepth = sp;
    }
  }
  let f = frames[sp];
  if (f === undefined) {
    f = new Frame();
    frames.push(f);
  }
  f.kind = kind;
  f.items = items;
  f.i = 0;
  f.n = n;
  return f;
}

/** Closes the frame on level `sp`. */
function pop(sp: number): void {
  const f = frames[sp]!;
  f.items = NO_ITEMS;
  f.tail = undefined;
  if (sp === checkpointDepth) {
    checkpoint = undefined;
    checkpointDepth = -1;
  }
}

/**
 * Writes `root`, however deep. Each turn of the outer loop writes one term's head (all
 * of a term without elements); a container's elements are then taken from the innermost
 * open frame, and a frame closes (a list writes its NIL_EXT) when it has none left. An
 * EtfEncodeError gets the path from `root` to where it struck.
 */
export function writeDeep(w: Writer, root: Term): void {
  let sp = 0;
  let term = root;
  try {
    outer: for (;;) {
      if (typeof term !== 'object') writeScalar(w, term);
      else if (term instanceof Atom) writeAtom(w, term);
      else if (Array.isArray(term)) {
        const n = term.length;
        if (n === 0 || isByteString(term)) writeByteString(w, term);
        else {
          w.tagU32(T.LIST_EXT, n);
          push(sp, LIST, term, term, n);
          sp++;
        }
      } else if (term instanceof Tuple) {
        const n = term.elements.length;
        if (n <= 255) w.tagU8(T.SMALL_TUPLE_EXT, n);
        else w.tagU32(T.LARGE_TUPLE_EXT, n);
        if (n > 0) {
          push(sp, TUPLE, term, term.elements, n);
          sp++;
        }
      } else if (term instanceof Uint8Array) {
        w.tagU32(T.BINARY_EXT, term.length);
        w.bytes(term);
      } else if (term instanceof Map) {
        w.tagU32(T.MAP_EXT, term.size);
        if (term.size > 0) {
          push(sp, MAP, term, pairs(term), term.size * 2);
          sp++;
        }
      } else if (term instanceof ImproperList) {
        const n = term.elements.length;
        if (n === 0) throw new EtfEncodeError('an improper list needs at least one element');
        if (Array.isArray(term.tail) || term.tail instanceof ImproperList) {
          throw new EtfEncodeError('the tail of an improper list must not be a list');
        }
        w.tagU32(T.LIST_EXT, n);
        const f = push(sp, IMPROPER, term, term.elements, n);
        sp++;
        f.tail = term.tail;
        f.pending = true;
      } else writeOther(w, term);

      while (sp > 0) {
        const f = frames[sp - 1]!;
        if (f.i < f.n) {
          // Numbers and atoms are written here at once rather than one per turn of the
          // outer loop: most elements are.
          const items = f.items;
          const n = f.n;
          let i = f.i;
          for (; i < n; i++) {
            const e = items[i];
            if (typeof e === 'number') writeNumber(w, e);
            else if (e instanceof Atom) writeAtom(w, e);
            else break;
          }
          if (i < n) {
            f.i = i + 1;
            term = items[i]!;
            continue outer;
          }
          f.i = i;
        }
        if (f.kind === LIST) w.u8(T.NIL_EXT);
        else if (f.kind === IMPROPER && f.pending) {
          f.pending = false;
          term = f.tail!;
          continue outer;
        }
        pop(--sp);
      }
      if (frames.length > FRAMES_KEPT) frames.length = FRAMES_KEPT;
      return;
    }
  } catch (err) {
    const path = err instanceof EtfEncodeError ? pathTo(sp) : '';
    while (sp > 0) pop(--sp);
    if (frames.length > FRAMES_KEPT) frames.length = FRAMES_KEPT;
    throw path === '' ? err : (err as EtfEncodeError).within(path);
  }
}

/** A map's keys and values, alternating, in its order. */
function pairs(map: Map<Term, Term>): Term[] {
  const out = new Array<Term>(map.size * 2);
  let i = 0;
  map.forEach((v, k) => {
    out[i++] = k;
    out[i++] = v;
  });
  return out;
}

/** Where the term being written when an error struck sits, as `{1}[0]#{key =>}`. */
function pathTo(sp: number): string {
  let path = '';
  for (let i = 0; i < sp; i++) {
    const f = frames[i]!;
    if (f.kind === TUPLE) path += `{${f.i - 1}}`;
    else if (f.kind === LIST || (f.kind === IMPROPER && f.pending)) path += `[${f.i - 1}]`;
    else if (f.kind === IMPROPER) path += '[|tail]';
    else {
      // Keys at even indexes, values at odd ones.
      const atKey = (f.i - 1) % 2 === 0;
      const k = f.items[atKey ? f.i - 1 : f.i - 2];
      const shown = k instanceof Atom || typeof k === 'number' ? String(k) : '…';
      path += atKey ? `#{key ${shown}}` : `#{${shown} =>}`;
    }
  }
  return path;
}
