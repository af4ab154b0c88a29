/**
 * A running peer: launched from a release (DESIGN.md, "Peer lifecycle" steps 1–6) or
 * re-adopted from the state dir's record; stopped without losing a request (endpoint
 * stop, drain, init:stop, kill after a timeout).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CookieMismatchError, type Node } from '../distribution/index.js';
import { atom, charlistToString, type Term, Tuple } from '../etf/index.js';
import {
  erlPath,
  filterVmArgs,
  type Handoff,
  nodeBase,
  peerArgs,
  peerEnv,
  peerNodeName,
  protoDistArgs,
  releaseVars,
  vmArgsName,
} from './args.js';
import {
  describeStop,
  type Injection,
  injectEndpoints,
  type SocketHandoff,
  type StopAccepting,
  stopAccepting,
} from './endpoints.js';
import { sourceEnvSh } from './envsh.js';
import { NoPeerError, PeerError, PeerReadyTimeoutError, PeerStartError, type PeerStartStage } from './errors.js';
import { helperEbin, loadHelpers } from './helpers.js';
import { readLayout } from './layout.js';
import type { Listener } from './listener.js';
import { clearRecord, logDir, nextGeneration, type PeerRecord, writeRecord } from './state.js';

export interface LaunchOptions {
  /** baton's own hidden node, started, with the cookie the peer gets. */
  batonNode: Node;
  cookie: string;
  stateDir: string;
  releaseRoot: string;
  /** Application to start (default: the release's name). */
  app?: string;
  port: number;
  handoff: Handoff;
  /** Required in fd mode: the socket every peer shares. */
  listener?: Listener;
  endpoint?: string;
  /**
   * Application env set in the peer before its application loads, persistent so that
   * `application:load/1` keeps it (fly_deploy 0.3.3's `eaddrinuse`): `[app, key, value]`.
   */
  appEnv?: Array<[string, string, Term]>;
  /**
   * Nodes the new peer connects to before its application starts (the outgoing peer of
   * a blue-green upgrade, as fly_deploy does), so apps handing over a lock can reach it.
   */
  connectTo?: string[];
  /** The peer stops itself after this long without baton (default 60 s). */
  orphanMs?: number;
  /** Spawn to application started (default 60 s). */
  bootTimeoutMs?: number;
  /** Application started to listening on its port (default 30 s). */
  readyTimeoutMs?: number;
  /** Node name part before `-<gen>` (default: RELEASE_NODE's name part, else the app). */
  nodeBase?: string;
  /** baton's environment as the peer should inherit it (default process.env). */
  env?: Record<string, string | undefined>;
  helperEbin?: string;
  progress?: (line: string) => void;
  /** Called as soon as the OS process exists (before it booted): lets callers track it. */
  onSpawn?: (osPid: number) => void;
}

export interface StopOptions {
  /** Longest wait for in-flight requests (default 15 s, `BATON_DRAIN_MS`). */
  drainMs?: number;
  /** Longest wait for the VM to exit after init:stop before SIGKILL (default 10 s). */
  exitTimeoutMs?: number;
  /** Told which stop recipe ran and how long its phases took. */
  progress?: (line: string) => void;
}

export interface StopResult {
  /** `ok` when the endpoint stopped accepting as its recipe intends; else the fallback taken, or why the peer could not be asked. */
  endpoint: string;
  /** How it stopped accepting: the recipe, its phases' durations, any fallback. */
  recipe?: StopAccepting;
  /** Connections still busy when the drain gave up (0 = all finished). */
  leftOpen: number;
  killed: boolean;
}

export interface PeerExit {
  code: number | null;
  signal: string | null;
}

const OK = atom('ok');

export class Peer {
  private exitInfo: PeerExit | undefined;
  readonly exited: Promise<PeerExit>;
  private stopping: Promise<StopResult> | undefined;
  /** Set once baton means the peer to go (stop, kill, a failed start): no reconnecting. */
  private closing = false;

  private constructor(
    readonly record: PeerRecord,
    private readonly batonNode: Node,
    private readonly stateDir: string,
    exited: Promise<PeerExit>,
  ) {
    this.exited = exited.then((e) => {
      this.exitInfo = e;
      return e;
    });
    this.keepConnected();
  }

