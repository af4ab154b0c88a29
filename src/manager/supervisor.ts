/**
 * Keeps one peer running for baton: re-adopts the peer a previous baton left (its record
 * in the state dir), else starts one; starts it again with backoff when it exits; gives
 * up when the first peer cannot start in its attempts (baton then exits 1, so the
 * platform replaces the machine rather than keep one that serves nothing); on stop,
 * stops the endpoint accepting, drains and stops the peer; on kill, kills it at once.
 * It prints nothing: what happens is told through `onEvent`, for the CLI to word.
 */
import type { Node } from '../distribution/index.js';
import {
  bindListener,
  killGroup,
  type LaunchOptions,
  type Listener,
  Peer,
  type PeerExit,
  type PeerRecord,
  type StopResult,
} from '../peer/index.js';
import { failuresAfterExit, givesUp, type RestartPolicy, restartDelay } from './restart-policy.js';

/** How each peer is launched: Peer.launch's options less what the supervisor provides. */
export type PeerLaunch = Omit<
  LaunchOptions,
  'batonNode' | 'cookie' | 'stateDir' | 'listener' | 'progress' | 'onSpawn'
> & {
  /** fd handoff: the address baton binds the shared socket on (once, at the first start). */
  bind: string;
};

export interface SupervisorOptions {
  /** baton's node, started, with the cookie the peers get. */
  batonNode: Node;
  cookie: string;
  stateDir: string;
  peer: PeerLaunch;
  /** A peer recorded in the state dir whose process is alive: re-adopted instead of starting one. */
  recorded?: PeerRecord | undefined;
  policy: RestartPolicy;
  /** Longest wait for in-flight requests when stopping. */
  drainMs: number;
  onEvent?: (e: SupervisorEvent) => void;
}

export type SupervisorEvent =
  /** A line from a peer's launch or stop (its stages, its stop recipe). */
  | { type: 'progress'; line: string }
  | { type: 'adopted'; peer: Peer }
  | { type: 'adopt_failed'; error: Error }
  /** A peer runs under supervision from now on (`adopted`: taken over, not started here). */
  | { type: 'running'; peer: Peer; adopted: boolean }
  | { type: 'start_failed'; error: Error; failures: number }
  | { type: 'retrying'; delayMs: number; attempt: number }
  | { type: 'gave_up'; failures: number }
  | { type: 'exited'; peer: Peer; exit: PeerExit; delayMs: number }
  | { type: 'stopping'; reason: string }
  | { type: 'killing'; reason: string }
  | { type: 'stopped'; peer: Peer; result: StopResult };

/** How supervision ended: asked to stop, gave up on the first peer, or killed. */
export type SupervisorOutcome = 'stopped' | 'gave_up' | 'killed';

export class Supervisor {
  private run: Promise<SupervisorOutcome> | undefined;
  private stopReason: string | undefined;
  private killed = false;
  private current: Peer | undefined;
  /** The VM being launched, before it is a Peer: a kill must reach it too. */
  private spawning: number | undefined;
  private listener: Listener | undefined;
  /** Resolves once a stop (or kill) is asked for: every wait of the loop races it. */
  private readonly stopAsked: Promise<undefined>;
  private askStop: () => void = () => undefined;
  private readonly emit: (e: SupervisorEvent) => void;

  constructor(private readonly o: SupervisorOptions) {
    this.emit = o.onEvent ?? (() => undefined);
    this.stopAsked = new Promise((resolve) => {
      this.askStop = () => resolve(undefined);
    });
  }

  /** The peer under supervision, when one runs. */
  get peer(): Peer | undefined {
    return this.current;
  }

  get stopping(): boolean {
    return this.stopReason !== undefined;
  }

  /** Starts supervising; resolves when supervision ends, and how. */
  start(): Promise<SupervisorOutcome> {
    this.run ??= this.supervise().finally(() => this.listener?.close());
    return this.run;
  }

