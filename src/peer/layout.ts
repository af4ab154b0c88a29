/**
 * Reads what a release directory holds to start it: directory listings and two small
 * files, nothing more (this runs on every peer start, so no beam is parsed here).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ReleaseLayout } from './args.js';
import { PeerLayoutError } from './errors.js';

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function readLayout(root: string): ReleaseLayout {
  const releases = join(root, 'releases');
  if (!isDir(releases)) throw new PeerLayoutError(root, 'it has no releases/ directory');
  let vsn: string | undefined;
  const startErl = join(releases, 'start_erl.data');
  if (existsSync(startErl)) vsn = readFileSync(startErl, 'utf8').trim().split(/\s+/)[1];
  vsn ??= readdirSync(releases).find((d) => isDir(join(releases, d)));
  if (vsn === undefined)
    throw new PeerLayoutError(root, 'releases/start_erl.data names no version and releases/ has no version directory');
  const relDir = join(releases, vsn);
  if (!existsSync(join(relDir, 'start_clean.boot'))) {
    throw new PeerLayoutError(root, `releases/${vsn}/start_clean.boot is missing (relx and mix releases ship it)`);
  }
  const rel = readdirSync(relDir).find((f) => f.endsWith('.rel'));
  const name = rel?.slice(0, -'.rel'.length) ?? readdirSync(join(root, 'bin')).find((f) => !f.includes('.')) ?? 'app';
  const erts = readdirSync(root).find((d) => d.startsWith('erts-') && isDir(join(root, d, 'bin')));
  const lib = join(root, 'lib');
  const libDirs = isDir(lib) ? readdirSync(lib).sort() : [];
  const libEbins = libDirs.map((d) => join(lib, d, 'ebin')).filter(isDir);
  const consolidated = join(relDir, 'consolidated');
  const sysConfig = join(relDir, 'sys.config');
  let vmArgs: ReleaseLayout['vmArgs'];
  for (const [f, template] of [
    ['vm.args', false],
    ['vm.args.src', true],
  ] as const) {
    const p = join(relDir, f);
    if (existsSync(p)) {
      vmArgs = { path: p, text: readFileSync(p, 'utf8'), template };
      break;
    }
  }
  const envSh = join(relDir, 'env.sh');
  const cookieFile = join(releases, 'COOKIE');
  const hasSys = existsSync(sysConfig);
  return {
    root,
    name,
    vsn,
    relDir,
    ertsBin: erts === undefined ? undefined : join(root, erts, 'bin'),
    libEbins,
    consolidated: isDir(consolidated) ? consolidated : undefined,
    sysConfig: hasSys ? sysConfig : undefined,
    vmArgs,
    envSh: existsSync(envSh) ? envSh : undefined,
    cookie: existsSync(cookieFile) ? readFileSync(cookieFile, 'utf8').trim() : undefined,
    elixir: libDirs.some((d) => d.startsWith('elixir-')),
    configProvider: hasSys && readFileSync(sysConfig, 'utf8').includes('config_provider_init'),
  };
}
