/**
 * Reading terms of any depth with an explicit stack of frames instead of recursion: the
 * BEAM writes and reads terms nested as deep as memory allows (a list 100,000 deep is a
 * few hundred KB), and a recursive decoder would either refuse them or overflow the JS
 * stack. The decoder recurses through the first levels of a term, which is faster for
 * the shallow terms nearly every message is, and hands anything deeper to `readDeep`.
 *
 * Each level takes at least one input byte and its frame a few dozen bytes, and the
 * elements all containers declare may not outnumber the input's bytes (see
 * Reader.budget), so what hostile nesting makes the decoder allocate stays a small
 * multiple of the input. A list's tail that is itself a list (`[a | [b | [c]]]`, which
 * the BEAM never writes but may be sent) continues the same frame rather than nesting,
 * so it costs neither depth nor quadratic copying.
 */
import { type FunParts, funEnd, funHead, leafOf, type Reader, shown } from './reader.js';
import * as T from './tags.js';
import { ImproperList, type Term, Tuple } from './terms.js';

const TUPLE = 0;
/** A list whose latest LIST_EXT had elements (or the first one). */
const LIST = 1;
/** A list whose latest LIST_EXT had none: its tail may not be a non-list. */
const LIST0 = 2;
const MAP = 3;
const FUN = 4;
const NO_ITEMS: Term[] = [];

/** An open container: one per level of nesting, kept on `frames` instead of the JS stack. */
class Frame {
  kind = TUPLE;
  /** A tuple's or list's elements, a map, or a fun's parts. */
  content: Term[] | Map<Term, Term> | FunParts = NO_ITEMS;
  /** A map's key whose value comes next. */
  key: Term | undefined = undefined;
  /** Elements read so far (a map: pairs), and how many there are. */
  i = 0;
  n = 0;
  /** Where the container starts (a list: its latest LIST_EXT), for errors. */
  at = 0;
}

// Shared by every decode: decoding is synchronous and never re-entered while frames are
// in use (a compressed term is inflated and decoded before its outer reader opens any).
const frames: Frame[] = [];
/** Frames kept between decodes; a deeper term's are let go after it. */
const FRAMES_KEPT = 256;

/** 1 for the tags of terms that hold other terms (opened as frames), 0 for leaves. */
const HAS_ELEMENTS = new Uint8Array(256);
for (const tag of [T.SMALL_TUPLE_EXT, T.LARGE_TUPLE_EXT, T.LIST_EXT, T.MAP_EXT, T.NEW_FUN_EXT]) HAS_ELEMENTS[tag] = 1;

/**
 * Opens a container at `at` of `n` elements as frame `sp`, `depth` containers deep in
 * the whole term; `terms` counts its tail or values too.
 */
function open(
  r: Reader,
  sp: number,
  depth: number,
  kind: number,
  content: Term[] | Map<Term, Term> | FunParts,
  n: number,
  terms: number,
  at: number,
): void {
  r.container(depth, terms, at);
  let f = frames[sp];
  if (f === undefined) {
    f = new Frame();
    frames.push(f);
  }
  f.kind = kind;
  f.content = content;
  f.i = 0;
  f.n = n;
  f.at = at;
}

/** Drops what a frame points to, so the pool does not keep a decoded term alive. */
function release(f: Frame): void {
  f.content = NO_ITEMS;
  f.key = undefined;
}

/**
 * One term, containers and all, whose first container lies `base` containers deep in
 * the whole term. Each turn of the outer loop reads one term's head: a leaf becomes
 * `value`, a container with elements is opened as a frame and the following turns read
 * its elements. A value is then handed to the innermost open container, closing each
 * container it completes; the outermost one's value is the result.
 */
