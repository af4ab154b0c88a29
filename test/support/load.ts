/**
 * Real TCP load for cutover tests: N clients sending `GET /` back to back, each on a new
 * connection (`fresh`) or on one kept-alive connection (`keepalive`), counting what
 * succeeded, what failed and how.
 */
import { Agent, get } from 'node:http';

export type LoadMode = 'fresh' | 'keepalive';

export interface LoadResult {
  ok: number;
  failed: number;
  /** Failure causes (`ECONNRESET`, `status 503`, ...) and how often each happened. */
  errors: Record<string, number>;
  /** Which node answered how many requests (from the JSON body's `node`). */
  nodes: Record<string, number>;
}

export interface Load {
  /** Resolves once every client has had at least `n` answers since the call. */
  answered(n: number): Promise<void>;
  stop(): Promise<LoadResult>;
}

export function startLoad(o: { host?: string; port: number; clients: number; mode: LoadMode; path?: string }): Load {
  const host = o.host ?? '127.0.0.1';
  const result: LoadResult = { ok: 0, failed: 0, errors: {}, nodes: {} };
  let running = true;
  const counts = new Array<number>(o.clients).fill(0);
  const agents: Agent[] = [];

  const once = (agent: Agent | false): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = get({ host, port: o.port, path: o.path ?? '/', agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          if (res.statusCode !== 200)
            return reject(Object.assign(new Error('status'), { code: `status ${res.statusCode}` }));
          try {
            resolve(String((JSON.parse(body) as { node?: unknown }).node));
          } catch {
            reject(Object.assign(new Error('body'), { code: 'bad body' }));
          }
        });
        res.on('error', reject);
      });
      req.setTimeout(10_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
      req.on('error', reject);
    });

  const client = async (i: number): Promise<void> => {
    const agent = o.mode === 'keepalive' ? new Agent({ keepAlive: true, maxSockets: 1 }) : false;
    if (agent) agents.push(agent);
    while (running) {
      try {
        const node = await once(agent);
        result.ok += 1;
        result.nodes[node] = (result.nodes[node] ?? 0) + 1;
        counts[i]! += 1;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        result.failed += 1;
        result.errors[code] = (result.errors[code] ?? 0) + 1;
        // A refused connection (nothing listening) would otherwise spin.
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  const clients = Array.from({ length: o.clients }, (_, i) => client(i));

  return {
    async answered(n) {
      const base = [...counts];
      const deadline = Date.now() + 30_000;
      while (counts.some((c, i) => c - base[i]! < n)) {
        if (Date.now() > deadline)
          throw new Error(`load: clients did not get ${n} answers each within 30 s (${JSON.stringify(result)})`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
      running = false;
      await Promise.all(clients);
      for (const a of agents) a.destroy();
      return result;
    },
  };
}
