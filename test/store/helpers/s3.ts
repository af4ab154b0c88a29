/** s3rver on a random loopback port, its files in a temp dir; stoppable mid-test. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';
import { openStore, type RetryPolicy, type Store, type StoreOptions } from '../../../src/store/index.js';

export interface S3Fixture {
  endpoint: string;
  port: number;
  bucket: string;
  open(prefix: string, opts?: StoreOptions): Store;
  stop(): Promise<void>;
  /** Starts again on the same port and files. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export const fastRetry: RetryPolicy = { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 };

export async function startS3(bucket = 'baton'): Promise<S3Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-s3rver-'));
  let server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  const addr = (await server.run()) as { port: number };
  const endpoint = `http://127.0.0.1:${addr.port}`;
  let running = true;
  const fixture: S3Fixture = {
    endpoint,
    port: addr.port,
    bucket,
    open(prefix, opts = {}) {
      return openStore(`s3://${bucket}/${prefix}`, {
        retry: fastRetry,
        warn: () => undefined,
        ...opts,
        s3: {
          endpoint,
          region: 'us-east-1',
          forcePathStyle: true,
          credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
          requestTimeoutMs: 5_000,
          ...opts.s3,
        },
      });
    },
    stop: async () => {
      if (running) {
        running = false;
        // Keep-alive sockets from the SDK would hold close() open.
        const closed = server.close();
        server.httpServer?.closeAllConnections();
        await closed;
      }
    },
    restart: async () => {
      server = new S3rver({
        address: '127.0.0.1',
        port: addr.port,
        silent: true,
        directory: dir,
        configureBuckets: [{ name: bucket, configs: [] }],
      });
      await server.run();
      running = true;
    },
    close: async () => {
      await fixture.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fixture;
}
