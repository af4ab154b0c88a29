/**
 * Pure parts of starting a peer: the `erl` command line built from a release layout
 * (docs/design.md, "The peer lifecycle", spawn), vm.args filtering, node names, the peer's OS
 * environment. No I/O here, so every rule is unit-tested.
 */
import { join } from 'node:path';

export type Handoff = 'fd' | 'reuseport' | 'restart';

/** What a release directory holds that matters to start it (see layout.ts). */
export interface ReleaseLayout {
  root: string;
  /** Release name (releases/<vsn>/<name>.rel). */
  name: string;
  vsn: string;
  /** `<root>/releases/<vsn>`. */
  relDir: string;
  /** `<root>/erts-<v>/bin` when the release ships ERTS. */
  ertsBin: string | undefined;
  /** `lib/*\/ebin`, sorted. */
  libEbins: string[];
  /** `releases/<vsn>/consolidated` (Elixir protocols). */
  consolidated: string | undefined;
  sysConfig: string | undefined;
  /** vm.args (relx may ship only vm.args.src, whose ${VAR} come from the environment). */
  vmArgs: { path: string; text: string; template: boolean } | undefined;
  envSh: string | undefined;
  /** releases/COOKIE (mix releases). */
  cookie: string | undefined;
  /** The release contains Elixir (lib/elixir-*). */
  elixir: boolean;
  /**
   * sys.config has a config provider (Elixir's runtime.exs). mix's start_clean boot
   * calls `Config.Provider.boot/0` too, but with only kernel and stdlib loaded it finds
   * no provider there and does nothing; baton runs it once elixir is loaded.
   */
  configProvider: boolean;
}

/** `erl` of the release's own ERTS, else the one on PATH. */
export function erlPath(layout: Pick<ReleaseLayout, 'ertsBin'>): string {
  return layout.ertsBin === undefined ? 'erl' : join(layout.ertsBin, 'erl');
}

/** Flags baton sets itself, so a vm.args line carrying one is dropped. */
const OWN_FLAGS = new Set(['-name', '-sname', '-setcookie', '-mode', '-boot', '-config']);

/**
 * vm.args without what baton decides (name, cookie, boot, config, and `-mode embedded`,
 * which would stop the app's code from loading under start_clean), with relx's
 * `${VAR}` replaced from `env` when the file is a template.
 */
export function filterVmArgs(text: string, env: Record<string, string | undefined>, template: boolean): string {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = template ? raw.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, v: string) => env[v] ?? '') : raw;
    const flag = line.trim().split(/\s+/)[0] ?? '';
    if (OWN_FLAGS.has(flag)) continue;
    out.push(line);
  }
  return out.join('\n');
}

/** The name and distribution mode a vm.args asks for, if any. */
export function vmArgsName(text: string): { long: boolean; name: string } | undefined {
  for (const line of text.split('\n')) {
    const m = /^\s*-(s?name)\s+(\S+)/.exec(line);
    if (m) return { long: m[1] === 'name', name: m[2]! };
  }
  return undefined;
}

export interface PeerArgsInput {
  layout: ReleaseLayout;
  node: string;
  longNames: boolean;
  cookie: string;
  /** The filtered vm.args written by baton (see filterVmArgs). */
  argsFile: string | undefined;
  /** Extra emulator flags (e.g. `-proto_dist inet6_tcp`). */
  extra?: string[];
}

export function peerArgs(i: PeerArgsInput): string[] {
  const { layout } = i;
  const args = [
    i.longNames ? '-name' : '-sname',
    i.node,
    '-setcookie',
    i.cookie,
    '-boot',
    join(layout.relDir, 'start_clean'),
    // mix releases' boot files locate OTP and the app under $RELEASE_LIB.
    '-boot_var',
    'RELEASE_LIB',
    join(layout.root, 'lib'),
    '-noinput',
  ];
  if (layout.sysConfig !== undefined) args.push('-config', layout.sysConfig);
  if (i.argsFile !== undefined) args.push('-args_file', i.argsFile);
  args.push(...(i.extra ?? []));
  // Consolidated protocols must come first in the code path (the app's ebin holds the
  // unconsolidated ones too), and -pa reverses its list as code:add_pathsa/1 does.
  const paths = [...layout.libEbins, ...(layout.consolidated === undefined ? [] : [layout.consolidated])];
  if (paths.length > 0) args.push('-pa', ...paths);
  return args;
}

