/**
 * `--mode auto`: hot only when nothing but module code changed. Pure: compares two
 * inspections and says why a hot upgrade would not be safe.
 */
import { atom, type Term, Tuple, termEquals } from '../etf/index.js';
import type { AppInfo, ReleaseInfo } from './inspect.js';

export type UpgradeMode = 'hot' | 'blue-green';

export interface ModeDecision {
  mode: UpgradeMode;
  /** Empty when hot; one line per reason otherwise. */
  reasons: string[];
  /** Modules whose code differs or that are new, by app (what a hot tarball must carry). */
  changedModules: Map<string, string[]>;
}

/** `.app` properties minus the modules list, which is expected to change with the code. */
function appPropsWithoutModules(props: Term | undefined): Term[] {
  if (!Array.isArray(props)) return [];
  return props.filter((p) => !(p instanceof Tuple && p.at(0) === atom('modules')));
}

export function changedModules(baseline: ReleaseInfo, candidate: ReleaseInfo): Map<string, string[]> {
  const before = new Map(baseline.apps.map((a) => [a.name, a]));
  const out = new Map<string, string[]>();
  for (const app of candidate.apps) {
    const old = before.get(app.name);
    const mods = [...app.beams].filter(([m, b]) => old?.beams.get(m)?.codeDigest !== b.codeDigest).map(([m]) => m);
    if (mods.length > 0) out.set(app.name, mods);
  }
  return out;
}

export function decideMode(baseline: ReleaseInfo, candidate: ReleaseInfo): ModeDecision {
  const reasons: string[] = [];
  const changed = changedModules(baseline, candidate);
  // A beam-only tarball carries nothing but code: hot is all it can be.
  if (candidate.kind !== 'full') return { mode: 'hot', reasons: [], changedModules: changed };
  if (baseline.kind !== 'full')
    reasons.push('the release to compare with is beam-only, so its config and ERTS are unknown');
  if (baseline.ertsVersion !== candidate.ertsVersion) {
    reasons.push(`ERTS changed: ${baseline.ertsVersion ?? 'none'} -> ${candidate.ertsVersion ?? 'none'}`);
  }
  const before = new Map<string, AppInfo>(baseline.apps.map((a) => [a.name, a]));
  const after = new Map<string, AppInfo>(candidate.apps.map((a) => [a.name, a]));
  for (const [name, app] of after) {
    const old = before.get(name);
    if (old === undefined) {
      reasons.push(`application added: ${name} ${app.vsn}`);
      continue;
    }
    if (old.vsn !== app.vsn) {
      reasons.push(`application upgraded: ${name} ${old.vsn} -> ${app.vsn}`);
    } else if (!termEquals(appPropsWithoutModules(old.props), appPropsWithoutModules(app.props))) {
      reasons.push(`application ${name}: ${name}.app changed (beyond its modules list)`);
    }
    for (const [mod, beam] of app.beams) {
      const prev = old.beams.get(mod);
      if (beam.behaviours.includes('supervisor') && prev?.codeDigest !== beam.codeDigest) {
        reasons.push(`supervisor ${prev === undefined ? 'added' : 'changed'}: ${mod}`);
      }
    }
  }
  for (const name of before.keys()) {
    if (!after.has(name)) reasons.push(`application removed: ${name}`);
  }
  if (!termEquals(baseline.sysConfig ?? [], candidate.sysConfig ?? [])) reasons.push('sys.config changed');
  if (normalizeArgs(baseline.vmArgs) !== normalizeArgs(candidate.vmArgs)) reasons.push('vm.args changed');
  return { mode: reasons.length === 0 ? 'hot' : 'blue-green', reasons, changedModules: changed };
}

/** vm.args compared line by line, comments and blank lines aside. */
function normalizeArgs(text: string | undefined): string {
  return (text ?? '')
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter((l) => l !== '')
    .join('\n');
}
