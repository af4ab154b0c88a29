/**
 * Distribution capability flags (`dist.hrl`). 64 bits wide since OTP 23, so bigint.
 */
export const DFLAG = {
  PUBLISHED: 0x1n,
  ATOM_CACHE: 0x2n,
  EXTENDED_REFERENCES: 0x4n,
  DIST_MONITOR: 0x8n,
  FUN_TAGS: 0x10n,
  DIST_MONITOR_NAME: 0x20n,
  HIDDEN_ATOM_CACHE: 0x40n,
  NEW_FUN_TAGS: 0x80n,
  EXTENDED_PIDS_PORTS: 0x100n,
  EXPORT_PTR_TAG: 0x200n,
  BIT_BINARIES: 0x400n,
  NEW_FLOATS: 0x800n,
  UNICODE_IO: 0x1000n,
  DIST_HDR_ATOM_CACHE: 0x2000n,
  SMALL_ATOM_TAGS: 0x4000n,
  UTF8_ATOMS: 0x10000n,
  MAP_TAG: 0x20000n,
  BIG_CREATION: 0x40000n,
  SEND_SENDER: 0x80000n,
  BIG_SEQTRACE_LABELS: 0x100000n,
  EXIT_PAYLOAD: 0x400000n,
  FRAGMENTS: 0x800000n,
  HANDSHAKE_23: 0x1000000n,
  UNLINK_ID: 0x2000000n,
  MANDATORY_25_DIGEST: 0x4000000n,
  SPAWN: 1n << 32n,
  NAME_ME: 1n << 33n,
  V4_NC: 1n << 34n,
  ALIAS: 1n << 35n,
} as const;

/** What an OTP 25 node insists on (`?MANDATORY_DFLAGS_25`); `MANDATORY_25_DIGEST` stands for all of them. */
export const MANDATORY_25 =
  DFLAG.EXTENDED_REFERENCES |
  DFLAG.FUN_TAGS |
  DFLAG.NEW_FUN_TAGS |
  DFLAG.EXTENDED_PIDS_PORTS |
  DFLAG.EXPORT_PTR_TAG |
  DFLAG.BIT_BINARIES |
  DFLAG.NEW_FLOATS |
  DFLAG.UTF8_ATOMS |
  DFLAG.MAP_TAG |
  DFLAG.BIG_CREATION |
  DFLAG.HANDSHAKE_23;

/**
 * What baton offers. No PUBLISHED: baton is a hidden node, so the peer's `nodes()` stays
 * the user's cluster. DIST_MONITOR(_NAME) are not optional in practice: without them
 * the peer never delivers the erpc monitor exit. UNLINK_ID and V4_NC are mandatory
 * from OTP 26, so baton speaks them (and acknowledges UNLINK_ID) already.
 * No ATOM_CACHE/FRAGMENTS: every frame uses the pass-through 'p' form. Measured before
 * deciding (OTP 25, this repo's erpc bench): the peer decodes a whole erpc SPAWN_REQUEST
 * (control and payload, atoms as text) in about 1 µs, and atom encode/decode is under
 * 1 µs of baton's own CPU per call, against a round trip of 45 µs or more; the cache
 * would save a few per cent at most and adds per-connection state both ways.
 */
export const OUR_FLAGS =
  MANDATORY_25 |
  DFLAG.MANDATORY_25_DIGEST |
  DFLAG.DIST_MONITOR |
  DFLAG.DIST_MONITOR_NAME |
  DFLAG.UNICODE_IO |
  DFLAG.SMALL_ATOM_TAGS |
  DFLAG.SEND_SENDER |
  DFLAG.BIG_SEQTRACE_LABELS |
  DFLAG.EXIT_PAYLOAD |
  DFLAG.UNLINK_ID |
  DFLAG.SPAWN |
  DFLAG.V4_NC |
  DFLAG.ALIAS;

/** A peer's flags with the OTP 25 shorthand expanded, as `dist_util:expand_mandatory_25_flag/1` does. */
export function expandFlags(flags: bigint): bigint {
  return (flags & DFLAG.MANDATORY_25_DIGEST) !== 0n ? flags | MANDATORY_25 : flags;
}

/** The flags missing from `peerFlags` that baton cannot work without, or 0n. */
export function missingMandatory(peerFlags: bigint): bigint {
  return MANDATORY_25 & ~expandFlags(peerFlags);
}

/** Both sides use a capability only when both announced it. */
export function negotiate(ours: bigint, theirs: bigint): bigint {
  return ours & expandFlags(theirs);
}

export function hasFlag(flags: bigint, flag: bigint): boolean {
  return (flags & flag) !== 0n;
}
