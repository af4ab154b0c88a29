/** Which tarballs to delete: all but the newest `keep` per app, never one current.json references. Pure. */
import type { ObjectInfo } from './backend.js';

export const DEFAULT_KEEP = 5;

export function chooseForDeletion(
  tarballs: readonly ObjectInfo[],
  referenced: ReadonlySet<string>,
  keep: number = DEFAULT_KEEP,
): ObjectInfo[] {
  const newestFirst = [...tarballs].sort(
    (a, b) => b.lastModified.getTime() - a.lastModified.getTime() || (a.key < b.key ? 1 : -1),
  );
  return newestFirst.slice(Math.max(0, keep)).filter((t) => !referenced.has(t.key));
}
