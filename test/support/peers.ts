/**
 * Test side of src/peer: a baton node per test file, a fresh state dir per peer, and a
 * last-resort kill of every peer's process group when the test process exits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { Node } from '../../src/distribution/index.js';
import { bindListener, killGroup, type LaunchOptions, type Listener, Peer } from '../../src/peer/index.js';
import { type Fixtures, fixtures } from './fixtures.js';
import { newCookie, onFreePort, uniqueName } from './nodes.js';

const pids = new Set<number>();
process.on('exit', () => {
  for (const pid of pids) killGroup(pid, 'SIGKILL');
});

/** Remembers an OS pid whose process group must not outlive the test process. */
export function trackPid(pid: number): void {
  pids.add(pid);
}

export type HarnessLaunch = Omit<LaunchOptions, 'batonNode' | 'cookie' | 'stateDir' | 'helperEbin'> & {
  stateDir?: string;
};

export interface Harness {
  cookie: string;
  node: Node;
  stateDir(): string;
  /** A socket bound for fd handoff (`bindListener`), closed with the harness. */
  bind(host?: string): Listener;
  launch(o: HarnessLaunch): Promise<Peer>;
  /**
   * A peer that binds its port itself (reuseport, restart handoff) on a free port, started
   * again on a fresh one if another process took the port first; `peer.record.port` is it.
   */
  launchOnFreePort(o: Omit<HarnessLaunch, 'port'>): Promise<Peer>;
  close(): Promise<void>;
}

/**
 * A test file's fixtures and harness: opened before its tests (`beforeAll`) and closed
 * after them (`afterAll`). Read `fx` and `h` inside tests and hooks, not at load time.
 */
export function useHarness(): { fx: Fixtures; h: Harness } {
  const suite = {} as { fx: Fixtures; h: Harness };
  beforeAll(async () => {
    suite.fx = await fixtures();
    suite.h = await harness();
  });
  afterAll(async () => {
    await suite.h?.close();
  });
  return suite;
}

export async function harness(): Promise<Harness> {
  const fx = await fixtures();
  const cookie = newCookie();
  const node = new Node({ name: uniqueName('baton'), cookie, hidden: true, startEpmd: true, log: () => undefined });
  await node.start();
  const dirs: string[] = [];
  const peers: Peer[] = [];
  const listeners: Listener[] = [];
  const stateDir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'baton-state-'));
    dirs.push(d);
    return d;
  };
  const h: Harness = {
    cookie,
    node,
    stateDir,
    bind(host = '127.0.0.1') {
      const l = bindListener(host, 0);
      listeners.push(l);
      return l;
    },
    launchOnFreePort(o) {
      return onFreePort((port) => h.launch({ ...o, port }));
    },
    async launch(o) {
      const p = await Peer.launch({
        nodeBase: uniqueName('p'),
        ...o,
        batonNode: node,
        cookie,
        stateDir: o.stateDir ?? stateDir(),
        helperEbin: fx.erlEbin,
        onSpawn: (pid) => {
          trackPid(pid);
          o.onSpawn?.(pid);
        },
      });
      peers.push(p);
      return p;
    },
    async close() {
      await Promise.all(peers.map((p) => p.kill()));
      for (const l of listeners) l.close();
      await node.close();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    },
  };
  return h;
}
