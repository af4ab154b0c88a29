/**
 * What a release directory (or an extracted tarball) contains: full or beam-only,
 * its version and ERTS, its applications with their `.app` metadata and modules,
 * sys.config and vm.args. Also the layout checks a tarball of each kind must pass.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { charlistToString, type Term, Tuple } from '../etf/index.js';
import { type BeamInfo, readBeam } from './beam.js';
import { atomName, consult, propGet } from './consult.js';
import { ReleaseLayoutError } from './errors.js';

export type ReleaseKind = 'full' | 'beam-only';

export interface AppInfo {
  name: string;
  vsn: string;
  /** Directory relative to the release root, e.g. `lib/app-1.0.0`. */
  dir: string;
  /** The `.app` file's property list (undefined when the tarball ships no `.app`). */
  props: Term | undefined;
  /** Modules as listed in `.app`. */
  modules: string[];
  /** Beams found in `ebin/`, by module. */
  beams: Map<string, BeamInfo>;
}

export interface ReleaseInfo {
  kind: ReleaseKind;
  root: string;
  /** From `releases/start_erl.data` (full releases). */
  version: string | undefined;
  ertsVersion: string | undefined;
  apps: AppInfo[];
  sysConfig: Term[] | undefined;
  vmArgs: string | undefined;
  /** Consolidated protocol modules (Elixir), by module. */
  consolidated: Map<string, BeamInfo>;
}

/** A full release has a `releases/` directory with a `sys.config` in it (fly_deploy's rule). */
export function detectKind(root: string): ReleaseKind {
  return findSysConfig(root) !== undefined ? 'full' : 'beam-only';
}

function findSysConfig(root: string): string | undefined {
  const releases = join(root, 'releases');
  if (!isDir(releases)) return undefined;
  const startErl = readStartErl(root);
  if (startErl !== undefined) {
    const p = join(releases, startErl.version, 'sys.config');
    if (existsSync(p)) return p;
  }
  for (const d of readdirSync(releases)) {
    const p = join(releases, d, 'sys.config');
    if (existsSync(p)) return p;
  }
  return undefined;
}

