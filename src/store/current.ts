/**
 * `releases/<app>-current.json`: which layers a fleet runs. Schema, parsing of what
 * the store returned (never trusted), and serialisation. No I/O.
 */
import { CurrentDocumentError } from './errors.js';

export const SCHEMA_VERSION = 1;

export interface Layer {
  version: string;
  /** Store key of the tarball, e.g. `releases/app/1.2.0.tar.gz`. */
  tarball: string;
  sha256: string;
  size: number;
  source_image_ref: string | null;
  published_at: string;
  upgrade_id: string;
}

export type LogKind = 'hot' | 'blue-green' | 'cold-deploy';

/** One applied operation; kept so a writer can tell whether its change is in. */
export interface LogEntry {
  id: string;
  kind: LogKind;
  at: string;
}

export interface CurrentDoc {
  schema_version: typeof SCHEMA_VERSION;
  app: string;
  image_ref: string | null;
  blue_green_upgrade: Layer | null;
  hot_upgrade: Layer | null;
  /** Bumped by every write. */
  generation: number;
  log: LogEntry[];
}

export function currentKey(app: string): string {
  return `releases/${app}-current.json`;
}

export function emptyDoc(app: string): CurrentDoc {
  return {
    schema_version: SCHEMA_VERSION,
    app,
    image_ref: null,
    blue_green_upgrade: null,
    hot_upgrade: null,
    generation: 0,
    log: [],
  };
}

export function serializeDoc(doc: CurrentDoc): Buffer {
  return Buffer.from(`${JSON.stringify(doc, null, 2)}\n`);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseLayer(v: unknown, field: string, bad: (r: string) => never): Layer | null {
  if (v === null || v === undefined) return null;
  if (!isObj(v)) bad(`${field} is not an object`);
  const o = v as Record<string, unknown>;
  for (const k of ['version', 'tarball', 'sha256', 'published_at', 'upgrade_id'] as const) {
    if (typeof o[k] !== 'string' || o[k] === '') bad(`${field}.${k} is not a string`);
  }
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) bad(`${field}.size is not a size`);
  if (!/^[0-9a-f]{64}$/.test(o.sha256 as string)) bad(`${field}.sha256 is not a sha256`);
  if (o.source_image_ref !== null && o.source_image_ref !== undefined && typeof o.source_image_ref !== 'string') {
    bad(`${field}.source_image_ref is not a string`);
  }
  return {
    version: o.version as string,
    tarball: o.tarball as string,
    sha256: o.sha256 as string,
    size: o.size as number,
    source_image_ref: (o.source_image_ref as string | null | undefined) ?? null,
    published_at: o.published_at as string,
    upgrade_id: o.upgrade_id as string,
  };
}

/** Parses what the store holds under `key`; anything unexpected is a `CurrentDocumentError`. */
export function parseDoc(bytes: Buffer | string, key: string): CurrentDoc {
  const bad = (reason: string): never => {
    throw new CurrentDocumentError(key, reason);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString());
  } catch (err) {
    return bad(`not JSON (${(err as Error).message})`);
  }
  if (!isObj(raw)) return bad('not a JSON object');
  if (raw.schema_version !== SCHEMA_VERSION) {
    return bad(
      `unknown schema version ${JSON.stringify(raw.schema_version)} (this baton reads version ${SCHEMA_VERSION})`,
    );
  }
  if (typeof raw.app !== 'string') bad('app is not a string');
  if (raw.image_ref !== null && typeof raw.image_ref !== 'string') bad('image_ref is not a string');
  if (typeof raw.generation !== 'number' || !Number.isSafeInteger(raw.generation)) bad('generation is not an integer');
  if (!Array.isArray(raw.log)) bad('log is not a list');
  const log = (raw.log as unknown[]).map((e, i) => {
    if (
      !isObj(e) ||
      typeof e.id !== 'string' ||
      typeof e.at !== 'string' ||
      !['hot', 'blue-green', 'cold-deploy'].includes(e.kind as string)
    ) {
      return bad(`log[${i}] is malformed`);
    }
    return { id: e.id, kind: e.kind as LogKind, at: e.at };
  });
  return {
    schema_version: SCHEMA_VERSION,
    app: raw.app as string,
    image_ref: (raw.image_ref as string | null) ?? null,
    blue_green_upgrade: parseLayer(raw.blue_green_upgrade, 'blue_green_upgrade', bad),
    hot_upgrade: parseLayer(raw.hot_upgrade, 'hot_upgrade', bad),
    generation: raw.generation as number,
    log,
  };
}
