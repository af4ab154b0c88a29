/**
 * Which tar entry paths and link targets are safe to create under an extraction root.
 * Pure: the extractor asks these before touching the file system.
 *
 * Symlinks are the subtle part. A target is checked lexically, and lexical resolution
 * only matches what the kernel does when no component on the way is itself a link. So:
 * entries are never created below a symlink (the extractor checks), and a target may
 * climb with `..` only at its start, where it climbs out of the link's own directory,
 * a real directory. Then every link resolves inside the root whatever other links
 * exist or appear later.
 */
import { UnsafeEntryError, type UnsafeEntryKind } from './errors.js';

export interface PathLimits {
  /** Bytes in a whole entry path. */
  maxPathBytes: number;
  /** Bytes in one path component (most file systems stop at 255). */
  maxComponentBytes: number;
}

export const defaultPathLimits: PathLimits = { maxPathBytes: 1024, maxComponentBytes: 255 };

/**
 * The components of an archive path, relative to the extraction root, or an
 * `UnsafeEntryError`. `./` prefixes and trailing slashes are tolerated (tar writes them).
 */
export function entryComponents(raw: string, limits: PathLimits = defaultPathLimits, kind?: UnsafeEntryKind): string[] {
  const refuse = (k: UnsafeEntryKind, detail: string): never => {
    throw new UnsafeEntryError(kind ?? k, raw, detail);
  };
  if (raw.includes('\0')) refuse('unsupported-type', 'path contains a NUL byte');
  if (Buffer.byteLength(raw) > limits.maxPathBytes) {
    refuse('path-too-long', `path is ${Buffer.byteLength(raw)} bytes, the limit is ${limits.maxPathBytes}`);
  }
  if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw) || raw.startsWith('\\')) {
    refuse('absolute-path', 'absolute path');
  }
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') refuse('parent-path', "path contains '..'");
    if (Buffer.byteLength(part) > limits.maxComponentBytes) {
      refuse('path-too-long', `component '${part.slice(0, 40)}…' is longer than ${limits.maxComponentBytes} bytes`);
    }
    parts.push(part);
  }
  if (parts.length === 0) refuse('unsupported-type', 'empty path');
  return parts;
}

/**
 * Where a symlink at `linkComponents` pointing at `target` lands, as components under
 * the root; throws `symlink-outside` when it could land anywhere else.
 */
export function symlinkDestination(linkComponents: readonly string[], target: string, entry: string): string[] {
  const refuse = (detail: string): never => {
    throw new UnsafeEntryError('symlink-outside', entry, `symlink target '${target}' ${detail}`);
  };
  if (target === '' || target.includes('\0')) refuse('is empty or contains NUL');
  if (target.startsWith('/')) refuse('is absolute');
  const at = linkComponents.slice(0, -1);
  let climbing = true;
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (!climbing) refuse("has '..' after a name (it could step out through another link)");
      if (at.length === 0) refuse('points outside the extraction directory');
      at.pop();
      continue;
    }
    climbing = false;
    at.push(part);
  }
  return at;
}

/** Hardlink targets are archive paths: the same rules as entries, refused as `hardlink-outside`. */
export function hardlinkDestination(linkpath: string, entry: string, limits: PathLimits = defaultPathLimits): string[] {
  try {
    return entryComponents(linkpath, limits);
  } catch (err) {
    if (err instanceof UnsafeEntryError) {
      throw new UnsafeEntryError('hardlink-outside', entry, `hardlink target '${linkpath}': ${err.detail}`);
    }
    throw err;
  }
}
