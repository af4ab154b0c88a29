/**
 * A small S3-compatible server that honours conditional writes, for the compare-and-swap
 * path s3rver cannot exercise (it ignores `If-Match` and `If-None-Match` on PUT).
 *
 * It answers exactly the calls the S3 backend makes, path-style, as S3 documents them:
 *   GetObject   200 with ETag / Last-Modified; `If-None-Match` equal to the ETag (or `*`)
 *               is 304 without a body; a missing key is 404 NoSuchKey.
 *   HeadObject  the same headers, no body; 404 without a body.
 *   PutObject   ETag = quoted MD5 of the body; `If-None-Match: *` on an existing key and
 *               `If-Match` with another ETag are 412 PreconditionFailed (naming the
 *               condition); `If-Match` on a missing key is 404 NoSuchKey.
 *   DeleteObject 204, whether the key existed or not.
 *   ListObjectsV2 keys in byte order, `prefix`, `max-keys`, continuation tokens.
 * Signatures are not checked. Objects live in memory: documents and small tarballs.
 * Each request is handled whole once its body has arrived, so a write is atomic.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { openStore, type Store, type StoreOptions } from '../../../src/store/index.js';
import { fastRetry } from './s3.js';

interface StoredObject {
  body: Buffer;
  etag: string;
  lastModified: Date;
  contentType: string;
}

/** What the server was asked and what it answered, in arrival order. */
export interface SeenRequest {
  op: 'GetObject' | 'HeadObject' | 'PutObject' | 'DeleteObject' | 'ListObjectsV2' | 'other';
  key: string;
  ifMatch: string | undefined;
  ifNoneMatch: string | undefined;
  status: number;
}

export interface ConditionalS3 {
  endpoint: string;
  bucket: string;
  readonly requests: SeenRequest[];
  /** A store on `s3://<bucket>/<prefix>` of this server. */
  open(prefix: string, opts?: StoreOptions): Store;
  /**
   * Holds the requests `match` selects until `count` of them are waiting, then serves
   * them in arrival order. Resolves once they have been served.
   */
  hold(count: number, match: (op: SeenRequest['op'], key: string) => boolean): Promise<void>;
  close(): Promise<void>;
}

export interface ConditionalS3Options {
  bucket?: string;
  /** Page size of ListObjectsV2 when the client asks for more (S3's is 1000). */
  maxKeys?: number;
}

const xmlEscape = (s: string): string =>
  s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);

const XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n';

/** Path-style: `/<bucket>/<key>`, or `/<bucket>?list-type=2` for a listing. */
interface Target {
  url: URL;
  bucketName: string;
  key: string;
  op: SeenRequest['op'];
}

function targetOf(req: IncomingMessage): Target {
  const url = new URL(req.url ?? '/', 'http://s3.local');
  const [, bucketName = '', ...rest] = url.pathname.split('/');
  const key = rest.map((p) => decodeURIComponent(p)).join('/');
  const methods = { GET: 'GetObject', HEAD: 'HeadObject', PUT: 'PutObject', DELETE: 'DeleteObject' } as const;
  const op: SeenRequest['op'] =
    key === '' && url.searchParams.get('list-type') === '2'
      ? 'ListObjectsV2'
      : (methods[req.method as keyof typeof methods] ?? 'other');
  return { url, bucketName: decodeURIComponent(bucketName), key, op };
}

interface Hold {
  count: number;
  match: (op: SeenRequest['op'], key: string) => boolean;
  waiting: (() => void)[];
  released: () => void;
}

