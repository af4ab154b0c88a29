/**
 * `baton run` as a child process for tests: its own state dir, cookie and node base,
 * output captured, and every process it left (itself, the recorded peer) killed at the end.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { killGroup, readRecord } from '../../src/peer/index.js';
import { baton } from './cli.js';
import { repoRoot } from './erl.js';
import { type Fixtures, fixtures } from './fixtures.js';
import { newCookie, uniqueName } from './nodes.js';
import { trackPid } from './peers.js';

const children: ChildProcess[] = [];
const dirs: string[] = [];

export function trackChild(c: ChildProcess): void {
  children.push(c);
  if (c.pid !== undefined) trackPid(c.pid);
}

/**
 * A test file's fixtures (`beforeAll`) and the cleanup of every run it started
 * (`afterAll`). Read `fx` inside tests and hooks, not at load time.
 */
export function useRuns(): { fx: Fixtures } {
  const suite = {} as { fx: Fixtures };
  beforeAll(async () => {
    suite.fx = await fixtures();
  });
  afterAll(cleanupRuns);
  return suite;
}

async function cleanupRuns(): Promise<void> {
  for (const c of children) {
    if (c.pid !== undefined && c.exitCode === null) killGroup(c.pid, 'SIGKILL');
  }
  for (const d of dirs) {
    const rec = readRecord(d);
    if (rec !== undefined) killGroup(rec.osPid, 'SIGKILL');
    rmSync(d, { recursive: true, force: true });
  }
}

export interface Run {
  child: ChildProcess;
  env: Record<string, string>;
  output(): string;
  exited: Promise<number | null>;
}

export function startRun(env: Record<string, string>): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), 'run'], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  // 'close', not 'exit': by then everything it wrote to its pipes has been read.
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  return { child, env, output: () => out, exited };
}

export function runEnv(releaseRoot: string, extra: Record<string, string> = {}): Record<string, string> {
  const stateDir = mkdtempSync(join(tmpdir(), 'baton-cli-'));
  dirs.push(stateDir);
  return {
    BATON_RELEASE_ROOT: releaseRoot,
    BATON_STATE_DIR: stateDir,
    BATON_BIND: '127.0.0.1',
    // baton binds the socket it hands to its peers: port 0 lets the kernel pick a free one
    // (no window in which another process could take it); recordedPort reads it back.
    BATON_PORT: '0',
    BATON_COOKIE: newCookie(),
    RELEASE_NODE: uniqueName('cli'),
    BATON_BACKOFF_MS: '200',
    ...extra,
  };
}

/** The port the recorded peer serves on. */
export function recordedPort(env: Record<string, string>): number {
  const rec = readRecord(env['BATON_STATE_DIR']!);
  if (rec === undefined) throw new Error(`no peer recorded in ${env['BATON_STATE_DIR']}`);
  return rec.port;
}

export async function peerNode(env: Record<string, string>, not?: string): Promise<string> {
  // Wait on the record (a file read) rather than on `baton peer-node` itself: each CLI
  // spawn costs a second or more on a loaded machine, and the poll would mostly measure that.
  await expect
    .poll(
      () => {
        const node = readRecord(env['BATON_STATE_DIR']!)?.node;
        return node !== undefined && node !== not;
      },
      { timeout: 45_000, interval: 100 },
    )
    .toBe(true);
  const r = baton(['peer-node'], env);
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout.trim()).toBe(readRecord(env['BATON_STATE_DIR']!)!.node);
  return r.stdout.trim();
}

/**
 * `baton remsh` in a pseudo-terminal (the shells need one): waits for the prompt (iex's
 * by default), evaluates `expr`, waits for `want` in the output, then leaves with
 * Ctrl-G q, which must not stop the peer. Returns the output.
 */
export async function remshEval(
  env: Record<string, string>,
  expr: string,
  want: string,
  o: { prompt?: RegExp; promptMs?: number } = {},
): Promise<string> {
  const cli = `${process.execPath} --import tsx ${join(repoRoot, 'src/cli/main.ts')} remsh`;
  const sh = spawn('script', ['-qfc', cli, '/dev/null'], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  trackChild(sh);
  let out = '';
  sh.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => sh.once('exit', (c) => r(c)));
  await expect.poll(() => out, { timeout: o.promptMs ?? 30_000 }).toMatch(o.prompt ?? /iex\(\S+\)\d+>/);
  sh.stdin!.write(`${expr}\n`);
  await expect.poll(() => out, { timeout: 10_000 }).toContain(want);
  sh.stdin!.write('\x07');
  await expect.poll(() => out, { timeout: 10_000 }).toMatch(/-->/);
  sh.stdin!.write('q\n');
  expect(await exited).toBe(0);
  return out;
}
