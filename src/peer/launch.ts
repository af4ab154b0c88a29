/**
 * Starting a peer from a release, in named stages (docs/design.md, "The peer lifecycle"):
 *   environment  what the release's start script would give the VM (env.sh's exports), and
 *                whether it uses long names: pure, once env.sh has been sourced;
 *   naming       the node's name, its log, its vm.args, command line and OS environment: pure;
 *   spawn        the VM in its own process group, its output to the log;
 *   connect      baton reaches it over distribution and its boot script has run;
 *   helpers      baton's modules loaded; the peer marked, its app env set, its watchdog armed;
 *   config       what the application starts with: its neighbours connected, its runtime
 *                config (config providers), the handed socket in its endpoints' config;
 *   start        `application:ensure_all_started`;
 *   ready        the application listens on its port.
 * `Peer.launch` runs them in order; a failure from spawn on is a PeerStartError naming its
 * stage, and nothing of the VM is left running.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CookieMismatchError, type Node } from '../distribution/index.js';
import { atom, showTerm, type Term, Tuple } from '../etf/index.js';
import {
  erlPath,
  filterVmArgs,
  type Handoff,
  nodeBase,
  peerArgs,
  peerEnv,
  peerNodeName,
  protoDistArgs,
  type ReleaseLayout,
  releaseVars,
  vmArgsName,
} from './args.js';
import { type Injection, injectEndpoints, type SocketHandoff } from './endpoints.js';
import { sourceEnvSh } from './envsh.js';
import { PeerError, PeerStartError } from './errors.js';
import { helperEbin, loadHelpers } from './helpers.js';
import type { Listener } from './listener.js';
import { childExit, exitText, type ProcessExit } from './os-process.js';

/** The fd the handed socket has in the peer (after stdin, stdout, stderr). */
export const LISTEN_FD = 3;

// ---- environment --------------------------------------------------------------------

export interface EnvironmentInput {
  layout: ReleaseLayout;
  /** baton's environment as the peer should inherit it. */
  baseEnv: Record<string, string | undefined>;
  cookie: string;
  /** Application to start (default: the release's name). */
  app?: string | undefined;
  handoff: Handoff;
  /** fd mode hands over this socket; it must be there. */
  hasListener: boolean;
  /** baton's own node: its name, and its host (long names when it has dots or colons). */
  baton: { name: string; host: string };
}

export interface Environment {
  layout: ReleaseLayout;
  app: string;
  baseEnv: Record<string, string | undefined>;
  /** What env.sh was sourced with: baton's environment and the start script's variables. */
  shInput: Record<string, string>;
  /** What sourcing env.sh exported. */
  envSh: Record<string, string>;
  longNames: boolean;
}

/** The environment env.sh is sourced in, as a mix release's start script sets it up. */
export function envShInput(
  layout: ReleaseLayout,
  baseEnv: Record<string, string | undefined>,
  cookie: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(baseEnv)) if (v !== undefined) out[k] = v;
  return Object.assign(out, releaseVars(layout, baseEnv['RELEASE_NODE'] ?? layout.name, cookie, baseEnv));
}

/** What env.sh exports (it may choose RELEASE_NODE, the name base, and distribution flags). */
export async function sourceReleaseEnv(
  layout: ReleaseLayout,
  shInput: Record<string, string>,
): Promise<Record<string, string>> {
  return layout.envSh === undefined ? {} : sourceEnvSh(layout.envSh, shInput);
}