  /** Ends supervision: the peer stops accepting, drains and stops. Resolves as start() does. */
  stop(reason = 'stop'): Promise<SupervisorOutcome> {
    if (this.stopReason === undefined) {
      this.stopReason = reason;
      this.emit({ type: 'stopping', reason });
      this.askStop();
    }
    return this.start();
  }

  /** Kills the peer (or the VM being launched) at once, without a drain. */
  async kill(reason = 'kill'): Promise<void> {
    this.killed = true;
    this.stopReason ??= reason;
    this.emit({ type: 'killing', reason });
    this.askStop();
    if (this.spawning !== undefined) killGroup(this.spawning, 'SIGKILL');
    await this.current?.kill();
  }

  private async supervise(): Promise<SupervisorOutcome> {
    const { policy } = this.o;
    if (this.o.recorded !== undefined) await this.adopt(this.o.recorded);
    let failures = 0;
    let everStarted = this.current !== undefined;
    while (!this.stopping) {
      if (this.current === undefined) {
        try {
          this.current = await this.launch();
          everStarted = true;
          failures = 0;
          this.emit({ type: 'running', peer: this.current, adopted: false });
        } catch (err) {
          failures += 1;
          this.emit({ type: 'start_failed', error: err as Error, failures });
          if (givesUp(failures, everStarted, policy)) {
            this.emit({ type: 'gave_up', failures });
            return 'gave_up';
          }
          if (this.stopping) break;
          const delayMs = restartDelay(failures, policy);
          this.emit({ type: 'retrying', delayMs, attempt: failures + 1 });
          await this.pause(delayMs);
          continue;
        }
      }
      const peer = this.current;
      const started = Date.now();
      const exit = await Promise.race([peer.exited, this.stopAsked]);
      if (exit === undefined) break;
      this.current = undefined;
      failures = failuresAfterExit(failures, Date.now() - started, policy);
      const delayMs = restartDelay(failures, policy);
      this.emit({ type: 'exited', peer, exit, delayMs });
      await this.pause(delayMs);
    }
    const peer = this.current;
    if (peer !== undefined) {
      const result = await peer.stop({
        drainMs: this.o.drainMs,
        progress: (line) => this.emit({ type: 'progress', line }),
      });
      this.emit({ type: 'stopped', peer, result });
    }
    return this.killed ? 'killed' : 'stopped';
  }

  private async adopt(record: PeerRecord): Promise<void> {
    try {
      const peer = await Peer.adopt({
        batonNode: this.o.batonNode,
        stateDir: this.o.stateDir,
        record,
        ...(this.o.peer.orphanMs === undefined ? {} : { orphanMs: this.o.peer.orphanMs }),
        ...(this.o.peer.helperEbin === undefined ? {} : { helperEbin: this.o.peer.helperEbin }),
      });
      this.current = peer;
      this.emit({ type: 'adopted', peer });
      this.emit({ type: 'running', peer, adopted: true });
    } catch (err) {
      this.emit({ type: 'adopt_failed', error: err as Error });
    }
  }

  private async launch(): Promise<Peer> {
    const { bind, ...peer } = this.o.peer;
    // fd mode binds once: while no peer runs, connections wait in its queue.
    if (peer.handoff === 'fd') this.listener ??= bindListener(bind, peer.port);
    try {
      return await Peer.launch({
        ...peer,
        batonNode: this.o.batonNode,
        cookie: this.o.cookie,
        stateDir: this.o.stateDir,
        ...(this.listener === undefined ? {} : { listener: this.listener }),
        progress: (line) => this.emit({ type: 'progress', line }),
        onSpawn: (pid) => {
          this.spawning = pid;
          if (this.killed) killGroup(pid, 'SIGKILL');
        },
      });
    } finally {
      this.spawning = undefined;
    }
  }

  /** Waits `ms`, or less when a stop is asked for. */
  private async pause(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise((resolve) => (timer = setTimeout(resolve, ms))), this.stopAsked]);
    clearTimeout(timer);
  }
}
