/**
 * `npm run bench -- boot [rounds]`: how long a peer takes to boot under baton, against
 * the same release started by its own `bin/demo_erl foreground`, in the same run.
 *   baton: from Peer.launch (layout, env, spawn) to `ensure_all_started` returned
 *          (and, for information, to listening on its port);
 *   reference: from spawning `bin/demo_erl foreground` until its port accepts.
 * Rounds alternate which of the two goes first, so load drift hits both alike; medians compared.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Node } from '../../src/distribution/index.js';
import { killGroup, Peer } from '../../src/peer/index.js';
import { fixtures } from '../support/fixtures.js';
import { freePort, newCookie, uniqueName } from '../support/nodes.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function reference(root: string): Promise<number> {
  const port = await freePort();
  const scratch = mkdtempSync(join(tmpdir(), 'baton-bench-'));
  const t0 = performance.now();
  const child = spawn(join(root, 'bin', 'demo_erl'), ['foreground'], {
    env: {
      ...process.env,
      DEMO_NODE: uniqueName('ref'),
      DEMO_COOKIE: newCookie(),
      PORT: String(port),
      RELX_OUT_FILE_PATH: scratch,
    },
    detached: true,
    stdio: 'ignore',
  });
  try {
    for (;;) {
      if (await accepts(port)) return performance.now() - t0;
      if (child.exitCode !== null) throw new Error('bin/demo_erl foreground exited before serving');
      if (performance.now() - t0 > 60_000) throw new Error('bin/demo_erl foreground did not serve in 60 s');
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    killGroup(child.pid!, 'SIGKILL');
    await exited;
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function underBaton(
  node: Node,
  cookie: string,
  root: string,
  ebin: string,
): Promise<{ started: number; ready: number }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'baton-bench-'));
  const port = await freePort();
  let started = 0;
  const t0 = performance.now();
  const peer = await Peer.launch({
    batonNode: node,
    cookie,
    stateDir,
    releaseRoot: root,
    port,
    handoff: 'restart',
    nodeBase: uniqueName('bench'),
    helperEbin: ebin,
    progress: (line) => {
      if (line.endsWith(' started')) started = performance.now() - t0;
    },
  });
  const ready = performance.now() - t0;
  await peer.kill();
  rmSync(stateDir, { recursive: true, force: true });
  return { started, ready };
}

export async function run(args: string[]): Promise<void> {
  const rounds = Number(args[0] ?? 7);
  const fx = await fixtures();
  const root = fx.demoErl['1.0.0'];
  const cookie = newCookie();
  const node = new Node({
    name: uniqueName('baton-bench'),
    cookie,
    hidden: true,
    startEpmd: true,
    log: () => undefined,
  });
  await node.start();
  const base: number[] = [];
  const started: number[] = [];
  const ready: number[] = [];
  try {
    // One warm-up each (page cache, epmd).
    await reference(root);
    await underBaton(node, cookie, root, fx.erlEbin);
    const viaReference = async (): Promise<void> => {
      base.push(await reference(root));
    };
    const viaBaton = async (): Promise<void> => {
      const b = await underBaton(node, cookie, root, fx.erlEbin);
      started.push(b.started);
      ready.push(b.ready);
    };
    for (let i = 0; i < rounds; i++) {
      const order = i % 2 === 0 ? [viaReference, viaBaton] : [viaBaton, viaReference];
      for (const step of order) await step();
    }
  } finally {
    await node.close();
  }
  const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(', ');
  console.log(
    `${cpus().length} CPUs, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}; demo_erl 1.0.0, ${rounds} rounds after a warm-up`,
  );
  console.log(
    `baton: spawn -> ensure_all_started returned  median ${median(started).toFixed(0)} ms  [${fmt(started)}]`,
  );
  console.log(`baton: spawn -> listening (ready)             median ${median(ready).toFixed(0)} ms  [${fmt(ready)}]`);
  console.log(`bin/demo_erl foreground: spawn -> accepts     median ${median(base).toFixed(0)} ms  [${fmt(base)}]`);
  console.log(
    `ratio (ensure_all_started / foreground): ${(median(started) / median(base)).toFixed(2)}x (target <= 1.1x)`,
  );
  console.log(`ratio (ready / foreground):              ${(median(ready) / median(base)).toFixed(2)}x`);
}
