/**
 * Reads Erlang term files (`.app`, `sys.config`, `.rel`) the way `file:consult/1` does,
 * for the subset those files use: atoms, numbers, strings, binaries of strings, tuples,
 * lists (proper and `[H | T]`), maps, and `%` comments. Terms come back as the ETF
 * area's JS values, so they compare with `termEquals`.
 */
import { Atom, atom, charlist, float, ImproperList, type Term, Tuple } from '../etf/index.js';
import { TermSyntaxError } from './errors.js';

const ESCAPES: Record<string, string> = {
  n: '\n',
  t: '\t',
  r: '\r',
  s: ' ',
  e: '\x1b',
  b: '\b',
  f: '\f',
  v: '\v',
  d: '\x7f',
  '\\': '\\',
  '"': '"',
  "'": "'",
};

class Reader {
  private pos = 0;
  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {}

  fail(reason: string): never {
    throw new TermSyntaxError(reason, this.pos, this.file);
  }

  skip(): void {
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined) return;
      if (c === '%') {
        const nl = this.text.indexOf('\n', this.pos);
        this.pos = nl < 0 ? this.text.length : nl + 1;
      } else if (/\s/.test(c)) this.pos++;
      else return;
    }
  }

  atEnd(): boolean {
    this.skip();
    return this.pos >= this.text.length;
  }

  eat(s: string): boolean {
    this.skip();
    if (this.text.startsWith(s, this.pos)) {
      this.pos += s.length;
      return true;
    }
    return false;
  }

  expect(s: string): void {
    if (!this.eat(s)) this.fail(`expected '${s}'`);
  }

  term(): Term {
    this.skip();
    const c = this.text[this.pos];
    if (c === undefined) this.fail('unexpected end of input');
    if (c === '{') return new Tuple(this.seq('{', '}'));
    if (c === '[') return this.list();
    if (c === '#') {
      this.pos++;
      const m = new Map<Term, Term>();
      this.expect('{');
      if (this.eat('}')) return m;
      do {
        const k = this.term();
        this.expect('=>');
        m.set(k, this.term());
      } while (this.eat(','));
      this.expect('}');
      return m;
    }
    if (c === '<' && this.text.startsWith('<<', this.pos)) {
      this.pos += 2;
      const parts: Buffer[] = [];
      if (!this.eat('>>')) {
        // Segments are strings (`<<"x"/utf8>>`) or bytes (`<<104,105>>`, what releases write).
        do {
          this.skip();
          if (this.text[this.pos] === '"') {
            parts.push(Buffer.from(this.quoted('"')));
            this.eat('/utf8');
          } else {
            const byte = this.term();
            if (typeof byte !== 'number' || !Number.isInteger(byte) || byte < 0 || byte > 255)
              this.fail('binary segments must be strings or bytes');
            parts.push(Buffer.from([byte]));
          }
        } while (this.eat(','));
        this.expect('>>');
      }
      return Buffer.concat(parts);
    }
    if (c === '"') {
      let s = this.quoted('"');
      // Adjacent string literals concatenate.
      for (this.skip(); this.text[this.pos] === '"'; this.skip()) s += this.quoted('"');
      return charlist(s);
    }
    if (c === "'") return atom(this.quoted("'"));
    if (c === '$') {
      this.pos++;
      let ch = this.text[this.pos++] ?? this.fail('unexpected end after $');
      if (ch === '\\') ch = ESCAPES[this.text[this.pos++] ?? ''] ?? this.fail('unknown escape');
      return ch.codePointAt(0) ?? 0;
    }
    const num = /^[-+]?\d+(?:#[0-9a-zA-Z]+|\.\d+(?:[eE][-+]?\d+)?)?/.exec(this.text.slice(this.pos, this.pos + 400));
    if (num) {
      this.pos += num[0].length;
      const t = num[0];
      if (t.includes('#')) {
        const [base, digits] = t.split('#');
        return parseInt(digits ?? '', Number(base));
      }
      if (t.includes('.')) {
        const v = Number(t);
        return Number.isInteger(v) ? float(v) : v;
      }
      const big = BigInt(t);
      return Number.isSafeInteger(Number(big)) ? Number(big) : big;
    }
    const bare = /^[a-z][a-zA-Z0-9_@]*/.exec(this.text.slice(this.pos, this.pos + 256));
    if (bare) {
      this.pos += bare[0].length;
      return atom(bare[0]);
    }
    return this.fail(`unexpected character '${c}'`);
  }

  private seq(open: string, close: string): Term[] {
    this.expect(open);
    const items: Term[] = [];
    if (this.eat(close)) return items;
    do items.push(this.term());
    while (this.eat(','));
    this.expect(close);
    return items;
  }

  private list(): Term {
    this.expect('[');
    const items: Term[] = [];
    if (this.eat(']')) return items;
    do items.push(this.term());
    while (this.eat(','));
    if (this.eat('|')) {
      const tail = this.term();
      this.expect(']');
      if (Array.isArray(tail)) return [...items, ...tail];
      return new ImproperList(items, tail);
    }
    this.expect(']');
    return items;
  }

  private quoted(q: string): string {
    this.pos++;
    let out = '';
    for (;;) {
      const c = this.text[this.pos++];
      if (c === undefined) this.fail('unterminated quoted text');
      if (c === q) return out;
      if (c === '\\') {
        const e = this.text[this.pos++] ?? '';
        const oct = /^[0-7]{1,3}/.exec(this.text.slice(this.pos - 1, this.pos + 2));
        if (oct) {
          this.pos += oct[0].length - 1;
          out += String.fromCodePoint(parseInt(oct[0], 8));
        } else out += ESCAPES[e] ?? e;
      } else out += c;
    }
  }
}

/** All the dot-terminated terms of `text`, like `file:consult/1`. */
export function consult(text: string, file = ''): Term[] {
  const r = new Reader(text, file);
  const terms: Term[] = [];
  while (!r.atEnd()) {
    terms.push(r.term());
    r.expect('.');
  }
  return terms;
}

/** `[{key, value}, ...]` lookup, as `proplists:get_value/2`. */
export function propGet(list: Term | undefined, key: string): Term | undefined {
  if (!Array.isArray(list)) return undefined;
  for (const item of list) {
    if (item instanceof Tuple && item.length === 2 && item.at(0) === atom(key)) return item.at(1);
  }
  return undefined;
}

export function atomName(t: Term | undefined): string | undefined {
  return t instanceof Atom ? t.name : undefined;
}
