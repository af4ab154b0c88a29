/**
 * Streaming, bounded extraction of a gzip'd release tarball from bytes nobody vouched
 * for. One pass: the compressed bytes are hashed and counted as they arrive, inflated
 * by zlib, parsed by `tar`'s Parser, and each entry is checked (entry-rules.ts) before
 * anything is created. Everything lands in a fresh staging directory beside `dest`,
 * renamed into place only once the whole archive was read, its end marker seen and
 * its sha256 matched; any failure removes the staging directory, so a half-written or
 * unverified release is never visible and nothing is written elsewhere.
 *
 * File bodies are written with synchronous calls from the entry's data events: the
 * order of creations is then exactly the archive's order (the link rules rely on it),
 * and inflating still runs on the libuv pool meanwhile.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, type ZlibOptions } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import {
  defaultPathLimits,
  entryComponents,
  hardlinkDestination,
  type PathLimits,
  symlinkDestination,
} from './entry-rules.js';
import {
  ArchiveCorruptError,
  ArchiveLimitError,
  ChecksumMismatchError,
  SizeMismatchError,
  UnsafeEntryError,
} from './errors.js';

export interface ExtractLimits extends PathLimits {
  /** Bytes after decompression (file bodies and headers). */
  maxBytes: number;
  /** Entries of any type. */
  maxEntries: number;
  /** Decompressed / compressed bytes, checked once `ratioFloorBytes` have been inflated. */
  maxRatio: number;
  ratioFloorBytes: number;
}

export const defaultExtractLimits: ExtractLimits = {
  ...defaultPathLimits,
  maxBytes: 4 * 1024 ** 3,
  maxEntries: 200_000,
  // Releases compress 3-10x; 100x only happens on purpose.
  maxRatio: 100,
  ratioFloorBytes: 1024 * 1024,
};

export interface ExtractOptions {
  /** Lowercase hex; when given, a mismatch refuses the archive. */
  sha256?: string;
  /** The exact compressed size: refused as soon as more arrive, or when fewer did. */
  expectedSize?: number;
  limits?: Partial<ExtractLimits>;
  /** Named in error messages (a URL or a store key). */
  source?: string;
  /** Called with the compressed bytes read so far. */
  onProgress?: (compressedBytes: number) => void;
}

export interface ExtractResult {
  dir: string;
  sha256: string;
  compressedBytes: number;
  bytes: number;
  entries: number;
}

type Fail = (err: unknown) => void;

type Dir = Map<string, Dir>;

/**
 * The directories created so far, as a tree of names. Directories are never removed
 * or replaced during an extraction, so a path found here is a real directory whose
 * every ancestor is one too (none is a symlink), and it needs no mkdir or stat again.
 * A lookup costs one map probe per component: the cost of an entry grows with its
 * length, never with its depth squared.
 */
class CreatedDirs {
  private readonly root: Dir = new Map();

  /** How many leading components of `parts` name created directories. */
  depth(parts: readonly string[]): number {
    let node = this.root;
    for (let i = 0; i < parts.length; i++) {
      const next = node.get(parts[i]!);
      if (next === undefined) return i;
      node = next;
    }
    return parts.length;
  }

  /** Records the first `count` components of `parts`, each prefix a directory now on disk. */
  add(parts: readonly string[], count: number): void {
    let node = this.root;
    for (let i = 0; i < count; i++) {
      let next = node.get(parts[i]!);
      if (next === undefined) {
        next = new Map();
        node.set(parts[i]!, next);
      }
      node = next;
    }
  }
}

/** Where entries go, and what has been created so far (the link rules depend on it). */
class EntryWriter {
  private readonly symlinks = new Set<string>();
  private readonly files = new Set<string>();
  private readonly dirs = new CreatedDirs();
  private openFd: number | undefined;
  /**
   * Directories created as the parents of an entry rather than by an entry of their own.
   * They count against `maxEntries` with the entries: one 1024-byte path can imply ~500
   * directories, so without them 200,000 entries could make 100 million directories.
   */
  private implied = 0;
  /** Entries seen so far, this one included (told by `write`). */
  private entries = 0;

  constructor(
    private readonly root: string,
    private readonly limits: ExtractLimits,
  ) {}

  /** Counts `count` implied directories before they are made, refusing those past the limit. */
  private imply(count: number): void {
    if (count <= 0) return;
    if (this.entries + this.implied + count > this.limits.maxEntries) {
      throw new ArchiveLimitError(
        'entries',
        `more than ${this.limits.maxEntries} entries (counting the parent directories its paths imply)`,
      );
    }
    this.implied += count;
  }