/** The environment stage, given what env.sh exported. Throws PeerError for a start that cannot work. */
export function environment(i: EnvironmentInput, envSh: Record<string, string>): Environment {
  if (i.handoff === 'fd' && !i.hasListener) throw new PeerError('fd handoff needs the bound listener to hand over');
  const { layout, baseEnv } = i;
  const batonLong = isLongHost(i.baton.host);
  const longNames =
    batonLong ||
    (envSh['RELEASE_DISTRIBUTION'] ?? baseEnv['RELEASE_DISTRIBUTION']) === 'name' ||
    (layout.vmArgs !== undefined && vmArgsName(layout.vmArgs.text)?.long === true);
  if (longNames !== batonLong) {
    throw new PeerError(
      `the release uses ${longNames ? 'long' : 'short'} node names but baton's node ${i.baton.name} does not; they cannot connect`,
    );
  }
  return {
    layout,
    app: i.app ?? layout.name,
    baseEnv,
    shInput: envShInput(layout, baseEnv, i.cookie),
    envSh,
    longNames,
  };
}

/** Long node names carry a host with dots or an IPv6 address. */
export function isLongHost(host: string): boolean {
  return host.includes('.') || host.includes(':');
}

// ---- naming -------------------------------------------------------------------------

export interface NamingInput {
  env: Environment;
  cookie: string;
  /** This start's generation (nextGeneration of the state dir). */
  gen: number;
  /** Where the peer's log, vm.args and crash dump go. */
  logDir: string;
  /** Node name part before `-<gen>` (default: RELEASE_NODE's name part, else the app). */
  nodeBase?: string | undefined;
  batonHost: string;
  port: number;
  handoff: Handoff;
  /** The handed socket, in fd mode. */
  listener?: { port: number; family: 'inet' | 'inet6' } | undefined;
  endpoint: string | undefined;
}

/** Everything the spawn needs, decided before anything runs. */
export interface SpawnPlan {
  node: string;
  /** The port the peer serves on (the listener's in fd mode). */
  port: number;
  log: string;
  /** The filtered vm.args baton writes for the peer. */
  vmArgs: { path: string; text: string } | undefined;
  cmd: string;
  args: string[];
  env: Record<string, string>;
  /** How the application gets its socket; undefined for `restart` (it binds the port itself). */
  socket: SocketHandoff | undefined;
}

/** The naming stage: the node's name and everything its command line is made of. */
export function naming(i: NamingInput): SpawnPlan {
  const { layout, envSh, baseEnv, shInput, longNames, app } = i.env;
  const base = i.nodeBase ?? nodeBase(envSh['RELEASE_NODE'] ?? baseEnv['RELEASE_NODE'], app);
  const node = peerNodeName(base, i.gen, i.batonHost);
  const vmArgs =
    layout.vmArgs === undefined
      ? undefined
      : {
          path: join(i.logDir, `${node}.vm.args`),
          text: filterVmArgs(layout.vmArgs.text, { ...shInput, ...envSh }, layout.vmArgs.template),
        };
  const fd = i.handoff === 'fd' && i.listener !== undefined ? i.listener : undefined;
  const port = i.listener?.port ?? i.port;
  const env = peerEnv({
    base: baseEnv,
    layout,
    envSh,
    node,
    cookie: i.cookie,
    port,
    handoff: i.handoff,
    ...(fd ? { fd: { n: LISTEN_FD, family: fd.family } } : {}),
    endpoint: i.endpoint,
  });
  // A crash dump goes beside the log, not into baton's working directory.
  env['ERL_CRASH_DUMP'] ??= join(i.logDir, `${node}.erl_crash.dump`);
  // An IPv6 host (Fly's private network) needs distribution over IPv6.
  const extra = protoDistArgs(i.batonHost, env, layout.vmArgs?.text);
  return {
    node,
    port,
    log: join(i.logDir, `${node}.log`),
    vmArgs,
    cmd: erlPath(layout),
    args: peerArgs({ layout, node, longNames, cookie: i.cookie, argsFile: vmArgs?.path, extra }),
    env,
    socket:
      i.handoff === 'restart' ? undefined : fd ? { fd: LISTEN_FD, inet6: fd.family === 'inet6' } : { reuseport: true },
  };
}

// ---- spawn --------------------------------------------------------------------------

export interface Spawned {
  osPid: number;
  exited: Promise<ProcessExit>;
}

