/**
 * What baton keeps about its peer in the state dir: a generation counter (node names
 * never repeat on a host) and the record of the running peer, from which a restarted
 * baton re-adopts it or `baton peer-node` / `eval` / `remsh` find it.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Handoff } from './args.js';

export interface PeerRecord {
  node: string;
  cookie: string;
  osPid: number;
  app: string;
  releaseRoot: string;
  vsn: string;
  elixir: boolean;
  longNames: boolean;
  port: number;
  handoff: Handoff;
  endpoint: string | undefined;
  log: string;
  /** How long its watchdog waits without baton. */
  orphanMs: number;
  startedAt: string;
  /** The baton node that runs it. */
  baton: string;
}

export function recordPath(stateDir: string): string {
  return join(stateDir, 'peer.json');
}

export function logDir(stateDir: string): string {
  return join(stateDir, 'logs');
}

/** Next generation number; the file is rewritten atomically. */
export function nextGeneration(stateDir: string): number {
  mkdirSync(stateDir, { recursive: true });
  const p = join(stateDir, 'generation');
  let n = 0;
  try {
    n = Number.parseInt(readFileSync(p, 'utf8'), 10) || 0;
  } catch {
    // First start on this host.
  }
  n += 1;
  writeFileSync(`${p}.tmp`, String(n));
  renameSync(`${p}.tmp`, p);
  return n;
}

export function writeRecord(stateDir: string, rec: PeerRecord): void {
  mkdirSync(stateDir, { recursive: true });
  const p = recordPath(stateDir);
  // The cookie is in it: readable by baton's user only.
  writeFileSync(`${p}.tmp`, `${JSON.stringify(rec, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${p}.tmp`, p);
}

export function readRecord(stateDir: string): PeerRecord | undefined {
  try {
    return JSON.parse(readFileSync(recordPath(stateDir), 'utf8')) as PeerRecord;
  } catch {
    return undefined;
  }
}

/** Removes the record only if it still describes `node` (a newer peer may have replaced it). */
export function clearRecord(stateDir: string, node: string): void {
  if (readRecord(stateDir)?.node === node) rmSync(recordPath(stateDir), { force: true });
}
