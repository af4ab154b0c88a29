/**
 * baton's Erlang helpers (erlang/*.erl, built by rebar3) loaded into a peer from their
 * binaries: the release never contains them.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Node } from '../distribution/index.js';
import { Atom, atom, charlist, showTerm, type Term, Tuple } from '../etf/index.js';
import { PeerError } from './errors.js';

export const HELPER_MODULES = ['baton_peer', 'baton_endpoint', 'baton_upgrader'] as const;

/** `_build/default/lib/baton/ebin` of this package (from src/peer or dist/peer alike). */
export function defaultHelperEbin(): string {
  return fileURLToPath(new URL('../../_build/default/lib/baton/ebin', import.meta.url));
}

const run = promisify(execFile);

/**
 * Where the helper beams are: rebar3's build of this package when present (a checkout),
 * else compiled once from the shipped `erlang/*.erl` with `erlc` (the package ships the
 * sources; `erlcDir` is the release's ERTS bin when it has one), cached by source hash.
 */
export async function helperEbin(erlcDir?: string): Promise<string> {
  const built = defaultHelperEbin();
  if (HELPER_MODULES.every((m) => existsSync(join(built, `${m}.beam`)))) return built;
  const src = fileURLToPath(new URL('../../erlang', import.meta.url));
  const files = readdirSync(src)
    .filter((f) => f.endsWith('.erl'))
    .sort();
  const h = createHash('sha256');
  for (const f of files) h.update(f).update(readFileSync(join(src, f)));
  const dest = join(tmpdir(), `baton-helpers-${h.digest('hex').slice(0, 16)}`);
  if (HELPER_MODULES.every((m) => existsSync(join(dest, `${m}.beam`)))) return dest;
  const stage = `${dest}.${process.pid}`;
  mkdirSync(stage, { recursive: true });
  const erlc = erlcDir !== undefined && existsSync(join(erlcDir, 'erlc')) ? join(erlcDir, 'erlc') : 'erlc';
  try {
    await run(erlc, ['-o', stage, ...files.map((f) => join(src, f))]);
    rmSync(dest, { recursive: true, force: true });
    renameSync(stage, dest);
  } catch (err) {
    rmSync(stage, { recursive: true, force: true });
    throw new PeerError(
      `baton's helper modules are not built and compiling them with ${erlc} failed: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return dest;
}

const cache = new Map<string, Buffer>();

function beam(ebin: string, mod: string): Buffer {
  const p = join(ebin, `${mod}.beam`);
  let b = cache.get(p);
  if (b === undefined) {
    if (!existsSync(p))
      throw new PeerError(`baton's helper module ${mod} is not built (${p} is missing; run \`rebar3 compile\`)`);
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
export async function loadHelpers(
  node: Node,
  peer: string,
  ebin = defaultHelperEbin(),
  timeoutMs = 10_000,
): Promise<void> {
  await Promise.all(
    HELPER_MODULES.map(async (mod) => {
      const loaded = await node.erpc(peer, 'code', 'is_loaded', [atom(mod)], { timeoutMs });
      if (loaded instanceof Tuple) return;
      const bin = beam(ebin, mod);
      const r: Term = await node.erpc(
        peer,
        'code',
        'load_binary',
        [atom(mod), charlist(join(ebin, `${mod}.beam`)), bin],
        { timeoutMs },
      );
      if (!(r instanceof Tuple && r.elements[0] === atom('module'))) {
        const why = r instanceof Tuple && r.elements[1] instanceof Atom ? r.elements[1].name : showTerm(r);
        throw new PeerError(`loading ${mod} into ${peer} failed: ${why}`);
      }
    }),
  );
}