  write(entry: ReadEntry, entriesSoFar: number, fail: Fail): void {
    this.entries = entriesSoFar;
    const raw = entry.path;
    // `tar czf x.tgz -C dir .` starts with `./`: the root itself, already there.
    if (entry.type === 'Directory' && raw.split('/').every((p) => p === '' || p === '.')) {
      entry.resume();
      return;
    }
    const parts = entryComponents(raw, this.limits);
    const key = parts.join('/');
    const created = this.dirs.depth(parts);
    this.refuseBelowSymlink(parts, created, raw);
    if (this.symlinks.has(key))
      throw new UnsafeEntryError('duplicate-entry', raw, 'replaces a symlink created earlier in the archive');
    const target = join(this.root, key);
    switch (entry.type) {
      case 'Directory':
        if (this.files.has(key)) throw new UnsafeEntryError('duplicate-entry', raw, 'directory replaces a file');
        if (created < parts.length) {
          this.imply(parts.length - created - 1);
          mkdirSync(target, { recursive: true, mode: 0o755 });
          this.dirs.add(parts, parts.length);
        }
        entry.resume();
        return;
      case 'File':
      case 'OldFile':
      case 'ContiguousFile':
        this.writeFile(entry, target, parts, key, created, fail);
        return;
      case 'SymbolicLink': {
        const linkpath = entry.linkpath ?? '';
        symlinkDestination(parts, linkpath, raw);
        this.makeRoom(target, parts, key, created);
        symlinkSync(linkpath, target);
        this.symlinks.add(key);
        entry.resume();
        return;
      }
      case 'Link': {
        const linkpath = entry.linkpath ?? '';
        const dest = hardlinkDestination(linkpath, raw, this.limits);
        const destKey = dest.join('/');
        if (!this.files.has(destKey)) {
          throw new UnsafeEntryError(
            'hardlink-outside',
            raw,
            `hardlink target '${linkpath}' is not a file extracted earlier from this archive`,
          );
        }
        this.makeRoom(target, parts, key, created);
        linkSync(join(this.root, ...dest), target);
        this.files.add(key);
        entry.resume();
        return;
      }
      case 'CharacterDevice':
      case 'BlockDevice':
      case 'FIFO':
        throw new UnsafeEntryError('special-file', raw, `${entry.type} entries are not allowed in a release`);
      default:
        throw new UnsafeEntryError('unsupported-type', raw, `unsupported entry type ${entry.type}`);
    }
  }

  /** Closes a file left open by a failure part-way through its body. */
  close(): void {
    if (this.openFd !== undefined) closeSync(this.openFd);
    this.openFd = undefined;
  }

  private writeFile(
    entry: ReadEntry,
    target: string,
    parts: readonly string[],
    key: string,
    created: number,
    fail: Fail,
  ): void {
    this.makeRoom(target, parts, key, created);
    // Keep execute bits (erts binaries, start scripts); drop setuid/setgid/sticky and group/other write.
    const mode = ((entry.mode ?? 0o644) & 0o755) | 0o600;
    const fd = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    this.openFd = fd;
    this.files.add(key);
    entry.on('data', (chunk: Buffer) => {
      if (this.openFd !== fd) return;
      try {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
      } catch (err) {
        fail(err);
      }
    });
    entry.on('end', () => {
      if (this.openFd === fd) this.close();
    });
  }

  /**
   * Readies `target` for a new entry: its directory exists, and an earlier file there
   * is removed (appended archives repeat paths); links and directories are never replaced.
   * `created`: how many leading components of `parts` are created directories.
   */
  private makeRoom(target: string, parts: readonly string[], key: string, created: number): void {
    if (this.files.has(key)) {
      unlinkSync(target);
      this.files.delete(key);
      return;
    }
    const parents = parts.length - 1;
    if (created < parents) {
      this.imply(parents - created);
      mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
      this.dirs.add(parts, parents);
    }
  }

  /**
   * Refuses an entry with a symlink among its parents. The first `created` components
   * are created directories, not links (a directory is never replaced); every link was
   * created in a created directory, so past them only the next component can be one:
   * anything deeper does not exist yet.
   */
  private refuseBelowSymlink(parts: readonly string[], created: number, raw: string): void {
    if (created >= parts.length - 1) return;
    const next = parts.slice(0, created + 1).join('/');
    if (this.symlinks.has(next)) {
      throw new UnsafeEntryError('through-symlink', raw, `'${next}' is a symlink; nothing is written through links`);
    }
  }
}

/**
 * Extracts `input` (gzip'd tar bytes) into `dest`, which must not exist yet. Resolves
 * once `dest` holds the complete, verified tree.
 */
