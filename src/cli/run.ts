/**
 * `baton run`: the release at BATON_RELEASE_ROOT as baton's peer, kept running.
 * - A peer recorded in the state dir that is still alive is re-adopted, not restarted.
 * - A peer that exits is started again with backoff; a first peer that cannot start
 *   after its attempts makes baton exit 1, so the platform replaces the machine
 *   instead of leaving one up that serves nothing.
 * - SIGTERM/SIGINT: endpoint stop, drain, init:stop, exit 0 (a second signal kills).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { EpmdError, Node, type NodeOptions } from '../distribution/index.js';
import {
  bindListener,
  followLog,
  type Listener,
  NoPeerError,
  nextGeneration,
  Peer,
  PeerError,
  type PeerRecord,
  pidAlive,
  readLayout,
  readRecord,
  vmArgsName,
} from '../peer/index.js';
import type { Out } from './io.js';
import { backoff, type RunConfig, runConfig } from './run-config.js';

export function resolveCookie(
  cfg: RunConfig,
  record: PeerRecord | undefined,
  releaseCookie: string | undefined,
): string {
  if (cfg.cookie !== undefined) return cfg.cookie;
  if (record !== undefined) return record.cookie;
  if (releaseCookie !== undefined && releaseCookie !== '') return releaseCookie;
  // Generated once per state dir, so remsh/eval and a restarted baton agree on it.
  const p = join(cfg.stateDir, 'cookie');
  try {
    const c = readFileSync(p, 'utf8').trim();
    if (c !== '') return c;
  } catch {
    // First run.
  }
  const c = randomBytes(18).toString('base64url');
  writeFileSync(p, c, { mode: 0o600 });
  return c;
}

/**
 * The host part of node names when they are long: FLY_PRIVATE_IP on Fly (an IPv6
 * address), else this host's name when the release asks for long names
 * (RELEASE_DISTRIBUTION=name or -name in vm.args). Undefined: short names.
 */
export function distributionHost(
  env: Record<string, string | undefined>,
  vmArgs: string | undefined,
): string | undefined {
  const fly = env['FLY_PRIVATE_IP'];
  if (fly !== undefined && fly !== '') return fly;
  const long = env['RELEASE_DISTRIBUTION'] === 'name' || (vmArgs !== undefined && vmArgsName(vmArgs)?.long === true);
  if (!long) return undefined;
  const h = hostname();
  return h.includes('.') ? h : '127.0.0.1';
}

/**
 * baton's own node, `baton-<gen>@<host>`. The generation counts per state dir, so
 * another baton on the host (another app, another state dir) may hold the name: EPMD
 * says so, and the next generation is tried.
 */
async function startBatonNode(
  stateDir: string,
  host: string | undefined,
  opts: Omit<NodeOptions, 'name'>,
): Promise<Node> {
  for (let attempt = 1; ; attempt++) {
    const node = new Node({
      ...opts,
      name: `baton-${nextGeneration(stateDir)}${host === undefined ? '' : `@${host}`}`,
    });
    try {
      await node.start();
      return node;
    } catch (err) {
      await node.close();
      if (!(err instanceof EpmdError && err.reason === 'name_taken') || attempt === 20) throw err;
    }
  }
}

