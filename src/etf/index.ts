/**
 * The External Term Format: Erlang terms as JS values, and the bytes the BEAM
 * exchanges for them (`term_to_binary/1`, the distribution protocol). No I/O.
 */
export { decode, decodeFrom, decodeWithoutVersion, type DecodeOptions } from './decoder.js';
export { encode, encodeSequence, encodeWithoutVersion, type EncodeOptions } from './encoder.js';
export { EtfDecodeError, EtfEncodeError } from './errors.js';
export {
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
  Tuple,
  asList,
  atom,
  charlist,
  charlistToString,
  float,
  improperList,
  mapGet,
  termEquals,
  tuple,
  type Term,
} from './terms.js';
export * as tags from './tags.js';
