/**
 * `npm run demo`: what baton can do so far, against a real BEAM. A real `erl` writes a
 * term with term_to_binary/1; baton decodes it, builds a reply, and erl reads that
 * back with binary_to_term/1 and prints it. The demo grows with baton: peers and
 * upgrades join it as they land.
 */
import { execFileSync } from 'node:child_process';
import { inspect } from 'node:util';
import { atom, charlist, decode, encode, tuple, type Term } from '../src/etf/index.js';

function erl(expr: string): string {
  return execFileSync('erl', ['-noshell', '-eval', `${expr}, halt().`], { encoding: 'utf8' });
}

const step = (text: string) => console.log(`\n== ${text}`);

step('erl: term_to_binary of a term with every kind of value');
const hex = erl(
  `io:format("~s", [binary:encode_hex(term_to_binary({self(), make_ref(), #{name => <<"baton">>, pi => 3.14, one => 1.0}, "a charlist", [1, 2 | tail], 1 bsl 70, fun lists:map/2, <<5:3>>}))])`,
);
const bytes = Buffer.from(hex, 'hex');
console.log(`${bytes.length} bytes from the BEAM`);

step('baton: decode');
const term = decode(bytes);
console.log(inspect(term, { depth: 5, colors: process.stdout.isTTY }));
const same = encode(term, { minorVersion: 1 }).equals(bytes);
console.log(`re-encoded byte for byte: ${same}`);

step('baton: encode a reply, erl: binary_to_term');
const reply: Term = tuple(atom('ok'), charlist('from TypeScript'), new Map<Term, Term>([[atom('seen'), term]]));
const out = erl(`io:format("~p~n", [binary_to_term(binary:decode_hex(<<"${encode(reply).toString('hex')}">>))])`);
console.log(out.trim());

if (!same) process.exitCode = 1;