export async function extractTarball(
  input: Readable | AsyncIterable<Buffer>,
  dest: string,
  options: ExtractOptions = {},
): Promise<ExtractResult> {
  const limits: ExtractLimits = { ...defaultExtractLimits, ...options.limits };
  const source = options.source ?? '';
  const staging = `${dest}.partial-${randomBytes(6).toString('hex')}`;
  mkdirSync(dirname(staging), { recursive: true });
  mkdirSync(staging, { mode: 0o755 });

  const hash = createHash('sha256');
  let compressed = 0;
  let inflated = 0;
  let entries = 0;
  let firstError: unknown;
  let sawEof = false;
  const fail: Fail = (err) => {
    firstError ??= err;
  };

  const writer = new EntryWriter(staging, limits);
  const parser = new Parser({ strict: true });
  parser.on('entry', (entry: ReadEntry) => {
    if (firstError !== undefined) {
      entry.resume();
      return;
    }
    entries++;
    try {
      if (entries > limits.maxEntries) {
        throw new ArchiveLimitError('entries', `more than ${limits.maxEntries} entries`);
      }
      writer.write(entry, entries, fail);
    } catch (err) {
      fail(asEntryError(err, entry.path));
      entry.resume();
    }
  });
  parser.on('ignoredEntry', (entry: ReadEntry) => {
    fail(new UnsafeEntryError('unsupported-type', entry.path, `unsupported entry type ${String(entry.type)}`));
  });
  parser.on('eof', () => {
    sawEof = true;
  });
  parser.on('error', (err: Error) => fail(new ArchiveCorruptError(`tar: ${err.message}`, source)));
  const parserIdle = (): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        parser.off('drain', done);
        parser.off('error', done);
        resolve();
      };
      parser.once('drain', done);
      parser.once('error', done);
    });
  const check = (): void => {
    if (firstError !== undefined) throw firstError;
  };

  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      compressed += chunk.length;
      hash.update(chunk);
      if (options.expectedSize !== undefined && compressed > options.expectedSize) {
        const err = new SizeMismatchError(options.expectedSize, compressed, source);
        fail(err);
        cb(err);
        return;
      }
      options.onProgress?.(compressed);
      cb(null, chunk);
    },
  });
  // zlib passes stream options through (not in its typings): a deeper buffer lets
  // inflating run ahead while the main thread creates files.
  const zlibOptions: ZlibOptions & { highWaterMark: number } = {
    chunkSize: 256 * 1024,
    highWaterMark: 4 * 1024 * 1024,
  };
  const gunzip = createGunzip(zlibOptions);

  try {
    try {
      await pipeline(input, tap, gunzip, async (inflatedChunks: AsyncIterable<Buffer>) => {
        for await (const chunk of inflatedChunks) {
          inflated += chunk.length;
          // Recorded before throwing: pipeline may report its own AbortError instead.
          if (inflated > limits.maxBytes) {
            fail(new ArchiveLimitError('bytes', `more than ${limits.maxBytes} bytes once decompressed`));
          } else if (inflated > limits.ratioFloorBytes && inflated / compressed > limits.maxRatio) {
            fail(
              new ArchiveLimitError(
                'ratio',
                `${inflated} bytes inflated from ${compressed} (more than ${limits.maxRatio}x: a decompression bomb?)`,
              ),
            );
          }
          check();
          if (!sawEof && !parser.write(chunk)) await parserIdle();
          check();
        }
        await new Promise<void>((resolve) => {
          parser.once('end', resolve);
          parser.once('error', () => resolve());
          parser.end();
        });
        check();
      });
    } catch (err) {
      throw firstError ?? classify(err, source);
    }
    check();
    if (options.expectedSize !== undefined && compressed !== options.expectedSize) {
      throw new SizeMismatchError(options.expectedSize, compressed, source);
    }
    if (!sawEof) throw new ArchiveCorruptError('truncated: the tar end-of-archive marker never came', source);
    const digest = hash.digest('hex');
    if (options.sha256 !== undefined && digest !== options.sha256.toLowerCase()) {
      throw new ChecksumMismatchError(options.sha256, digest, source);
    }
    renameSync(staging, dest);
    return { dir: dest, sha256: digest, compressedBytes: compressed, bytes: inflated, entries };
  } catch (err) {
    writer.close();
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
}

/** An entry colliding with an earlier one (a file where a directory is, and so on) is the archive's fault. */
function asEntryError(err: unknown, path: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'ELOOP') {
    return new UnsafeEntryError('duplicate-entry', path, `conflicts with an earlier entry (${code})`);
  }
  return err;
}

/** zlib's errors become "corrupt gzip"; errors from the source (a store, a socket) pass through. */
function classify(err: unknown, source: string): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('Z_')) {
    return new ArchiveCorruptError(`gzip: ${(err as Error).message}`, source);
  }
  return err;
}
