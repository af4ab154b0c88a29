/** The CLI's I/O and what every command shares: output streams, argument parsing, usage errors, the store it talks to. */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { BatonError } from '../common/index.js';
import { openStore, type Store, storeUrlFromEnv } from '../store/index.js';

/** Thrown for bad command lines: exit code 2. */
export class UsageError extends BatonError {
  readonly code = 'USAGE';
}

export type Out = { out: (s: string) => void; err: (s: string) => void; tty: boolean; env: NodeJS.ProcessEnv };

export function parse(args: string[], options: ParseArgsConfig['options']): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function openFrom(values: Record<string, unknown>, io: Out): Store {
  const url = typeof values.store === 'string' ? values.store : storeUrlFromEnv(io.env);
  return openStore(url, {
    env: io.env,
    warn: (m) => io.err(`baton: warning: ${m}\n`),
    retry: {
      attempts: 5,
      baseDelayMs: 200,
      maxDelayMs: 5000,
      onRetry: (n, ms, e) => io.err(`baton: store error (${(e as Error).message}); retry ${n} in ${ms} ms\n`),
    },
  });
}

export function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
