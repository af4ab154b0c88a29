/**
 * Hand-made tarballs for the refusal tests: tar's own writer normalises away exactly
 * the entries we need to produce (`../`, absolute paths, devices), so headers are
 * encoded one by one here.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Header, type HeaderData } from 'tar';

export interface CraftEntry {
  path: string;
  type?: HeaderData['type'];
  body?: Buffer | string;
  linkpath?: string;
  mode?: number;
}

export function tarBytes(entries: CraftEntry[], { endMarker = true } = {}): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = e.body === undefined ? Buffer.alloc(0) : Buffer.from(e.body);
    const type = e.type ?? 'File';
    const h = new Header({
      path: e.path,
      type,
      size: type === 'File' ? body.length : 0,
      mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      linkpath: e.linkpath,
      mtime: new Date(0),
      uid: 0,
      gid: 0,
    });
    const block = Buffer.alloc(512);
    h.encode(block, 0);
    blocks.push(block);
    if (type === 'File' && body.length > 0) {
      const padded = Buffer.alloc(Math.ceil(body.length / 512) * 512);
      body.copy(padded);
      blocks.push(padded);
    }
  }
  if (endMarker) blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export function tgz(entries: CraftEntry[], opts?: { endMarker?: boolean }): Buffer {
  return gzipSync(tarBytes(entries, opts));
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}
