/**
 * Hot upgrade of a running peer through erlang/baton_upgrader (loaded into every peer
 * at boot): new binaries in, a typed result out. Which beams to send is decided here
 * cheaply (applications whose lib dir is new, plus consolidated protocols); the
 * upgrader itself reloads only modules whose md5 changed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Atom, atom, charlist, showTerm, type Term, Tuple } from '../etf/index.js';
import { ErlMap, termText } from './erl-map.js';
import { PeerError } from './errors.js';
import { readLayout } from './layout.js';
import type { Peer } from './peer.js';

export interface Beam {
  module: string;
  filename: string;
  binary: Buffer;
}

export interface HotProc {
  pid: string;
  name: string | undefined;
  initialCall: string | undefined;
}

export interface HotUpgradeResult {
  reloaded: string[];
  added: string[];
  unchanged: string[];
  suspended: HotProc[];
  notSuspended: HotProc[];
  oldCodeKept: string[];
  /** First suspend to last resume. */
  suspendUs: number;
  phasesUs: Record<string, number>;
  totalUs: number;
}

export interface HotUpgradeOptions {
  suspendTimeoutMs?: number;
  changeCodeTimeoutMs?: number;
  /** erpc deadline for the whole upgrade (default 120 s). */
  timeoutMs?: number;
}

/** The upgrade did not happen: everything was resumed on the old code (or rolled back to it). */
export class HotUpgradeError extends PeerError {
  override readonly code = 'HOT_UPGRADE';
  constructor(
    readonly node: string,
    /** The upgrader's reason, worded by the peer (`busy`, `suspend_timeout`, `{prepare_failed, ...}`...). */
    readonly reason: string,
    readonly timedOut: HotProc[],
    readonly rolledBack: boolean,
    readonly details: Map<Term, Term>,
  ) {
    super(
      `hot upgrade of ${node} failed: ${reason}` +
        (timedOut.length > 0 ? `; did not suspend in time: ${timedOut.map(procText).join(', ')}` : '') +
        (rolledBack ? '; rolled back to the old code' : ''),
    );
  }
}

function procText(p: HotProc): string {
  return p.name ?? `${p.pid}${p.initialCall === undefined ? '' : ` (${p.initialCall})`}`;
}

/** Every `.beam` of a directory. */
export function beamsIn(dir: string): Beam[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.beam'))
    .sort()
    .map((f) => ({ module: f.slice(0, -'.beam'.length), filename: join(dir, f), binary: readFileSync(join(dir, f)) }));
}

/**
 * The beams of `next` a hot upgrade from `current` must send: those of applications
 * whose `lib/<app>-<vsn>` is not in `current`, and the consolidated protocols (they
 * replace the ones in ebin, module for module).
 */
export function upgradeBeams(current: string, next: string): Beam[] {
  const have = new Set(existsSync(join(current, 'lib')) ? readdirSync(join(current, 'lib')) : []);
  const layout = readLayout(next);
  const byModule = new Map<string, Beam>();
  for (const ebin of layout.libEbins) {
    const appDir = ebin.split('/').slice(-2)[0]!;
    if (have.has(appDir)) continue;
    for (const b of beamsIn(ebin)) byModule.set(b.module, b);
  }
  if (layout.consolidated !== undefined) for (const b of beamsIn(layout.consolidated)) byModule.set(b.module, b);
  return [...byModule.values()];
}

export async function hotUpgrade(peer: Peer, beams: Beam[], o: HotUpgradeOptions = {}): Promise<HotUpgradeResult> {
  const opts = new Map<Term, Term>();
  if (o.suspendTimeoutMs !== undefined) opts.set(atom('suspend_timeout'), o.suspendTimeoutMs);
  if (o.changeCodeTimeoutMs !== undefined) opts.set(atom('change_code_timeout'), o.changeCodeTimeoutMs);
  const arg = beams.map((b) => new Tuple([atom(b.module), charlist(b.filename), b.binary]));
  const r = await peer.erpc('baton_upgrader', 'upgrade', [arg, opts], o.timeoutMs ?? 120_000);
  if (!(r instanceof Map))
    throw new PeerError(`baton_upgrader on ${peer.node} answered ${showTerm(r)}, not a result map`);
  const m = ErlMap.of(r);
  if (m.atom('status') !== 'ok') {
    const reasonTerm = m.get('reason') ?? atom('unknown');
    const reason = reasonTerm instanceof Atom ? reasonTerm.name : await formatOn(peer, reasonTerm);
    throw new HotUpgradeError(peer.node, reason, procs(m.maps('timed_out')), m.flag('rolled_back'), r);
  }
  return {
    reloaded: names(m.list('reloaded')),
    added: names(m.list('added')),
    unchanged: names(m.list('unchanged')),
    suspended: procs(m.maps('suspended')),
    notSuspended: procs(m.maps('not_suspended')),
    oldCodeKept: names(m.list('old_code_kept')),
    suspendUs: m.number('suspend_us') ?? 0,
    phasesUs: m.map('phases_us').numbers(),
    totalUs: m.number('total_us') ?? 0,
  };
}

async function formatOn(peer: Peer, t: Term): Promise<string> {
  try {
    const b = await peer.erpc('baton_peer', 'format', [t], 5000);
    return Buffer.isBuffer(b) ? b.toString('utf8') : showTerm(b);
  } catch {
    return showTerm(t);
  }
}

function names(ts: Term[]): string[] {
  return ts.map(termText);
}

function procs(ms: ErlMap[]): HotProc[] {
  return ms.map((m) => {
    const pid = m.get('pid');
    const name = m.atom('name');
    const ic = m.get('initial_call');
    return {
      pid: String(pid),
      name: name !== undefined && name !== '[]' && name !== 'undefined' ? name : undefined,
      initialCall:
        ic instanceof Tuple
          ? ic.elements
              .map(termText)
              .join(':')
              .replace(/:(\d+)$/, '/$1')
          : undefined,
    };
  });
}
