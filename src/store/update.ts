/**
 * Changing `current.json` without losing a concurrent change.
 *
 * Where the backend honours conditional writes (a directory; AWS S3, Tigris, MinIO),
 * this is a compare-and-swap loop: read with its ETag, apply the operation, write with
 * `If-Match` (or `If-None-Match: *` when there was no document), and on 412 read again.
 *
 * Where the server ignores conditions (s3rver, some gateways), detected once per
 * backend, a plain write could silently overwrite a concurrent one. Then:
 *   1. the writer first records its operation as an intent object,
 *      `releases/<app>-intents/<time>-<id>.json` (a unique key: nothing can overwrite it);
 *   2. it reads `current.json`, lists the intents, applies every recent intent not yet
 *      in the document's `log` (in key order), and writes;
 *   3. it reads again and lists again; it is done only when its own operation and every
 *      intent it can see are in the log, otherwise it goes back to 2.
 * A writer that overwrote someone's entry did so after that intent was recorded, and
 * its own step 3 lists after its write, so it sees the intent and puts the entry back:
 * nothing is lost as long as writers run to completion, on a store with read-after-write
 * consistency (S3's guarantee since 2020). Intents older than `INTENT_TTL_MS` are
 * ignored and deleted, so an abandoned publish does not come back days later.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend } from './backend.js';
import { type CurrentDoc, currentKey, parseDoc, serializeDoc } from './current.js';
import { CurrentDocumentError, PreconditionFailedError, StoreContentionError } from './errors.js';
import { applyOp, type CurrentOp, isApplied, LOG_LIMIT } from './layers.js';

export const INTENT_TTL_MS = 10 * 60_000;
const PAD_TO = 32 * 1024;

/**
 * Servers that ignore conditions can also interleave two writes of one object: s3rver
 * truncates and writes in place, so a shorter document written over a longer one
 * keeps the longer one's tail. Documents of the same length cannot mix that way, so
 * in this mode current.json is padded with trailing whitespace (valid JSON) to a
 * multiple of 32 KiB.
 */
function padded(body: Buffer): Buffer {
  const size = Math.ceil(body.length / PAD_TO) * PAD_TO;
  return Buffer.concat([body, Buffer.alloc(size - body.length, 0x20)]);
}
const MAX_ROUNDS = 50;

export interface ReadDoc {
  doc: CurrentDoc | undefined;
  etag: string | undefined;
}

/**
 * Reads and parses current.json. A document that does not parse is read twice more
 * before it is refused: some S3 emulators (s3rver) serve a write in progress, torn;
 * garbage that stays garbage is a `CurrentDocumentError`.
 */
export async function readCurrent(backend: Backend, app: string): Promise<ReadDoc> {
  const key = currentKey(app);
  for (let attempt = 1; ; attempt++) {
    const r = await backend.get(key);
    if (r.status === 'missing') return { doc: undefined, etag: undefined };
    if (r.status === 'unchanged') throw new Error('unreachable: unconditional GET answered 304');
    try {
      return { doc: parseDoc(r.body, key), etag: r.etag };
    } catch (err) {
      if (!(err instanceof CurrentDocumentError) || attempt >= 3) throw err;
      await sleep(50 * attempt);
    }
  }
}

export interface UpdateOptions {
  /** Told once per backend when its server ignores conditional writes. */
  warn?: (message: string) => void;
  now?: () => Date;
}

const warned = new WeakSet<Backend>();

/** Applies `op` to `current.json`; resolves with the document that contains it. */
export async function updateCurrent(
  backend: Backend,
  app: string,
  op: CurrentOp,
  opts: UpdateOptions = {},
): Promise<CurrentDoc> {
  if (await backend.conditionsHonoured()) return compareAndSwap(backend, app, op, opts);
  if (!warned.has(backend)) {
    warned.add(backend);
    (opts.warn ?? ((m: string) => process.stderr.write(`baton: warning: ${m}\n`)))(
      `store ${backend.url} ignores conditional writes (If-Match/If-None-Match); ` +
        'current.json updates fall back to intent records checked after each write',
    );
  }
  return withIntents(backend, app, op, opts);
}

async function compareAndSwap(backend: Backend, app: string, op: CurrentOp, opts: UpdateOptions): Promise<CurrentDoc> {
  const key = currentKey(app);
  for (let round = 1; round <= MAX_ROUNDS; round++) {
    const { doc, etag } = await readCurrent(backend, app);
    const next = applyOp(doc, app, op, opts.now?.());
    // Already in (a retried write that had landed), or nothing to change.
    if (next === undefined) return doc ?? (await readCurrent(backend, app)).doc!;
    try {
      await backend.put(key, serializeDoc(next), etag === undefined ? { ifNoneMatch: '*' } : { ifMatch: etag });
      return next;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      await sleep(Math.random() * 20 * Math.min(round, 10));
    }
  }
  throw new StoreContentionError(key, MAX_ROUNDS);
}

function intentPrefix(app: string): string {
  return `releases/${app}-intents/`;
}

interface Intent {
  key: string;
  at: number;
  op: CurrentOp;
}

async function listIntents(backend: Backend, app: string, now: number): Promise<Intent[]> {
  const out: Intent[] = [];
  for (const o of await backend.list(intentPrefix(app))) {
    const at = Number(o.key.slice(intentPrefix(app).length).split('-')[0]);
    if (!Number.isFinite(at) || now - at > INTENT_TTL_MS) {
      await backend.delete(o.key).catch(() => undefined);
      continue;
    }
    const r = await backend.get(o.key);
    if (r.status !== 'ok') continue;
    try {
      out.push({ key: o.key, at, op: JSON.parse(r.body.toString()) as CurrentOp });
    } catch {}
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : 1));
}

async function withIntents(backend: Backend, app: string, op: CurrentOp, opts: UpdateOptions): Promise<CurrentDoc> {
  const key = currentKey(app);
  const now = (): Date => opts.now?.() ?? new Date();
  // A document nobody can read stops here, before the intent is recorded.
  await readCurrent(backend, app);
  const stamp = now().getTime().toString().padStart(15, '0');
  await backend.put(
    `${intentPrefix(app)}${stamp}-${randomBytes(4).toString('hex')}.json`,
    Buffer.from(JSON.stringify(op)),
  );
  for (let round = 1; round <= MAX_ROUNDS; round++) {
    const { doc } = await readCurrent(backend, app);
    const intents = await listIntents(backend, app, now().getTime());
    let next = doc;
    let changed = false;
    for (const intent of intents) {
      if (isApplied(next, intent.op.id)) continue;
      // With a full log, an intent older than its oldest entry was applied and has scrolled out.
      const oldest = next?.log[0];
      if (
        next !== undefined &&
        next.log.length >= LOG_LIMIT &&
        oldest !== undefined &&
        intent.at < Date.parse(oldest.at)
      )
        continue;
      const applied = applyOp(next, app, intent.op, now());
      if (applied !== undefined) {
        next = applied;
        changed = true;
      } else if (next !== undefined && !isApplied(next, intent.op.id)) {
        // A no-op (cold-deploy check with the same image) still counts as done.
        next = { ...next, log: [...next.log, { id: intent.op.id, kind: intent.op.kind, at: now().toISOString() }] };
        changed = true;
      }
    }
    if (!changed && next !== undefined && isApplied(next, op.id)) return next;
    if (next !== undefined) await backend.put(key, padded(serializeDoc(next)));
    await sleep(Math.random() * 20 * Math.min(round, 10));
  }
  throw new StoreContentionError(key, MAX_ROUNDS);
}
