/**
 * `file://` store: objects are files under a root directory. Every write goes to a
 * temporary file renamed into place, so readers see the old object or the new one.
 * Conditional writes take a lock file (O_EXCL create) around compare-and-rename; the
 * ETag is derived from the file's inode, size and mtime, so a conditional GET needs a
 * stat, not a read.
 */

import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type Stats } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Backend,
  checkKey,
  type GetResult,
  type ObjectInfo,
  type PutCondition,
  progressCounter,
} from './backend.js';
import { ObjectNotFoundError, PreconditionFailedError, StoreContentionError } from './errors.js';

const LOCK_STALE_MS = 10_000;
const TMP_MARK = '.baton-tmp-';

function etagOf(s: Stats): string {
  return `"${s.ino.toString(16)}-${s.size.toString(16)}-${s.mtimeMs.toString(16)}"`;
}

export class FileBackend implements Backend {
  readonly url: string;

  constructor(readonly root: string) {
    this.url = `file://${root}`;
  }

  private path(key: string): string {
    return join(this.root, checkKey(key));
  }

  async get(key: string, opts: { ifNoneMatch?: string } = {}): Promise<GetResult> {
    const p = this.path(key);
    // Stat, read, stat again: the rename that replaces a file between the two would
    // otherwise pair new bytes with an old ETag.
    for (;;) {
      let before: Stats;
      try {
        before = await stat(p);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'missing' };
        throw err;
      }
      const etag = etagOf(before);
      if (opts.ifNoneMatch === etag) return { status: 'unchanged' };
      let body: Buffer;
      try {
        body = await readFile(p);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      const after = await stat(p).catch(() => undefined);
      if (after !== undefined && etagOf(after) === etag) return { status: 'ok', body, etag };
    }
  }

  async put(key: string, body: Buffer, cond: PutCondition = {}): Promise<{ etag: string }> {
    const p = this.path(key);
    await mkdir(dirname(p), { recursive: true });
    if (cond.ifMatch === undefined && cond.ifNoneMatch === undefined) return { etag: await this.replace(p, body) };
    const release = await this.lock(p);
    try {
      const existing = await stat(p).catch(() => undefined);
      if (cond.ifNoneMatch === '*' && existing !== undefined) throw new PreconditionFailedError(key);
      if (cond.ifMatch !== undefined && (existing === undefined || etagOf(existing) !== cond.ifMatch))
        throw new PreconditionFailedError(key);
      return { etag: await this.replace(p, body) };
    } finally {
      await release();
    }
  }

  private async replace(p: string, body: Buffer): Promise<string> {
    const tmp = `${p}${TMP_MARK}${randomBytes(6).toString('hex')}`;
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, p);
    return etagOf(await stat(p));
  }

  /** An exclusive lock file next to the object; one left by a crashed writer goes stale. */
  private async lock(p: string): Promise<() => Promise<void>> {
    const lock = `${p}.lock`;
    for (let attempt = 0; attempt < 2000; attempt++) {
      try {
        const fh = await open(lock, 'wx');
        await fh.writeFile(`${process.pid} ${Date.now()}\n`);
        await fh.close();
        return () => unlink(lock).catch(() => undefined);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const s = await stat(lock).catch(() => undefined);
        if (s !== undefined && Date.now() - s.mtimeMs > LOCK_STALE_MS) await unlink(lock).catch(() => undefined);
        await sleep(5 + Math.random() * 10);
      }
    }
    throw new StoreContentionError(p, 2000);
  }

  async putFile(key: string, file: string, onProgress?: (sent: number, total: number) => void): Promise<void> {
    const p = this.path(key);
    await mkdir(dirname(p), { recursive: true });
    const total = (await stat(file)).size;
    const tmp = `${p}${TMP_MARK}${randomBytes(6).toString('hex')}`;
    const progress = progressCounter(total, onProgress);
    try {
      await pipeline(createReadStream(file), progress, createWriteStream(tmp, { flags: 'wx' }));
      await rename(tmp, p);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async open(key: string): Promise<{ stream: ReturnType<typeof createReadStream>; size: number }> {
    const p = this.path(key);
    const fh = await open(p, 'r').catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? new ObjectNotFoundError(this.url, key) : err;
    });
    const size = (await fh.stat()).size;
    return { stream: fh.createReadStream({ highWaterMark: 256 * 1024 }), size };
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const s = await stat(this.path(key)).catch(() => undefined);
    return s === undefined || !s.isFile() ? undefined : { key, size: s.size, lastModified: s.mtime };
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    const walk = async (dir: string): Promise<void> => {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        return;
      }
      for (const n of names) {
        const p = join(dir, n);
        const s = await stat(p).catch(() => undefined);
        if (s === undefined) continue;
        if (s.isDirectory()) await walk(p);
        else if (s.isFile() && !n.includes(TMP_MARK) && !n.endsWith('.lock')) {
          const key = relative(this.root, p).split(sep).join('/');
          if (key.startsWith(prefix)) out.push({ key, size: s.size, lastModified: s.mtime });
        }
      }
    };
    // Start at the deepest directory the prefix names.
    const dirPart = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    await walk(dirPart === '' ? this.root : join(this.root, checkKey(dirPart)));
    return out.sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async conditionsHonoured(): Promise<boolean> {
    return true;
  }
}
