/**
 * Test-side process handling: start a built release with a unique node name and port,
 * wait until it serves HTTP, and always kill it (its whole process group) afterwards;
 * and a hidden `erl` control node that evaluates expressions for the tests (erpc into
 * the peers) until baton's own distribution layer can do it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { shortHostname } from '../../src/distribution/index.js';
import { killGroup } from '../../src/peer/index.js';

const live = new Set<ChildProcess>();
// Last resort when a test file dies before its afterAll: no BEAM outlives the run.
process.on('exit', () => {
  for (const child of live) killChildGroup(child, 'SIGKILL');
});

function killChildGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid !== undefined) killGroup(child.pid, signal);
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/**
 * A port nothing listens on right now. Between this check and a child's bind another
 * process may take it (another test file, an outgoing connection's ephemeral port): hand
 * the child a bound socket instead where it takes one, else start it with onFreePort.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr !== null ? resolvePort(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Runs `start` with a free port, and again with a fresh one when it failed because the
 * port was taken meanwhile (its error names `eaddrinuse`, as a crashed app's report does).
 */
export async function onFreePort<T>(start: (port: number) => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await start(port);
    } catch (err) {
      if (attempt >= attempts || !/eaddrinuse/i.test((err as Error)?.message ?? String(err))) throw err;
    }
  }
}

