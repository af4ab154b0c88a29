/**
 * Which tarballs to delete: all but the newest `keep` per app, never one current.json
 * references, nor one uploaded within `PRUNE_GRACE_MS`. Pure.
 */
import type { ObjectInfo } from './backend.js';

export const DEFAULT_KEEP = 5;

/**
 * A publish uploads its tarball before current.json references it: a concurrent publish
 * pruning in between would see an unreferenced tarball, and with enough publishes at once
 * not among the newest either. Recent uploads are left for a later prune.
 */
export const PRUNE_GRACE_MS = 10 * 60_000;

export function chooseForDeletion(
  tarballs: readonly ObjectInfo[],
  referenced: ReadonlySet<string>,
  keep: number = DEFAULT_KEEP,
  now: Date = new Date(),
): ObjectInfo[] {
  const newestFirst = [...tarballs].sort(
    (a, b) => b.lastModified.getTime() - a.lastModified.getTime() || (a.key < b.key ? 1 : -1),
  );
  return newestFirst
    .slice(Math.max(0, keep))
    .filter((t) => !referenced.has(t.key) && now.getTime() - t.lastModified.getTime() > PRUNE_GRACE_MS);
}
