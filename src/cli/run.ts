/**
 * `baton run`: the release at BATON_RELEASE_ROOT as baton's peer, kept running by the
 * manager's Supervisor (re-adoption, restarts with backoff, giving up on a first peer
 * that cannot start, SIGTERM/SIGINT; src/manager). This file builds its configuration,
 * starts baton's node, and words what happens: progress on stderr, the peer's log on stdout.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_RESTART_POLICY,
  Supervisor,
  type SupervisorEvent,
  startBatonNode,
  stopOnSignals,
} from '../manager/index.js';
import { followLog, PeerError, type PeerRecord, pidAlive, readLayout, readRecord, vmArgsName } from '../peer/index.js';
import type { Out } from './io.js';
import { type RunConfig, runConfig } from './run-config.js';

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

export async function runCommand(args: string[], io: Out): Promise<number> {
  const cfg = runConfig(args, io.env);
  const say = (line: string): void => io.err(`baton: ${line}\n`);
  mkdirSync(cfg.stateDir, { recursive: true });
  const layout = readLayout(cfg.releaseRoot);
  const recorded = readRecord(cfg.stateDir);
  const live = recorded !== undefined && pidAlive(recorded.osPid) ? recorded : undefined;
  const cookie = resolveCookie(cfg, live, layout.cookie);

  const node = await startBatonNode(cfg.stateDir, distributionHost(io.env, layout.vmArgs?.text), {
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

  let stopTail: (() => void) | undefined;
  const sup = new Supervisor({
    batonNode: node,
    cookie,
    stateDir: cfg.stateDir,
    recorded: live,
    peer: {
      releaseRoot: cfg.releaseRoot,
      ...(cfg.app === undefined ? {} : { app: cfg.app }),
      port: cfg.port,
      handoff: cfg.handoff,
      bind: cfg.bind,
      ...(cfg.endpoint === undefined ? {} : { endpoint: cfg.endpoint }),
      orphanMs: cfg.orphanMs,
      env: { ...io.env, ...(cfg.releaseNode === undefined ? {} : { RELEASE_NODE: cfg.releaseNode }) },
    },
    policy: {
      startAttempts: cfg.startAttempts,
      backoffMs: cfg.backoffMs,
      maxBackoffMs: cfg.maxBackoffMs,
      resetAfterMs: DEFAULT_RESTART_POLICY.resetAfterMs,
    },
    drainMs: cfg.drainMs,
    onEvent: (e) => {
      if (e.type === 'running') {
        stopTail?.();
        // A peer started here is shown from its first line; an adopted one from now on.
        stopTail = followLog(e.peer.record.log, (s) => io.out(s), { fromStart: !e.adopted });
      }
      const line = eventLine(e, cfg);
      if (line !== undefined) say(line);
    },
  });
  const unhook = stopOnSignals(sup);
  try {
    return (await sup.start()) === 'stopped' ? 0 : 1;
  } catch (err) {
    if (err instanceof PeerError) {
      say(err.message);
      return 1;
    }
    throw err;
  } finally {
    unhook();
    stopTail?.();
    await node.close();
  }
}

/** What `baton run` says about a supervision event (undefined: nothing). */
export function eventLine(e: SupervisorEvent, cfg: Pick<RunConfig, 'drainMs'>): string | undefined {
  switch (e.type) {
    case 'progress':
      return e.line;
    case 'adopted':
      return `re-adopted peer ${e.peer.node} (os pid ${e.peer.osPid}); not restarted`;
    case 'adopt_failed':
      return `${e.error.message}; starting a new peer`;
    case 'running':
      return undefined;
    case 'start_failed':
      return e.error.message;
    case 'retrying':
      return `starting again in ${e.delayMs} ms (attempt ${e.attempt})`;
    case 'gave_up':
      return `the peer failed to start ${e.failures} times; giving up`;
    case 'exited':
      return `peer ${e.peer.node} exited (${e.exit.signal ?? `status ${String(e.exit.code)}`}); restarting in ${e.delayMs} ms`;
    case 'stopping':
      return `${e.reason}: stopping the peer (drain up to ${cfg.drainMs} ms)`;
    case 'killing':
      return `${e.reason}: killing the peer`;
    case 'stopped': {
      const r = e.result;
      return (
        `peer ${e.peer.node} stopped` +
        (r.leftOpen > 0 ? `; ${r.leftOpen} connection(s) still open after the drain` : '') +
        (r.killed ? '; it was killed after not exiting in time' : '') +
        (r.endpoint !== 'ok' ? ` (endpoint: ${r.endpoint})` : '')
      );
    }
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