/**
 * `-proto_dist inet6_tcp` for a peer on an IPv6 host, unless the release already asks for
 * a distribution protocol (Fly's env.sh exports `ERL_AFLAGS="-proto_dist inet6_tcp"`):
 * given twice, even the same value, OTP 25 quietly falls back to inet_tcp, and the node
 * then listens on IPv4 only and cannot be reached at its IPv6 name.
 */
export function protoDistArgs(
  host: string,
  env: Record<string, string | undefined>,
  vmArgs: string | undefined,
): string[] {
  if (!host.includes(':')) return [];
  const given = ['ERL_AFLAGS', 'ERL_FLAGS', 'ERL_ZFLAGS'].some((k) => /(^|\s)-proto_dist\s/.test(env[k] ?? ''));
  if (given || (vmArgs !== undefined && /^\s*-proto_dist\s/m.test(vmArgs))) return [];
  return ['-proto_dist', 'inet6_tcp'];
}

/** Node names allow letters, digits, `_` and `-` in the name part. */
export function nodeBase(releaseNode: string | undefined, app: string): string {
  const raw = releaseNode !== undefined && releaseNode !== '' ? releaseNode.split('@')[0]! : app;
  const clean = raw.replace(/[^A-Za-z0-9_-]/g, '_');
  return clean === '' ? 'peer' : clean;
}

export function peerNodeName(base: string, gen: number, host: string): string {
  return `${base}-${gen}@${host}`;
}

export interface PeerEnvInput {
  /** baton's own environment. */
  base: Record<string, string | undefined>;
  layout: ReleaseLayout;
  /** What sourcing env.sh exported (already diffed against `base`). */
  envSh: Record<string, string>;
  node: string;
  cookie: string;
  port: number;
  handoff: Handoff;
  /** fd number in the child and its family, in fd mode. */
  fd?: { n: number; family: 'inet' | 'inet6' };
  endpoint: string | undefined;
}

/** The peer's OS environment: what the release's start script would give it, plus the injection contract. */
export function peerEnv(i: PeerEnvInput): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(i.base)) {
    // Anything about a handoff comes from this start only, never from baton's parent.
    if (v !== undefined && !k.startsWith('BATON_')) env[k] = v;
  }
  // env.sh may name the node (RELEASE_NODE): that named the base; the peer's name is baton's.
  Object.assign(env, releaseVars(i.layout, i.node, i.cookie, i.base), i.envSh, {
    RELEASE_NODE: i.node,
    RELEASE_COOKIE: i.cookie,
  });
  if (i.layout.elixir && env['PHX_SERVER'] === undefined) env['PHX_SERVER'] = 'true';
  env['PORT'] = String(i.port);
  env['BATON_PEER'] = '1';
  if (i.handoff === 'fd' && i.fd !== undefined) {
    env['BATON_LISTEN_FD'] = String(i.fd.n);
    env['BATON_LISTEN_FAMILY'] = i.fd.family;
  }
  if (i.handoff === 'reuseport') env['BATON_REUSEPORT'] = '1';
  if (i.endpoint !== undefined) env['BATON_ENDPOINT'] = i.endpoint;
  return env;
}

/** What a mix release's start script exports before it sources env.sh. */
export function releaseVars(
  layout: ReleaseLayout,
  node: string,
  cookie: string,
  base: Record<string, string | undefined>,
): Record<string, string> {
  return {
    RELEASE_ROOT: layout.root,
    RELEASE_NAME: layout.name,
    RELEASE_VSN: layout.vsn,
    RELEASE_COMMAND: 'start',
    RELEASE_NODE: node,
    RELEASE_COOKIE: cookie,
    RELEASE_TMP: base['RELEASE_TMP'] ?? join(layout.root, 'tmp'),
    RELEASE_MODE: 'interactive',
    // The config provider reads it during boot; without reboot it is sys.config itself.
    RELEASE_SYS_CONFIG: join(layout.relDir, 'sys'),
  };
}

/** `env -0` output as a record. */
export function parseEnv0(out: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of out.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** Set by the shell that sourced env.sh, not by env.sh. */
const SHELL_OWN = new Set(['_', 'PWD', 'OLDPWD', 'SHLVL']);

/** Variables `after` has that `before` lacks or has with another value. */
export function envChanges(
  before: Record<string, string | undefined>,
  after: Record<string, string>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(after)) {
    if (before[k] !== v && !SHELL_OWN.has(k)) out[k] = v;
  }
  return out;
}
