/**
 * baton's Erlang helpers (erlang/*.erl, built by rebar3) loaded into a peer from their
 * binaries: the release never contains them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Atom, Tuple, atom, charlist, type Term } from '../etf/index.js';
import type { Node } from '../distribution/index.js';
import { PeerError } from './errors.js';

export const HELPER_MODULES = ['baton_peer', 'baton_upgrader'] as const;

/** `_build/default/lib/baton/ebin` of this package (from src/peer or dist/peer alike). */
export function defaultHelperEbin(): string {
  return fileURLToPath(new URL('../../_build/default/lib/baton/ebin', import.meta.url));
}

const cache = new Map<string, Buffer>();

function beam(ebin: string, mod: string): Buffer {
  const p = join(ebin, `${mod}.beam`);
  let b = cache.get(p);
  if (b === undefined) {
    if (!existsSync(p)) throw new PeerError(`baton's helper module ${mod} is not built (${p} is missing; run \`rebar3 compile\`)`);
    b = readFileSync(p);
    cache.set(p, b);
  }
  return b;
}

/**
 * Loads every helper the peer does not have yet. A re-adopted peer keeps what it runs:
 * loading again would make the running watchdog old code, and a third load would purge
 * (kill) it.
 */
export async function loadHelpers(node: Node, peer: string, ebin = defaultHelperEbin(), timeoutMs = 10_000): Promise<void> {
  await Promise.all(
    HELPER_MODULES.map(async (mod) => {
      const loaded = await node.erpc(peer, 'code', 'is_loaded', [atom(mod)], { timeoutMs });
      if (loaded instanceof Tuple) return;
      const bin = beam(ebin, mod);
      const r: Term = await node.erpc(peer, 'code', 'load_binary', [atom(mod), charlist(join(ebin, `${mod}.beam`)), bin], { timeoutMs });
      if (!(r instanceof Tuple && r.elements[0] === atom('module'))) {
        const why = r instanceof Tuple && r.elements[1] instanceof Atom ? r.elements[1].name : String(r);
        throw new PeerError(`loading ${mod} into ${peer} failed: ${why}`);
      }
    }),
  );
}
