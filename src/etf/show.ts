/**
 * A term as one line of text for a message or a log, bounded however deep or long the
 * term is: `String(term)` on a received list recurses through `Array.prototype.join` and
 * overflows the stack on a deeply nested one, and prints a whole 1 MiB binary.
 */
import { inspect } from 'node:util';
import type { Term } from './terms.js';

export function showTerm(term: Term): string {
  return inspect(term, { depth: 6, compact: true, breakLength: Infinity, maxArrayLength: 50, maxStringLength: 200 });
}