export async function runCommand(args: string[], io: Out): Promise<number> {
  const cfg = runConfig(args, io.env);
  const say = (line: string): void => io.err(`baton: ${line}\n`);
  mkdirSync(cfg.stateDir, { recursive: true });
  const layout = readLayout(cfg.releaseRoot);
  const recorded = readRecord(cfg.stateDir);
  const live = recorded !== undefined && pidAlive(recorded.osPid) ? recorded : undefined;
  const cookie = resolveCookie(cfg, live, layout.cookie);

  const host = distributionHost(io.env, layout.vmArgs?.text);
  const node = await startBatonNode(cfg.stateDir, host, {
    cookie,
    hidden: true,
    startEpmd: true,
    ...(cfg.busyPollMs === undefined ? {} : { busyPollMs: cfg.busyPollMs }),
    log: (line, from) => io.out(`[${from}] ${line}\n`),
  });
  say(`node ${node.name}`);
  if (cfg.handoff === 'reuseport' && tcpMigrateReq() === false) {
    say(
      "warning: net.ipv4.tcp_migrate_req is 0, so connections queued on a stopping peer's SO_REUSEPORT listener are reset when it closes; set it to 1, or use the fd handoff",
    );
  }

  let listener: Listener | undefined;
  const getListener = (): Listener | undefined => {
    if (cfg.handoff !== 'fd') return undefined;
    listener ??= bindListener(cfg.bind, cfg.port);
    return listener;
  };

  let stopping = false;
  let current: Peer | undefined;
  let wake: (() => void) | undefined;
  const stopSignal = new Promise<void>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      if (stopping) {
        say(`${sig} again: killing the peer`);
        void current?.kill().then(() => process.exit(1));
        return;
      }
      stopping = true;
      say(`${sig}: stopping the peer (drain up to ${cfg.drainMs} ms)`);
      resolve();
      wake?.();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });

  const launch = (): Promise<Peer> =>
    Peer.launch({
      batonNode: node,
      cookie,
      stateDir: cfg.stateDir,
      releaseRoot: cfg.releaseRoot,
      ...(cfg.app === undefined ? {} : { app: cfg.app }),
      port: cfg.port,
      handoff: cfg.handoff,
      ...(getListener() === undefined ? {} : { listener: getListener()! }),
      ...(cfg.endpoint === undefined ? {} : { endpoint: cfg.endpoint }),
      orphanMs: cfg.orphanMs,
      env: { ...io.env, ...(cfg.releaseNode === undefined ? {} : { RELEASE_NODE: cfg.releaseNode }) },
      progress: say,
    });

  const sleep = (ms: number): Promise<void> =>
    new Promise((r) => {
      const t = setTimeout(r, ms);
      wake = () => {
        clearTimeout(t);
        r();
      };
    });

  let stopTail: (() => void) | undefined;
  const adopted = new Set<Peer>();
  try {
    if (live !== undefined) {
      try {
        current = await Peer.adopt({ batonNode: node, stateDir: cfg.stateDir, record: live, orphanMs: cfg.orphanMs });
        adopted.add(current);
        say(`re-adopted peer ${current.node} (os pid ${current.osPid}); not restarted`);
      } catch (err) {
        say(`${(err as Error).message}; starting a new peer`);
      }
    }
    let failures = 0;
    let everStarted = current !== undefined;
    while (!stopping) {
      if (current === undefined) {
        try {
          current = await launch();
          everStarted = true;
          failures = 0;
        } catch (err) {
          failures += 1;
          say((err as Error).message);
          if (!everStarted && failures >= cfg.startAttempts) {
            say(`the peer failed to start ${failures} times; giving up`);
            return 1;
          }
          const ms = backoff(failures, cfg.backoffMs, cfg.maxBackoffMs);
          say(`starting again in ${ms} ms (attempt ${failures + 1})`);
          await sleep(ms);
          continue;
        }
      }
      stopTail?.();
      // A peer started here is shown from its first line; an adopted one from now on.
      stopTail = followLog(current.record.log, (s) => io.out(s), {
        fromStart: current.record.baton === node.name && !adopted.has(current),
      });
      const started = Date.now();
      const peer = current;
      const exit = await Promise.race([peer.exited, stopSignal.then(() => undefined)]);
      if (exit === undefined) break;
      current = undefined;
      // A peer that ran a while starts the backoff over.
      if (Date.now() - started > 60_000) failures = 0;
      failures += 1;
      const ms = backoff(failures, cfg.backoffMs, cfg.maxBackoffMs);
      say(`peer ${peer.node} exited (${exit.signal ?? `status ${String(exit.code)}`}); restarting in ${ms} ms`);
      await sleep(ms);
    }
    if (current !== undefined) {
      const r = await current.stop({ drainMs: cfg.drainMs, progress: say });
      say(
        `peer ${current.node} stopped` +
          (r.leftOpen > 0 ? `; ${r.leftOpen} connection(s) still open after the drain` : '') +
          (r.killed ? '; it was killed after not exiting in time' : '') +
          (r.endpoint !== 'ok' ? ` (endpoint: ${r.endpoint})` : ''),
      );
    }
    return 0;
  } catch (err) {
    if (err instanceof PeerError || err instanceof NoPeerError) {
      say((err as Error).message);
      return 1;
    }
    throw err;
  } finally {
    stopTail?.();
    listener?.close();
    await node.close();
  }
}

/** net.ipv4.tcp_migrate_req (Linux 5.14+); undefined where the kernel has no such knob. */
function tcpMigrateReq(): boolean | undefined {
  try {
    return readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim() !== '0';
  } catch {
    return undefined;
  }
}
