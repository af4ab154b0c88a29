/**
 * The External Term Format: Erlang terms as JS values, and the bytes the BEAM
 * exchanges for them (`term_to_binary/1`, the distribution protocol). No I/O.
 */
export { type DecodeOptions, decode, decodeFrom, decodeWithoutVersion } from './decoder.js';
export { type EncodeOptions, encode, encodeSequence, encodeWithoutVersion } from './encoder.js';
export { mapGet, termEquals } from './equality.js';
export { EtfDecodeError, EtfEncodeError } from './errors.js';
export { showTerm } from './show.js';
export * as tags from './tags.js';
export {
  Atom,
  asList,
  atom,
  BitString,
  Charlist,
  charlist,
  charlistToString,
  ExportFun,
  Float,
  Fun,
  float,
  ImproperList,
  improperList,
  Pid,
  Port,
  Reference,
  type Term,
  Tuple,
  tuple,
} from './terms.js';