export async function startConditionalS3(opts: ConditionalS3Options = {}): Promise<ConditionalS3> {
  const bucket = opts.bucket ?? 'baton';
  const pageSize = opts.maxKeys ?? 1000;
  const objects = new Map<string, StoredObject>();
  const requests: SeenRequest[] = [];
  const holds: Hold[] = [];

  const error = (
    res: ServerResponse,
    head: boolean,
    status: number,
    code: string,
    message: string,
    extra: Record<string, string> = {},
  ): number => {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    res.setHeader('x-amz-request-id', requestId);
    if (head) {
      res.writeHead(status).end();
      return status;
    }
    const fields = Object.entries(extra)
      .map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`)
      .join('');
    const body = `${XML_HEAD}<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message>${fields}<RequestId>${requestId}</RequestId><HostId>${randomBytes(16).toString('base64')}</HostId></Error>`;
    res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) }).end(body);
    return status;
  };

  const objectHeaders = (o: StoredObject): Record<string, string | number> => ({
    etag: o.etag,
    'last-modified': o.lastModified.toUTCString(),
    'content-type': o.contentType,
    'content-length': o.body.length,
    'accept-ranges': 'bytes',
  });

  const getObject = (req: IncomingMessage, res: ServerResponse, key: string, head: boolean): number => {
    const o = objects.get(key);
    if (o === undefined) return error(res, head, 404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });
    const ifMatch = req.headers['if-match'];
    if (ifMatch !== undefined && ifMatch !== o.etag && ifMatch !== '*') {
      return error(
        res,
        head,
        412,
        'PreconditionFailed',
        'At least one of the pre-conditions you specified did not hold',
        {
          Condition: 'If-Match',
        },
      );
    }
    const ifNoneMatch = req.headers['if-none-match'];
    if (ifNoneMatch !== undefined && (ifNoneMatch === o.etag || ifNoneMatch === '*')) {
      res.writeHead(304, { etag: o.etag, 'last-modified': o.lastModified.toUTCString() }).end();
      return 304;
    }
    res.writeHead(200, objectHeaders(o));
    res.end(head ? undefined : o.body);
    return 200;
  };

  const putObject = (req: IncomingMessage, res: ServerResponse, key: string, body: Buffer): number => {
    // A body framed in aws-chunked signatures would be stored with its framing: refuse it loudly.
    if (
      req.headers['x-amz-decoded-content-length'] !== undefined ||
      (req.headers['content-encoding'] ?? '').includes('aws-chunked')
    ) {
      return error(res, false, 501, 'NotImplemented', 'aws-chunked uploads are not supported by this test server');
    }
    const existing = objects.get(key);
    const ifNoneMatch = req.headers['if-none-match'];
    const ifMatch = req.headers['if-match'];
    if (ifNoneMatch !== undefined && ifNoneMatch !== '*') {
      return error(res, false, 400, 'InvalidArgument', 'If-None-Match on PutObject accepts only *');
    }
    if (ifNoneMatch === '*' && existing !== undefined) {
      return error(
        res,
        false,
        412,
        'PreconditionFailed',
        'At least one of the pre-conditions you specified did not hold',
        {
          Condition: 'If-None-Match',
        },
      );
    }
    if (ifMatch !== undefined) {
      if (existing === undefined) {
        return error(res, false, 404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });
      }
      if (ifMatch !== existing.etag) {
        return error(
          res,
          false,
          412,
          'PreconditionFailed',
          'At least one of the pre-conditions you specified did not hold',
          {
            Condition: 'If-Match',
          },
        );
      }
    }
    const etag = `"${createHash('md5').update(body).digest('hex')}"`;
    objects.set(key, {
      body,
      etag,
      lastModified: new Date(),
      contentType: req.headers['content-type'] ?? 'binary/octet-stream',
    });
    res.writeHead(200, { etag, 'content-length': 0 }).end();
    return 200;
  };

  const listObjects = (res: ServerResponse, query: URLSearchParams): number => {
    const prefix = query.get('prefix') ?? '';
    const urlEncoded = query.get('encoding-type') === 'url';
    const max = Math.min(pageSize, Number(query.get('max-keys') ?? 1000));
    const token = query.get('continuation-token');
    const after = token === null ? (query.get('start-after') ?? '') : Buffer.from(token, 'base64').toString();
    const keys = [...objects.keys()]
      .filter((k) => k.startsWith(prefix) && k > after)
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const page = keys.slice(0, max);
    const truncated = keys.length > page.length;
    const enc = (s: string): string => xmlEscape(urlEncoded ? encodeURIComponent(s) : s);
    const contents = page
      .map((k) => {
        const o = objects.get(k)!;
        return `<Contents><Key>${enc(k)}</Key><LastModified>${o.lastModified.toISOString()}</LastModified><ETag>${xmlEscape(o.etag)}</ETag><Size>${o.body.length}</Size><StorageClass>STANDARD</StorageClass></Contents>`;
      })
      .join('');
    const body =
      `${XML_HEAD}<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
      `<Name>${xmlEscape(bucket)}</Name><Prefix>${enc(prefix)}</Prefix><KeyCount>${page.length}</KeyCount>` +
      `<MaxKeys>${max}</MaxKeys>${urlEncoded ? '<EncodingType>url</EncodingType>' : ''}<IsTruncated>${truncated}</IsTruncated>` +
      contents +
      (token === null ? '' : `<ContinuationToken>${xmlEscape(token)}</ContinuationToken>`) +
      (truncated
        ? `<NextContinuationToken>${Buffer.from(page.at(-1)!).toString('base64')}</NextContinuationToken>`
        : '') +
      '</ListBucketResult>';
    res.writeHead(200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) }).end(body);
    return 200;
  };

  const handle = (req: IncomingMessage, res: ServerResponse, body: Buffer, target: Target): void => {
    const { url, bucketName, key } = target;
    const head = req.method === 'HEAD';
    const seen: SeenRequest = {
      op: 'other',
      key,
      ifMatch: req.headers['if-match'],
      ifNoneMatch: req.headers['if-none-match'],
      status: 0,
    };
    requests.push(seen);
    if (bucketName !== bucket) {
      seen.status = error(res, head, 404, 'NoSuchBucket', 'The specified bucket does not exist', {
        BucketName: bucketName,
      });
      return;
    }
    if (key === '') {
      if (req.method === 'GET' && url.searchParams.get('list-type') === '2') {
        seen.op = 'ListObjectsV2';
        seen.status = listObjects(res, url.searchParams);
        return;
      }
      seen.status = error(res, head, 501, 'NotImplemented', `${req.method} on the bucket is not implemented`);
      return;
    }
    switch (req.method) {
      case 'GET':
        seen.op = 'GetObject';
        seen.status = getObject(req, res, key, false);
        return;
      case 'HEAD':
        seen.op = 'HeadObject';
        seen.status = getObject(req, res, key, true);
        return;
      case 'PUT':
        seen.op = 'PutObject';
        seen.status =
          req.headers['x-amz-copy-source'] !== undefined
            ? error(res, false, 501, 'NotImplemented', 'CopyObject is not implemented')
            : putObject(req, res, key, body);
        return;
      case 'DELETE':
        seen.op = 'DeleteObject';
        objects.delete(key);
        res.writeHead(204).end();
        seen.status = 204;
        return;
      default:
        seen.status = error(res, head, 501, 'NotImplemented', `${req.method} is not implemented`);
    }
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const target = targetOf(req);
      const hold = holds.find((h) => h.match(target.op, target.key));
      if (hold === undefined) {
        handle(req, res, body, target);
        return;
      }
      hold.waiting.push(() => handle(req, res, body, target));
      if (hold.waiting.length >= hold.count) {
        holds.splice(holds.indexOf(hold), 1);
        for (const serve of hold.waiting) serve();
        hold.released();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

  return {
    endpoint,
    bucket,
    requests,
    open(prefix, o = {}) {
      return openStore(`s3://${bucket}/${prefix}`, {
        retry: fastRetry,
        warn: () => undefined,
        ...o,
        s3: {
          endpoint,
          region: 'us-east-1',
          forcePathStyle: true,
          credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
          requestTimeoutMs: 30_000,
          ...o.s3,
        },
      });
    },
    hold(count, match) {
      return new Promise<void>((released) => {
        holds.push({ count, match, waiting: [], released });
      });
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