export interface Started {
  node: string;
  port: number;
  cookie: string;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Spawns `cmd` in its own process group and waits until GET / on `port` answers. */
export async function startServing(opts: {
  cmd: string;
  args: string[];
  env: Record<string, string>;
  node: string;
  port: number;
  cookie: string;
  fds?: number[];
  readyUrl?: string;
  bootTimeoutMs?: number;
}): Promise<Started> {
  const scratch = mkdtempSync(join(tmpdir(), 'baton-peer-'));
  const child = spawn(opts.cmd, opts.args, {
    // The relx script writes vm.args from vm.args.src; here, not into the shared release.
    env: { ...process.env, RELX_OUT_FILE_PATH: scratch, ...opts.env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe', ...(opts.fds ?? [])],
  });
  live.add(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let gone = false;
  void exited.then(() => {
    gone = true;
    live.delete(child);
  });
  const started: Started = {
    node: `${opts.node}@${shortHostname()}`,
    port: opts.port,
    cookie: opts.cookie,
    child,
    output: () => out,
    stop: async () => {
      if (!gone) {
        killChildGroup(child, 'SIGTERM');
        const timer = setTimeout(() => killChildGroup(child, 'SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      // Children of the group (epmd is started detached by erl and is shared, so it
      // is not in it) that outlived the leader.
      killChildGroup(child, 'SIGKILL');
      rmSync(scratch, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + (opts.bootTimeoutMs ?? 30_000);
  for (;;) {
    if (gone) {
      await started.stop();
      throw new Error(`${opts.cmd} exited before serving:\n${out}`);
    }
    try {
      // A fresh connection, and the answer must come from this node: with a shared
      // port (SO_REUSEPORT) another peer may answer first.
      const body = await getOnce(opts.readyUrl ?? `http://127.0.0.1:${opts.port}/`);
      if (body['node'] === started.node) return started;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await started.stop();
      throw new Error(`${opts.cmd} did not serve on ${opts.port} in time:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface StartOptions {
  cookie?: string;
  port?: number;
  env?: Record<string, string>;
  /** File descriptors of ours the child gets as fd 3, 4, ... */
  fds?: number[];
  /** Where to wait for a 200 when the app does not serve on PORT (an fd handed over). */
  readyUrl?: string;
}

export function newCookie(): string {
  return randomBytes(8).toString('hex');
}

/** Starts with `o.port`, or on a free port (a fresh one if it was taken before the app bound it). */
function onPort(o: StartOptions, start: (port: number) => Promise<Started>): Promise<Started> {
  return o.port === undefined ? onFreePort(start) : start(o.port);
}

export function startDemoErl(releaseRoot: string, o: StartOptions = {}): Promise<Started> {
  const cookie = o.cookie ?? newCookie();
  return onPort(o, (port) => {
    const name = uniqueName('demo');
    return startServing({
      cmd: join(releaseRoot, 'bin', 'demo_erl'),
      args: ['foreground'],
      env: { DEMO_NODE: name, DEMO_COOKIE: cookie, PORT: String(port), ...o.env },
      fds: o.fds ?? [],
      ...(o.readyUrl === undefined ? {} : { readyUrl: o.readyUrl }),
      node: name,
      port,
      cookie,
    });
  });
}

/** A `mix release` started as its user would, `bin/<bin> start`, with short names. */
export function startMixRelease(releaseRoot: string, bin: string, o: StartOptions = {}): Promise<Started> {
  const cookie = o.cookie ?? newCookie();
  return onPort(o, (port) => {
    const name = uniqueName(bin.replace(/_/g, ''));
    return startServing({
      cmd: join(releaseRoot, 'bin', bin),
      args: ['start'],
      env: {
        RELEASE_NODE: name,
        RELEASE_DISTRIBUTION: 'sname',
        RELEASE_COOKIE: cookie,
        PORT: String(port),
        ...o.env,
      },
      fds: o.fds ?? [],
      ...(o.readyUrl === undefined ? {} : { readyUrl: o.readyUrl }),
      node: name,
      port,
      cookie,
    });
  });
}

export function startDemoEx(releaseRoot: string, o: StartOptions = {}): Promise<Started> {
  return startMixRelease(releaseRoot, 'demo_ex', o);
}

/** demo_phx as Phoenix's release docs start it: PHX_SERVER and SECRET_KEY_BASE set. */
export function startDemoPhx(releaseRoot: string, o: StartOptions = {}): Promise<Started> {
  return startMixRelease(releaseRoot, 'demo_phx', {
    ...o,
    env: { PHX_SERVER: 'true', SECRET_KEY_BASE: 'k'.repeat(64), ...o.env },
  });
}

/**
 * Boots a relx release the way baton will start a peer (docs/design.md, "The peer lifecycle"):
 * plain `erl` with the release's start_clean boot, its sys.config and every ebin under lib
 * on the path, so code loads lazily (interactive mode), then starts the application.
 */
export function startInteractive(
  releaseRoot: string,
  vsn: string,
  app: string,
  o: StartOptions = {},
): Promise<Started> {
  const cookie = o.cookie ?? newCookie();
  const rel = join(releaseRoot, 'releases', vsn);
  const ebins = readdirSync(join(releaseRoot, 'lib')).map((d) => join(releaseRoot, 'lib', d, 'ebin'));
  return onPort(o, (port) => {
    const name = uniqueName('peer');
    return startServing({
      cmd: 'erl',
      args: [
        '-sname',
        name,
        '-setcookie',
        cookie,
        '-boot',
        join(rel, 'start_clean'),
        '-config',
        join(rel, 'sys.config'),
        '-pa',
        ...ebins,
        '-noinput',
        '-eval',
        `{ok, _} = application:ensure_all_started(${app})`,
      ],
      env: { PORT: String(port), ...o.env },
      node: name,
      port,
      cookie,
    });
  });
}

/** A hidden `erl` node running baton_test_ctl: one expression in, one JSON value out. */
export class Control {
  private readonly child: ChildProcess;
  private readonly waiting: Array<(line: string) => void> = [];
  private queue: Promise<unknown> = Promise.resolve();
  private output = '';

  constructor(ebin: string, cookie: string) {
    this.child = spawn(
      'erl',
      [
        '-sname',
        uniqueName('ctl'),
        '-hidden',
        '-noshell',
        '-setcookie',
        cookie,
        '-pa',
        ebin,
        '-s',
        'baton_test_ctl',
        'main',
      ],
      { detached: true, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    live.add(this.child);
    this.child.once('exit', () => live.delete(this.child));
    this.child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    const lines = createInterface({ input: this.child.stdout! });
    lines.on('line', (line) => {
      if (line.startsWith('@@')) this.waiting.shift()?.(line.slice(2));
      else this.output += `${line}\n`;
    });
  }

  /** Evaluates `expr` (an Erlang expression sequence, no trailing dot needed). */
  eval<T = unknown>(expr: string, timeoutMs = 30_000): Promise<T> {
    const text = `${expr.replace(/\s*\.\s*$/, '').replace(/\n/g, ' ')}.\n`;
    const next = this.queue.then(
      () =>
        new Promise<T>((resolveValue, reject) => {
          const timer = setTimeout(() => reject(new Error(`eval timed out: ${expr}\n${this.output}`)), timeoutMs);
          this.waiting.push((line) => {
            clearTimeout(timer);
            const reply = JSON.parse(line) as { ok?: T; error?: string };
            if ('error' in reply) reject(new Error(`${reply.error}\nwhile evaluating: ${expr}`));
            else resolveValue(reply.ok as T);
          });
          this.child.stdin!.write(text);
        }),
    );
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * Evaluates `body` (Erlang expressions) inside `node` with that node's own erl_eval: a
   * fun built here would be a badfun in a `mix release` node, whose stripped beams give
   * erl_eval another md5. Newlines are kept, so `%` comments end where they should.
   */
  evalOn<T = unknown>(node: string, body: string): Promise<T> {
    return this.eval<T>(
      `{ok, Ts, _} = erl_scan:string(${JSON.stringify(`${body}.`)}), {ok, Es} = erl_parse:parse_exprs(Ts),
       {value, V, _} = erpc:call('${node}', erl_eval, exprs, [Es, []]), V`,
    );
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin!.end();
    const timer = setTimeout(() => killChildGroup(this.child, 'SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

/** GET over a new connection (no keep-alive pool), JSON body. */
export function getOnce(url: string): Promise<Record<string, unknown>> {
  return new Promise((resolveBody, reject) => {
    const req = httpGet(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        try {
          if (res.statusCode !== 200) throw new Error(`GET ${url}: ${res.statusCode}`);
          resolveBody(JSON.parse(body) as Record<string, unknown>);
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('error', reject);
  });
}

export async function getJson<T = Record<string, unknown>>(port: number, path: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return (await res.json()) as T;
}