/** The spawn stage: writes the vm.args, appends the VM's output to its log. */
export async function spawnVm(plan: SpawnPlan, listener: Listener | undefined): Promise<Spawned> {
  mkdirSync(dirname(plan.log), { recursive: true });
  if (plan.vmArgs !== undefined) writeFileSync(plan.vmArgs.path, plan.vmArgs.text);
  const logFd = openSync(plan.log, 'a');
  let child: ChildProcess;
  try {
    child = spawn(plan.cmd, plan.args, {
      env: plan.env,
      // Its own process group: baton's terminal signals are not the peer's, a
      // `kill -9` of baton leaves it to its watchdog, and a stop kills the whole group.
      detached: true,
      stdio: [
        'ignore',
        logFd,
        logFd,
        ...(plan.socket !== undefined && 'fd' in plan.socket && listener ? [listener.fd] : []),
      ],
    });
  } finally {
    closeSync(logFd);
  }
  const exited = childExit(child);
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  child.unref();
  if (child.pid === undefined) throw new PeerStartError(plan.node, 'spawn', (await spawnError).message, '');
  return { osPid: child.pid, exited };
}

// ---- the stages on a running VM -----------------------------------------------------

/** The spawned VM as the later stages see it (a Peer). */
export interface BootingVm {
  readonly node: string;
  /** The VM's exit, once it has exited. */
  readonly exitStatus: ProcessExit | undefined;
  erpc(mod: string, fun: string, args: Term[], timeoutMs?: number): Promise<Term>;
}

/** A stage's own verdict, worded for the error as it is (not a transport failure). */
export class StageFailure extends Error {}

/** The connect stage: waits until baton reaches the VM and init has finished the boot script. */
export async function connectVm(batonNode: Node, vm: BootingVm, deadline: number): Promise<void> {
  let last: unknown;
  for (;;) {
    if (vm.exitStatus !== undefined)
      throw new StageFailure(`the VM exited (${exitText(vm.exitStatus)}) before it could be reached`);
    try {
      await batonNode.connect(vm.node);
      // Distribution comes up while kernel is still starting: wait for init to
      // finish the boot script before touching applications.
      const st = await batonNode.erpc(vm.node, 'init', 'get_status', [], { timeoutMs: 5000 });
      if (st instanceof Tuple && st.elements[0] === atom('started')) return;
    } catch (err) {
      last = err;
      if (err instanceof CookieMismatchError) throw err;
    }
    if (Date.now() > deadline)
      throw new StageFailure(`not reachable over distribution in time (${(last as Error)?.message ?? 'no answer'})`);
    await sleep(15);
  }
}

/** App env set in the peer before its application loads: `[app, key, value]`. */
export type AppEnv = Array<[string, string, Term]>;

/** The helpers stage: baton's modules in, the peer marked, its app env set, its watchdog armed. */
export async function armVm(
  batonNode: Node,
  vm: BootingVm,
  o: { ebin: string | undefined; ertsBin: string | undefined; orphanMs: number; appEnv: AppEnv },
): Promise<void> {
  await loadHelpers(batonNode, vm.node, o.ebin ?? (await helperEbin(o.ertsBin)));
  await vm.erpc('baton_peer', 'prepare', [
    new Map<Term, Term>([
      [atom('baton'), atom(batonNode.name)],
      [atom('orphan_ms'), o.orphanMs],
      [atom('env'), o.appEnv.map(([a, k, v]) => new Tuple([atom(a), atom(k), v]))],
    ]),
  ]);
}