  /**
   * A connection lost while the peer runs is made again (and the watchdog told), so a
   * network blip never lets the peer's orphan timer run out under a live baton.
   */
  private keepConnected(): void {
    const onDown = (node: string): void => {
      if (node !== this.node || !this.alive || this.closing) return;
      void this.reconnect();
    };
    this.batonNode.on('nodedown', onDown);
    void this.exited.then(() => this.batonNode.off('nodedown', onDown));
  }

  private async reconnect(): Promise<void> {
    while (this.alive && !this.closing) {
      await sleep(250);
      try {
        await this.batonNode.erpc(this.node, 'baton_peer', 'adopt', [atom(this.batonNode.name), this.record.orphanMs], {
          timeoutMs: 5000,
        });
        return;
      } catch {
        // Not reachable yet; the watchdog allows orphanMs for this.
      }
    }
  }

  get node(): string {
    return this.record.node;
  }

  get osPid(): number {
    return this.record.osPid;
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** The last `maxBytes` of what the peer wrote to stdout and stderr. */
  output(maxBytes = 8192): string {
    return tail(this.record.log, maxBytes);
  }

  erpc(mod: string, fun: string, args: Term[], timeoutMs = 30_000): Promise<Term> {
    return this.batonNode.erpc(this.node, mod, fun, args, { timeoutMs });
  }

  /** Stops accepting, waits for in-flight requests, `init:stop()`, SIGKILL after a timeout. */
  stop(o: StopOptions = {}): Promise<StopResult> {
    this.closing = true;
    this.stopping ??= this.doStop(o);
    return this.stopping;
  }

  private async doStop(o: StopOptions): Promise<StopResult> {
    const drainMs = o.drainMs ?? 15_000;
    let endpoint = 'not reached';
    let leftOpen = 0;
    let recipe: StopAccepting | undefined;
    if (this.alive) {
      try {
        const call = this.erpc.bind(this);
        recipe = await stopAccepting(call, {
          port: this.record.port,
          ...(this.record.endpoint ? { endpoint: this.record.endpoint } : {}),
          drainMs,
        });
        endpoint = recipe.fallback === undefined ? 'ok' : `fallback: ${recipe.fallback}`;
        leftOpen = recipe.leftOpen;
        o.progress?.(`peer ${this.node}: stopped accepting by ${describeStop(recipe)}`);
        await this.erpc('init', 'stop', [], 5000);
      } catch (err) {
        // A peer that cannot be asked is killed below; say why in the result.
        endpoint = `${endpoint} (${(err as Error).message})`;
      }
    }
    const killed = await this.waitOrKill(o.exitTimeoutMs ?? 10_000);
    clearRecord(this.stateDir, this.node);
    return { endpoint, ...(recipe ? { recipe } : {}), leftOpen, killed };
  }

  /** SIGKILL to the peer's process group, then waits for it to be gone. */
  async kill(): Promise<void> {
    this.closing = true;
    killGroup(this.osPid, 'SIGKILL');
    await this.exited;
    clearRecord(this.stateDir, this.node);
  }

  private async waitOrKill(ms: number): Promise<boolean> {
    if (!this.alive) return false;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), ms))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      killGroup(this.osPid, 'SIGKILL');
      await this.exited;
    }
    // erl_child_setup and port programs share the group: none outlives the VM.
    killGroup(this.osPid, 'SIGKILL');
    return timedOut;
  }

  /** Starts a peer from a release. On failure nothing of it is left running. */
  static async launch(o: LaunchOptions): Promise<Peer> {
    const progress = o.progress ?? (() => undefined);
    const layout = readLayout(o.releaseRoot);
    const app = o.app ?? layout.name;
    const baseEnv = o.env ?? process.env;
    if (o.handoff === 'fd' && o.listener === undefined)
      throw new PeerError('fd handoff needs the bound listener to hand over');

    // env.sh may choose RELEASE_NODE (the name base) and distribution flags.
    const shInput: Record<string, string> = {};
    for (const [k, v] of Object.entries(baseEnv)) if (v !== undefined) shInput[k] = v;
    Object.assign(shInput, releaseVars(layout, baseEnv['RELEASE_NODE'] ?? layout.name, o.cookie, baseEnv));
    const envSh = layout.envSh === undefined ? {} : await sourceEnvSh(layout.envSh, shInput);

    const fromVmArgs = layout.vmArgs === undefined ? undefined : vmArgsName(layout.vmArgs.text);
    const batonLong = isLongHost(o.batonNode.host);
    const longNames =
      batonLong ||
      (envSh['RELEASE_DISTRIBUTION'] ?? baseEnv['RELEASE_DISTRIBUTION']) === 'name' ||
      fromVmArgs?.long === true;
    if (longNames !== batonLong) {
      throw new PeerError(
        `the release uses ${longNames ? 'long' : 'short'} node names but baton's node ${o.batonNode.name} does not; they cannot connect`,
      );
    }
    const gen = nextGeneration(o.stateDir);
    const base = o.nodeBase ?? nodeBase(envSh['RELEASE_NODE'] ?? baseEnv['RELEASE_NODE'], app);
    const node = peerNodeName(base, gen, o.batonNode.host);

    const logs = logDir(o.stateDir);
    mkdirSync(logs, { recursive: true });
    const log = join(logs, `${node}.log`);
    let argsFile: string | undefined;
    if (layout.vmArgs !== undefined) {
      argsFile = join(logs, `${node}.vm.args`);
      writeFileSync(argsFile, filterVmArgs(layout.vmArgs.text, { ...shInput, ...envSh }, layout.vmArgs.template));
    }
    const fdIndex = 3;
    const env = peerEnv({
      base: baseEnv,
      layout,
      envSh,
      node,
      cookie: o.cookie,
      port: o.listener?.port ?? o.port,
      handoff: o.handoff,
      ...(o.handoff === 'fd' && o.listener ? { fd: { n: fdIndex, family: o.listener.family } } : {}),
      endpoint: o.endpoint,
    });
    // A crash dump goes beside the log, not into baton's working directory.
    env['ERL_CRASH_DUMP'] ??= join(logs, `${node}.erl_crash.dump`);
    // An IPv6 host (Fly's private network) needs distribution over IPv6.
    const extra = protoDistArgs(o.batonNode.host, env, layout.vmArgs?.text);
    const args = peerArgs({ layout, node, longNames, cookie: o.cookie, argsFile, extra });

    progress(`starting peer ${node} (${layout.name} ${layout.vsn}, ${o.handoff} handoff)`);
    const logFd = openSync(log, 'a');
    let child: ChildProcess;
    try {
      child = spawn(erlPath(layout), args, {
        env,
        // Its own process group: baton's terminal signals are not the peer's, a
        // `kill -9` of baton leaves it to its watchdog, and a stop kills the whole group.
        detached: true,
        stdio: ['ignore', logFd, logFd, ...(o.handoff === 'fd' && o.listener ? [o.listener.fd] : [])],
      });
    } finally {
      closeSync(logFd);
    }
    const exited = new Promise<PeerExit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: null, signal: null }));
    });
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    child.unref();
    const osPid = child.pid;
    if (osPid === undefined) {
      throw new PeerStartError(node, 'spawn', (await spawnError).message, '');
    }
    o.onSpawn?.(osPid);
    const record: PeerRecord = {
      node,
      cookie: o.cookie,
      osPid,
      app,
      releaseRoot: layout.root,
      vsn: layout.vsn,
      elixir: layout.elixir,
      longNames,
      port: o.listener?.port ?? o.port,
      handoff: o.handoff,
      endpoint: o.endpoint,
      log,
      orphanMs: o.orphanMs ?? 60_000,
      startedAt: new Date().toISOString(),
      baton: o.batonNode.name,
    };
    const peer = new Peer(record, o.batonNode, o.stateDir, exited);
    let stage: PeerStartStage = 'connect';
    const bootDeadline = Date.now() + (o.bootTimeoutMs ?? 60_000);
    try {
      await peer.waitConnected(bootDeadline);
      stage = 'prepare';
      await loadHelpers(o.batonNode, node, o.helperEbin ?? (await helperEbin(layout.ertsBin)));
      await peer.erpc('baton_peer', 'prepare', [
        new Map<Term, Term>([
          [atom('baton'), atom(o.batonNode.name)],
          [atom('orphan_ms'), record.orphanMs],
          [atom('env'), (o.appEnv ?? []).map(([a, k, v]) => new Tuple([atom(a), atom(k), v]))],
        ]),
      ]);
      for (const other of o.connectTo ?? []) {
        const ok = await peer.erpc('net_kernel', 'connect_node', [atom(other)], 15_000);
        if (ok !== atom('true'))
          throw new StartFailure(`it could not connect to ${other} (net_kernel:connect_node/1 returned ${String(ok)})`);
      }
      if (layout.configProvider) {
        stage = 'runtime_config';
        // What the release's start.boot does right after kernel and stdlib: run the
        // config providers (runtime.exs) into persistent application env.
        await peer.erpc('application', 'load', [atom('elixir')]);
        await peer.erpc('Elixir.Config.Provider', 'boot', [], remaining(bootDeadline));
      }
      if (o.handoff !== 'restart') {
        stage = 'inject';
        // Phoenix endpoints get the handed socket through their config, set after the
        // runtime config so that runtime.exs's `ip`/`port` cannot undo it.
        const how: SocketHandoff =
          o.handoff === 'fd' && o.listener !== undefined
            ? { fd: fdIndex, inet6: o.listener.family === 'inet6' }
            : { reuseport: true };
        const done = await injectEndpoints(peer.erpc.bind(peer), [app], how);
        for (const i of done) progress(`peer ${node}: ${describeInjection(i, how)}`);
      }
      stage = 'start_app';
      const r = await peer.erpc('baton_peer', 'start_app', [atom(app)], remaining(bootDeadline));
      if (!(r instanceof Tuple && r.elements[0] === OK)) {
        const why = r instanceof Tuple && Buffer.isBuffer(r.elements[1]) ? r.elements[1].toString('utf8') : String(r);
        throw new StartFailure(`application ${app} did not start: ${why}`);
      }
      progress(`peer ${node}: ${app} started`);
    } catch (err) {
      let reason = err instanceof StartFailure ? err.message : describe(err, peer);
      if (stage === 'start_app' && !(err instanceof StartFailure)) {
        // The connection was lost as the application failed (an app that halts the VM,
        // or one stopping it): the reason is then only in the peer's own report.
        const fromLog = await appExitFromLog(peer, app);
        if (fromLog !== undefined) reason = `application ${app} did not start: ${fromLog}`;
      }
      await peer.abort();
      // Let the peer's last words (an error report) reach the log before reading it.
      throw new PeerStartError(node, stage, reason, peer.output(), { cause: err });
    }
    const readyMs = o.readyTimeoutMs ?? 30_000;
    const readyDeadline = Date.now() + readyMs;
    for (;;) {
      let up: Term = atom('false');
      try {
        up = await peer.erpc('baton_peer', 'listening', [record.port], 5000);
      } catch (err) {
        const reason = describe(err, peer);
        await peer.abort();
        throw new PeerStartError(node, 'start_app', reason, peer.output(), { cause: err });
      }
      if (up === atom('true')) break;
      if (Date.now() > readyDeadline) {
        await peer.abort();
        throw new PeerReadyTimeoutError(node, record.port, readyMs, peer.output());
      }
      await sleep(20);
    }
    writeRecord(o.stateDir, record);
    progress(`peer ${node} ready on port ${record.port} (os pid ${osPid})`);
    return peer;
  }

  /**
   * Takes over the peer a previous baton left running, without restarting it. The
   * batonNode must use the record's cookie. Throws NoPeerError when it is gone.
   */
  static async adopt(o: {
    batonNode: Node;
    stateDir: string;
    record: PeerRecord;
    orphanMs?: number;
    helperEbin?: string;
  }): Promise<Peer> {
    const rec = o.record;
    if (!pidAlive(rec.osPid))
      throw new NoPeerError(`the recorded peer ${rec.node} (os pid ${rec.osPid}) is not running`);
    try {
      await o.batonNode.connect(rec.node);
      const pid = await o.batonNode.erpc(rec.node, 'os', 'getpid', [], { timeoutMs: 5000 });
      if (charlistToString(pid) !== String(rec.osPid)) {
        throw new NoPeerError(
          `${rec.node} answers but is os pid ${String(charlistToString(pid))}, not the recorded ${rec.osPid}`,
        );
      }
      await loadHelpers(o.batonNode, rec.node, o.helperEbin ?? (await helperEbin()));
      await o.batonNode.erpc(
        rec.node,
        'baton_peer',
        'adopt',
        [atom(o.batonNode.name), o.orphanMs ?? rec.orphanMs ?? 60_000],
        { timeoutMs: 10_000 },
      );
    } catch (err) {
      if (err instanceof NoPeerError) throw err;
      throw new NoPeerError(`the recorded peer ${rec.node} cannot be adopted: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const updated: PeerRecord = { ...rec, baton: o.batonNode.name, orphanMs: o.orphanMs ?? rec.orphanMs ?? 60_000 };
    writeRecord(o.stateDir, updated);
    return new Peer(updated, o.batonNode, o.stateDir, watchPid(rec.osPid));
  }

  private async waitConnected(deadline: number): Promise<void> {
    let last: unknown;
    for (;;) {
      if (!this.alive) throw new StartFailure(`the VM exited (${exitText(this.exitInfo!)}) before it could be reached`);
      try {
        await this.batonNode.connect(this.node);
        // Distribution comes up while kernel is still starting: wait for init to
        // finish the boot script before touching applications.
        const st = await this.batonNode.erpc(this.node, 'init', 'get_status', [], { timeoutMs: 5000 });
        if (st instanceof Tuple && st.elements[0] === atom('started')) return;
      } catch (err) {
        last = err;
        if (err instanceof CookieMismatchError) throw err;
      }
      if (Date.now() > deadline)
        throw new StartFailure(`not reachable over distribution in time (${(last as Error)?.message ?? 'no answer'})`);
      await sleep(15);
    }
  }

  /**
   * Waits until the peer's log stops growing (quiet for `quietMs`, at most `maxMs`):
   * its last reports (stderr, logger) are written asynchronously to our reply.
   */
  private async settleOutput(maxMs = 1500, quietMs = 150): Promise<void> {
    const deadline = Date.now() + maxMs;
    let size = logSize(this.record.log);
    let quietSince = Date.now();
    while (Date.now() < deadline && this.alive) {
      await sleep(25);
      const now = logSize(this.record.log);
      if (now !== size) {
        size = now;
        quietSince = Date.now();
      } else if (Date.now() - quietSince >= quietMs) return;
    }
  }

  private async abort(): Promise<void> {
    await this.settleOutput();
    this.closing = true;
    killGroup(this.osPid, 'SIGKILL');
    await this.exited;
    // The VM's own children (erl_child_setup) share the group.
    killGroup(this.osPid, 'SIGKILL');
  }
}

class StartFailure extends Error {}

function describeInjection(i: Injection, how: SocketHandoff): string {
  const what = `${i.endpoint} (${i.app}, ${i.adapter})`;
  if (i.result !== 'injected') return `${what} left as configured (${i.result})`;
  return `${what} ${'fd' in how ? `listens on the handed socket (fd ${how.fd})` : 'binds its port with SO_REUSEPORT'}: http ${i.http ?? ''}`;
}

/** What went wrong, from the peer's side when it has gone. */
function describe(err: unknown, peer: Peer): string {
  if (!peer.alive) return `the VM exited during boot (${(err as Error).message})`;
  return (err as Error).message;
}

/** The reason in the `application: App exited: Reason` report the peer logged, if any (waits up to 2 s). */
async function appExitFromLog(peer: Peer, app: string): Promise<string | undefined> {
  const re = new RegExp(`application: ${app}\\n\\s+exited: ([\\s\\S]*?)\\n\\s+type: `);
  const deadline = Date.now() + 2000;
  for (;;) {
    const m = re.exec(peer.output(65536));
    if (m) return m[1]!.replace(/\s+/g, ' ').trim();
    if (Date.now() > deadline) return undefined;
    await sleep(50);
  }
}

/** Long node names carry a host with dots or an IPv6 address. */
export function isLongHost(host: string): boolean {
  return host.includes('.') || host.includes(':');
}

function exitText(e: PeerExit): string {
  return e.signal !== null ? `signal ${e.signal}` : `status ${String(e.code)}`;
}

function remaining(deadline: number): number {
  return Math.max(1000, deadline - Date.now());
}

export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Gone already.
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Exit of a process that is not our child: polled (no exit status to be had). */
function watchPid(pid: number): Promise<PeerExit> {
  return new Promise((resolve) => {
    const t = setInterval(() => {
      if (!pidAlive(pid)) {
        clearInterval(t);
        resolve({ code: null, signal: null });
      }
    }, 200);
    t.unref();
  });
}

function logSize(path: string): number {
  try {
    const fd = openSync(path, 'r');
    try {
      return fstatSync(fd).size;
    } finally {
      closeSync(fd);
    }
  } catch {
    return 0;
  }
}

function tail(path: string, maxBytes: number): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const n = Math.min(size, maxBytes);
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, size - n);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}
