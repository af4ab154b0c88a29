/**
 * Real `erl` nodes for the distribution tests: unique names, started and killed here.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Node, type NodeOptions, shortHostname } from '../../src/distribution/index.js';
import { uniqueName } from '../support/nodes.js';

export { uniqueName };

const here = dirname(fileURLToPath(import.meta.url));
export const ERL_TEST_EBIN = join(here, '..', '..', '_build', 'default', 'lib', 'baton', 'test', 'erl');

export const HOST = shortHostname();

export interface ErlNode {
  name: string;
  proc: ChildProcess;
  output(): string;
  kill(signal?: NodeJS.Signals): void;
  exited: Promise<number | null>;
}

const live = new Set<ErlNode>();

/** Starts `erl -sname <name>` running `evalCode` (which should keep the node alive). */
export async function startErl(opts: {
  name?: string;
  prefix?: string;
  cookie: string;
  eval?: string;
  args?: string[];
  hidden?: boolean;
}): Promise<ErlNode> {
  const base = opts.name ?? uniqueName(opts.prefix ?? 'peer');
  const args = [
    '-sname',
    base,
    '-setcookie',
    opts.cookie,
    '-noshell',
    '-pa',
    ERL_TEST_EBIN,
    ...(opts.hidden ? ['-hidden'] : []),
    ...(opts.args ?? []),
  ];
  const ready = `io:format("~s~n", ["BATON_READY"])`;
  args.push('-eval', `${opts.eval ? `${opts.eval}, ` : ''}${ready}.`);
  const proc = spawn('erl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const node: ErlNode = {
    name: `${base}@${HOST}`,
    proc,
    output: () => out,
    kill: (signal = 'SIGKILL') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
    exited,
  };
  live.add(node);
  void exited.then(() => live.delete(node));
  const deadline = Date.now() + 30_000;
  while (!out.includes('BATON_READY')) {
    if (proc.exitCode !== null) throw new Error(`erl ${base} exited early: ${out}`);
    if (Date.now() > deadline) throw new Error(`erl ${base} did not start: ${out}`);
    await sleep(20);
  }
  return node;
}

export async function killAll(): Promise<void> {
  const nodes = [...live];
  for (const n of nodes) n.kill();
  await Promise.all(nodes.map((n) => n.exited));
}

const nodes = new Set<Node>();

export async function startBaton(opts: Partial<NodeOptions> & { cookie: string }): Promise<Node> {
  const node = new Node({ name: uniqueName('baton'), hidden: true, log: () => {}, ...opts });
  nodes.add(node);
  await node.start();
  return node;
}

export async function closeAllBatons(): Promise<void> {
  await Promise.all([...nodes].map((n) => n.close()));
  nodes.clear();
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Runs `code` (an expression sequence ending in a value) on a fresh erl node, prints it, halts. */
export async function runErl(opts: {
  cookie: string;
  code: string;
  prefix?: string;
  args?: string[];
  timeoutMs?: number;
  env?: Record<string, string>;
}): Promise<string> {
  const base = uniqueName(opts.prefix ?? 'script');
  const args = [
    '-sname',
    base,
    '-setcookie',
    opts.cookie,
    '-noshell',
    '-pa',
    ERL_TEST_EBIN,
    ...(opts.args ?? []),
    '-eval',
    `R = begin ${opts.code} end, io:format("RESULT ~0p~n", [R]), halt().`,
  ];
  const proc = spawn('erl', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  await new Promise((r) => proc.on('exit', r));
  clearTimeout(timer);
  const m = /RESULT (.*)/.exec(out);
  if (!m) throw new Error(`erl script produced no result: ${out}`);
  return m[1]!;
}