/** The config stage: neighbours, runtime config, endpoint sockets, in that order. */
export async function configureVm(
  vm: BootingVm,
  o: {
    app: string;
    connectTo: string[];
    configProvider: boolean;
    socket: SocketHandoff | undefined;
    deadline: number;
    progress: (line: string) => void;
  },
): Promise<void> {
  for (const other of o.connectTo) {
    const ok = await vm.erpc('net_kernel', 'connect_node', [atom(other)], 15_000);
    if (ok !== atom('true'))
      throw new StageFailure(`it could not connect to ${other} (net_kernel:connect_node/1 returned ${showTerm(ok)})`);
  }
  if (o.configProvider) {
    // What the release's start.boot does right after kernel and stdlib: run the
    // config providers (runtime.exs) into persistent application env.
    await vm.erpc('application', 'load', [atom('elixir')]);
    await vm.erpc('Elixir.Config.Provider', 'boot', [], remaining(o.deadline));
  }
  if (o.socket !== undefined) {
    // Phoenix endpoints get the handed socket through their config, set after the
    // runtime config so that runtime.exs's `ip`/`port` cannot undo it.
    const done = await injectEndpoints(vm.erpc.bind(vm), [o.app], o.socket);
    for (const i of done) o.progress(`peer ${vm.node}: ${describeInjection(i, o.socket)}`);
  }
}

/** The start stage: the application and what it depends on. */
export async function startVmApp(vm: BootingVm, app: string, deadline: number): Promise<void> {
  const r = await vm.erpc('baton_peer', 'start_app', [atom(app)], remaining(deadline));
  if (!(r instanceof Tuple && r.elements[0] === atom('ok'))) {
    const why = r instanceof Tuple && Buffer.isBuffer(r.elements[1]) ? r.elements[1].toString('utf8') : showTerm(r);
    throw new StageFailure(`application ${app} did not start: ${why}`);
  }
}

/** The ready stage timed out: the application never listened. */
export class NotReady extends Error {}

/** The ready stage: polls until something in the VM listens on `port`. */
export async function awaitListening(vm: BootingVm, port: number, readyMs: number): Promise<void> {
  const deadline = Date.now() + readyMs;
  for (;;) {
    if ((await vm.erpc('baton_peer', 'listening', [port], 5000)) === atom('true')) return;
    if (Date.now() > deadline) throw new NotReady();
    await sleep(20);
  }
}

/**
 * Why a stage failed, for PeerStartError: a stage's own verdict as it is; the VM's exit
 * when it went; for the start stage, the application's exit reason from the peer's log
 * (the connection is lost as an app halts or stops the VM: the reason is only there).
 */
export async function failureReason(
  err: unknown,
  stage: string,
  vm: BootingVm & { output(maxBytes?: number): string },
  app: string,
): Promise<string> {
  if (err instanceof StageFailure) return err.message;
  if (stage === 'start') {
    const fromLog = await appExitFromLog(vm, app);
    if (fromLog !== undefined) return `application ${app} did not start: ${fromLog}`;
  }
  if (vm.exitStatus !== undefined) return `the VM exited during boot (${(err as Error).message})`;
  return (err as Error).message;
}

/** The reason in the `application: App exited: Reason` report the peer logged, if any (waits up to 2 s). */
async function appExitFromLog(vm: { output(maxBytes?: number): string }, app: string): Promise<string | undefined> {
  const re = new RegExp(`application: ${app}\\n\\s+exited: ([\\s\\S]*?)\\n\\s+type: `);
  const deadline = Date.now() + 2000;
  for (;;) {
    const m = re.exec(vm.output(65536));
    if (m) return m[1]!.replace(/\s+/g, ' ').trim();
    if (Date.now() > deadline) return undefined;
    await sleep(50);
  }
}

function describeInjection(i: Injection, how: SocketHandoff): string {
  const what = `${i.endpoint} (${i.app}, ${i.adapter})`;
  if (i.result !== 'injected') return `${what} left as configured (${i.result})`;
  return `${what} ${'fd' in how ? `listens on the handed socket (fd ${how.fd})` : 'binds its port with SO_REUSEPORT'}: http ${i.http ?? ''}`;
}

/** What is left of the boot deadline for one call, never under a second. */
function remaining(deadline: number): number {
  return Math.max(1000, deadline - Date.now());
}