function readStartErl(root: string): { erts: string; version: string } | undefined {
  const p = join(root, 'releases', 'start_erl.data');
  if (!existsSync(p)) return undefined;
  const [erts, version] = readFileSync(p, 'utf8').trim().split(/\s+/);
  if (erts === undefined || version === undefined)
    throw new ReleaseLayoutError(`releases/start_erl.data should read "<erts vsn> <release vsn>"`, root);
  return { erts, version };
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function inspectRelease(root: string): ReleaseInfo {
  const kind = detectKind(root);
  const startErl = readStartErl(root);
  const sysConfigPath = findSysConfig(root);
  const relDir = sysConfigPath === undefined ? undefined : join(sysConfigPath, '..');
  const vmArgsPath = relDir === undefined ? undefined : join(relDir, 'vm.args');
  const apps: AppInfo[] = [];
  const lib = join(root, 'lib');
  if (isDir(lib)) {
    for (const d of readdirSync(lib).sort()) {
      const ebin = join(lib, d, 'ebin');
      if (!isDir(ebin)) continue;
      apps.push(readApp(root, join(lib, d)));
    }
  }
  const consolidated = new Map<string, BeamInfo>();
  for (const dir of consolidatedDirs(root, relDir)) {
    for (const [m, b] of readBeams(root, dir, false)) consolidated.set(m, b);
  }
  let ertsVersion = startErl?.erts;
  if (ertsVersion === undefined) {
    const erts = readdirSync(root).find((d) => d.startsWith('erts-'));
    ertsVersion = erts?.slice(5);
  }
  return {
    kind,
    root,
    version: startErl?.version ?? (relDir === undefined ? undefined : relative(join(root, 'releases'), relDir)),
    ertsVersion,
    apps,
    sysConfig: sysConfigPath === undefined ? undefined : consult(readFileSync(sysConfigPath, 'utf8'), sysConfigPath),
    vmArgs: vmArgsPath !== undefined && existsSync(vmArgsPath) ? readFileSync(vmArgsPath, 'utf8') : undefined,
    consolidated,
  };
}

/** Mix releases keep consolidated protocols under the release version; beam-only tarballs at the top. */
function consolidatedDirs(root: string, relDir: string | undefined): string[] {
  const dirs = [join(root, 'consolidated')];
  if (relDir !== undefined) dirs.push(join(relDir, 'consolidated'));
  return dirs.filter(isDir);
}

function readApp(root: string, appDir: string): AppInfo {
  const base = appDir.split('/').pop() ?? '';
  const dash = base.lastIndexOf('-');
  let name = dash > 0 ? base.slice(0, dash) : base;
  let vsn = dash > 0 ? base.slice(dash + 1) : '';
  const ebin = join(appDir, 'ebin');
  const appFile = join(ebin, `${name}.app`);
  let props: Term | undefined;
  let modules: string[] = [];
  if (existsSync(appFile)) {
    const [spec] = consult(readFileSync(appFile, 'utf8'), appFile);
    if (!(spec instanceof Tuple) || spec.length !== 3 || atomName(spec.at(0)) !== 'application') {
      throw new ReleaseLayoutError(`${relative(root, appFile)} is not {application, Name, Props}`, root);
    }
    name = atomName(spec.at(1)) ?? name;
    props = spec.at(2);
    vsn = charlistToString(propGet(props, 'vsn') ?? []) ?? vsn;
    const mods = propGet(props, 'modules');
    modules = Array.isArray(mods) ? mods.map((m) => atomName(m) ?? '').filter((m) => m !== '') : [];
  }
  return { name, vsn, dir: relative(root, appDir), props, modules, beams: readBeams(root, ebin, true) };
}

/**
 * Every `.beam` of a directory, checked: each parses and names the module its file is
 * named for. `ebin` directories may also hold `.app`/`.appup`; nothing else.
 */
function readBeams(root: string, dir: string, isEbin: boolean): Map<string, BeamInfo> {
  const beams = new Map<string, BeamInfo>();
  for (const f of readdirSync(dir).sort()) {
    const p = join(dir, f);
    const rel = relative(root, p);
    if (f.endsWith('.beam')) {
      const info = readBeam(readFileSync(p));
      if (info === undefined) throw new ReleaseLayoutError(`${rel} is not a BEAM file`, root);
      const expected = f.slice(0, -'.beam'.length);
      if (info.module !== expected) {
        throw new ReleaseLayoutError(`${rel} contains module '${info.module}', not '${expected}'`, root);
      }
      beams.set(info.module, info);
    } else if (isEbin && (f.endsWith('.app') || f.endsWith('.appup'))) {
    } else {
      throw new ReleaseLayoutError(`${rel} is not a .beam file (only code belongs in ${relative(root, dir)})`, root);
    }
  }
  return beams;
}

/**
 * Checks that an extracted tree is a release of the kind a publish or a layer needs:
 * a blue-green layer must be a full release (with sys.config), a hot layer beam-only
 * or full (its beams are what gets loaded). Returns the inspection.
 */
export function checkRelease(root: string, expect: ReleaseKind | 'any'): ReleaseInfo {
  const info = inspectRelease(root);
  if (expect === 'full' && info.kind !== 'full') {
    throw new ReleaseLayoutError(
      'a blue-green release needs releases/<vsn>/sys.config and this tarball has none',
      root,
    );
  }
  if (info.kind === 'full' && info.version === undefined) {
    throw new ReleaseLayoutError('releases/start_erl.data is missing, so the release version is unknown', root);
  }
  if (info.kind === 'beam-only' && info.apps.length === 0 && info.consolidated.size === 0) {
    throw new ReleaseLayoutError('no lib/<app>-<vsn>/ebin and no consolidated/ directory: nothing to load', root);
  }
  return info;
}
