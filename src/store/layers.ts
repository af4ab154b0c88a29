/**
 * The two-layer rules (fly_deploy's, exactly): a hot publish writes `hot_upgrade` and
 * keeps `blue_green_upgrade`; a blue-green publish writes `blue_green_upgrade` and
 * clears `hot_upgrade`; a machine booted from another image than the one recorded (a
 * cold deploy) resets both. Pure functions over `CurrentDoc` (docs/design.md, "The store").
 */
import { type CurrentDoc, emptyDoc, type Layer, type LogEntry } from './current.js';

/** Entries kept in `log`: enough that no writer's change scrolls out while it checks. */
export const LOG_LIMIT = 200;

export type CurrentOp =
  | { kind: 'hot'; id: string; layer: Layer }
  | { kind: 'blue-green'; id: string; layer: Layer }
  | { kind: 'cold-deploy'; id: string; image_ref: string };

export function isApplied(doc: CurrentDoc | undefined, id: string): boolean {
  return doc?.log.some((e) => e.id === id) ?? false;
}

/**
 * `doc` with `op` applied, or `undefined` when `op` changes nothing (already applied,
 * or a cold-deploy check that finds the same image).
 */
export function applyOp(
  doc: CurrentDoc | undefined,
  app: string,
  op: CurrentOp,
  now: Date = new Date(),
): CurrentDoc | undefined {
  const base = doc ?? emptyDoc(app);
  if (isApplied(base, op.id)) return undefined;
  let next: CurrentDoc;
  switch (op.kind) {
    case 'hot':
      next = { ...base, hot_upgrade: op.layer };
      break;
    case 'blue-green':
      next = { ...base, blue_green_upgrade: op.layer, hot_upgrade: null };
      break;
    case 'cold-deploy':
      if (base.image_ref === op.image_ref) return undefined;
      // The first image ever recorded adopts what was published before it.
      next =
        base.image_ref === null
          ? { ...base, image_ref: op.image_ref }
          : { ...base, image_ref: op.image_ref, blue_green_upgrade: null, hot_upgrade: null };
      break;
  }
  const entry: LogEntry = { id: op.id, kind: op.kind, at: now.toISOString() };
  return { ...next, generation: base.generation + 1, log: [...base.log, entry].slice(-LOG_LIMIT) };
}

/** What a machine booted from `imageRef` should run on top of its baked release. */
export function layersFor(
  doc: CurrentDoc | undefined,
  imageRef: string | undefined,
): { blueGreen: Layer | null; hot: Layer | null; coldDeploy: boolean } {
  if (doc === undefined) return { blueGreen: null, hot: null, coldDeploy: false };
  if (imageRef !== undefined && doc.image_ref !== null && doc.image_ref !== imageRef) {
    return { blueGreen: null, hot: null, coldDeploy: true };
  }
  return { blueGreen: doc.blue_green_upgrade, hot: doc.hot_upgrade, coldDeploy: false };
}

/** The upgrade published just before `id` (whose machines `--wait` waits for), if any. */
export function previousUpgrade(doc: CurrentDoc, id: string): string | undefined {
  const i = doc.log.findIndex((e) => e.id === id);
  for (let j = (i < 0 ? doc.log.length : i) - 1; j >= 0; j--) {
    const e = doc.log[j];
    if (e !== undefined && e.kind !== 'cold-deploy') return e.id;
  }
  return undefined;
}