export function readDeep(r: Reader, base: number): Term {
  let sp = 0;
  try {
    let value: Term = NO_ITEMS;
    // The innermost container was just opened: no value to hand it, its elements to read.
    let fresh = false;
    outer: for (;;) {
      const at = r.pos;
      const tag = r.u8();
      switch (tag) {
        case T.SMALL_TUPLE_EXT:
        case T.LARGE_TUPLE_EXT: {
          const n = tag === T.SMALL_TUPLE_EXT ? r.u8() : r.u32();
          if (n === 0) {
            value = new Tuple([]);
            break;
          }
          // Every element takes at least one byte: a larger arity cannot be real.
          if (n > r.buf.length - r.pos) r.need(n, `a tuple of ${n} elements`);
          open(r, sp, base + sp++, TUPLE, new Array<Term>(n), n, n, at);
          fresh = true;
          break;
        }
        case T.LIST_EXT: {
          const n = r.u32();
          if (n >= r.buf.length - r.pos) r.need(n + 1, `a list of ${n} elements`);
          open(r, sp, base + sp++, n === 0 ? LIST0 : LIST, new Array<Term>(n), n, n + 1, at);
          const f = frames[sp - 1]!;
          if (n > 0 || !listEnds(r, f)) {
            // Elements to read, or (after LIST_EXT of none) a tail that is not a list.
            if (f.i === f.n) continue outer;
            fresh = true;
            break;
          }
          // LIST_EXT of no elements, then a list that ended it.
          sp--;
          value = f.content as Term[];
          release(f);
          break;
        }
        case T.MAP_EXT: {
          const n = r.u32();
          if (n * 2 > r.buf.length - r.pos) r.need(n * 2, `a map of ${n} pairs`);
          if (n === 0) {
            value = new Map<Term, Term>();
            break;
          }
          open(r, sp, base + sp++, MAP, new Map<Term, Term>(), n, n * 2, at);
          fresh = true;
          break;
        }
        case T.NEW_FUN_EXT: {
          const { parts, free } = funHead(r, at);
          if (free > 0) {
            open(r, sp, base + sp++, FUN, parts, free, free, at);
            continue outer;
          }
          value = funEnd(r, parts, at);
          break;
        }
        default:
          value = leafOf(r, tag, at);
      }
      while (sp > 0) {
        const f = frames[sp - 1]!;
        const kind = f.kind;
        if (kind === TUPLE || (kind !== MAP && kind !== FUN && f.i < f.n)) {
          const items = f.content as Term[];
          const n = f.n;
          let i = f.i;
          if (fresh) fresh = false;
          else items[i++] = value;
          // Elements that are leaves are read here at once rather than one per turn of
          // the outer loop: most elements are.
          while (i < n) {
            const tag = r.buf[r.pos];
            if (tag === undefined || HAS_ELEMENTS[tag] === 1) break;
            const at = r.pos++;
            items[i++] = leafOf(r, tag, at);
          }
          f.i = i;
          if (i < n) continue outer;
          if (kind === TUPLE) value = new Tuple(items);
          else if (listEnds(r, f)) value = items;
          else continue outer;
        } else if (kind === LIST || kind === LIST0) {
          // The tail, which listEnds left to read because it is not a list.
          if (kind === LIST0) r.fail('LIST_EXT of zero elements with a non-list tail', f.at);
          value = new ImproperList(f.content as Term[], value);
        } else if (kind === MAP) {
          const map = f.content as Map<Term, Term>;
          let key = f.key;
          let v: Term = value;
          let got = !fresh;
          fresh = false;
          for (;;) {
            if (got) {
              if (key === undefined) key = v;
              else {
                if (map.has(key)) r.fail(`map has the key ${shown(key)} twice`, f.at);
                map.set(key, v);
                key = undefined;
                if (++f.i === f.n) break;
              }
            }
            const tag = r.buf[r.pos];
            if (tag === undefined || HAS_ELEMENTS[tag] === 1) break;
            const at = r.pos++;
            v = leafOf(r, tag, at);
            got = true;
          }
          f.key = key;
          if (f.i < f.n) continue outer;
          value = map;
        } else {
          // A fun's free variables are read and dropped: the fun keeps its encoding.
          if (++f.i < f.n) continue outer;
          value = funEnd(r, f.content as FunParts, f.at);
        }
        release(f);
        sp--;
      }
      if (frames.length > FRAMES_KEPT) frames.length = FRAMES_KEPT;
      return value;
    }
  } catch (err) {
    // `sp` may count a level whose opening failed: it has no frame of its own yet.
    for (let i = 0; i < sp && i < frames.length; i++) release(frames[i]!);
    if (frames.length > FRAMES_KEPT) frames.length = FRAMES_KEPT;
    throw err;
  }
}

/**
 * Called when a list's elements are all read: reads on as long as what follows goes on
 * with the same list (NIL_EXT ends it, STRING_EXT adds its characters and ends it,
 * LIST_EXT adds elements). True when the list is complete and proper; false when
 * elements or a tail that is not a list remain to be read (elements when `f.i < f.n`).
 */
function listEnds(r: Reader, f: Frame): boolean {
  for (;;) {
    const tag = r.buf[r.pos];
    if (tag === T.NIL_EXT) {
      r.pos++;
      return true;
    }
    if (tag === T.STRING_EXT) {
      // [a | "bc"] is [a, b, c]: the BEAM never writes it so, but it is the same term.
      r.pos++;
      const len = r.u16();
      const chars = r.bytes(len, 'STRING_EXT');
      const items = f.content as Term[];
      for (let k = 0; k < len; k++) items.push(chars[k]!);
      return true;
    }
    if (tag !== T.LIST_EXT) return false;
    const at = r.pos++;
    const n = r.u32();
    if (n >= r.buf.length - r.pos) r.need(n + 1, `a list of ${n} elements`);
    r.container(0, n + 1, at);
    f.at = at;
    f.n += n;
    f.kind = n === 0 ? LIST0 : LIST;
    if (n > 0) return false;
  }
}
