/**
 * A running peer: launched from a release (docs/design.md, "The peer lifecycle") or
 * re-adopted from the state dir's record; stopped without losing a request (endpoint
 * stop, drain, init:stop, kill after a timeout).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Node } from '../distribution/index.js';
import { atom, charlistToString, type Term } from '../etf/index.js';
import type { Handoff } from './args.js';
import { describeStop, type StopAccepting, stopAccepting } from './endpoints.js';
import { NoPeerError, PeerReadyTimeoutError, PeerStartError, type PeerStartStage } from './errors.js';
import { helperEbin, loadHelpers } from './helpers.js';
import {
  type AppEnv,
  armVm,
  awaitListening,
  configureVm,
  connectVm,
  environment,
  envShInput,
  failureReason,
  NotReady,
  naming,
  type SpawnPlan,
  sourceReleaseEnv,
  spawnVm,
  startVmApp,
} from './launch.js';
import { readLayout } from './layout.js';
import type { Listener } from './listener.js';
import { lastBytes, waitQuiet } from './log-tail.js';
import { killGroup, type ProcessExit, pidAlive, watchPid } from './os-process.js';
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
  appEnv?: AppEnv;
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

export type PeerExit = ProcessExit;

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

  /** How the VM exited, once it has. */
  get exitStatus(): PeerExit | undefined {
    return this.exitInfo;
  }

  /** The last `maxBytes` of what the peer wrote to stdout and stderr. */
  output(maxBytes = 8192): string {
    return lastBytes(this.record.log, maxBytes);
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

  /**
   * Starts a peer from a release, stage by stage (launch.ts). On failure nothing of it is
   * left running.
   */
  static async launch(o: LaunchOptions): Promise<Peer> {
    const progress = o.progress ?? (() => undefined);
    const layout = readLayout(o.releaseRoot);
    const baseEnv = o.env ?? process.env;
    const envSh = await sourceReleaseEnv(layout, envShInput(layout, baseEnv, o.cookie));
    const env = environment(
      {
        layout,
        baseEnv,
        cookie: o.cookie,
        app: o.app,
        handoff: o.handoff,
        hasListener: o.listener !== undefined,
        baton: { name: o.batonNode.name, host: o.batonNode.host },
      },
      envSh,
    );
    const plan = naming({
      env,
      cookie: o.cookie,
      gen: nextGeneration(o.stateDir),
      logDir: logDir(o.stateDir),
      nodeBase: o.nodeBase,
      batonHost: o.batonNode.host,
      port: o.port,
      handoff: o.handoff,
      listener: o.listener,
      endpoint: o.endpoint,
    });
    progress(`starting peer ${plan.node} (${layout.name} ${layout.vsn}, ${o.handoff} handoff)`);
    const { osPid, exited } = await spawnVm(plan, o.listener);
    o.onSpawn?.(osPid);
    const record: PeerRecord = {
      node: plan.node,
      cookie: o.cookie,
      osPid,
      app: env.app,
      releaseRoot: layout.root,
      vsn: layout.vsn,
      elixir: layout.elixir,
      longNames: env.longNames,
      port: plan.port,
      handoff: o.handoff,
      endpoint: o.endpoint,
      log: plan.log,
      orphanMs: o.orphanMs ?? 60_000,
      startedAt: new Date().toISOString(),
      baton: o.batonNode.name,
    };
    const peer = new Peer(record, o.batonNode, o.stateDir, exited);
    await peer.boot(plan, {
      ebin: o.helperEbin,
      ertsBin: layout.ertsBin,
      appEnv: o.appEnv ?? [],
      connectTo: o.connectTo ?? [],
      configProvider: layout.configProvider,
      bootTimeoutMs: o.bootTimeoutMs ?? 60_000,
      readyTimeoutMs: o.readyTimeoutMs ?? 30_000,
      progress,
    });
    writeRecord(o.stateDir, record);
    progress(`peer ${plan.node} ready on port ${record.port} (os pid ${osPid})`);
    return peer;
  }

  /** The stages after spawn; a failure kills the VM and names the stage it happened in. */
  private async boot(
    plan: SpawnPlan,
    o: {
      ebin: string | undefined;
      ertsBin: string | undefined;
      appEnv: AppEnv;
      connectTo: string[];
      configProvider: boolean;
      bootTimeoutMs: number;
      readyTimeoutMs: number;
      progress: (line: string) => void;
    },
  ): Promise<void> {
    const { app } = this.record;
    const bootDeadline = Date.now() + o.bootTimeoutMs;
    let stage: PeerStartStage = 'connect';
    try {
      await connectVm(this.batonNode, this, bootDeadline);
      stage = 'helpers';
      await armVm(this.batonNode, this, {
        ebin: o.ebin,
        ertsBin: o.ertsBin,
        orphanMs: this.record.orphanMs,
        appEnv: o.appEnv,
      });
      stage = 'config';
      await configureVm(this, {
        app,
        connectTo: o.connectTo,
        configProvider: o.configProvider,
        socket: plan.socket,
        deadline: bootDeadline,
        progress: o.progress,
      });
      stage = 'start';
      await startVmApp(this, app, bootDeadline);
      o.progress(`peer ${this.node}: ${app} started`);
      stage = 'ready';
      await awaitListening(this, this.record.port, o.readyTimeoutMs);
    } catch (err) {
      if (err instanceof NotReady) {
        await this.abort();
        throw new PeerReadyTimeoutError(this.node, this.record.port, o.readyTimeoutMs, this.output());
      }
      const reason = await failureReason(err, stage, this, app);
      // Let the peer's last words (an error report) reach the log before reading it.
      await this.abort();
      throw new PeerStartError(this.node, stage, reason, this.output(), { cause: err });
    }
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

  private async abort(): Promise<void> {
    // Its last reports (stderr, logger) are written asynchronously to our reply.
    await waitQuiet(this.record.log, { maxMs: 1500, quietMs: 150, writing: () => this.alive });
    this.closing = true;
    killGroup(this.osPid, 'SIGKILL');
    await this.exited;
    // The VM's own children (erl_child_setup) share the group.
    killGroup(this.osPid, 'SIGKILL');
  }
}
