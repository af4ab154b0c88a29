/**
 * The fixtures themselves: each release boots and serves over HTTP the way baton's
 * injection contract says (PORT, BATON_LISTEN_FD, BATON_REUSEPORT, BATON_ENDPOINT).
 */
import { existsSync, readdirSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bindListener, type Listener } from '../../src/peer/index.js';
import { type Fixtures, fixtures } from '../support/fixtures.js';
import { Control, getJson, getOnce, newCookie, type Started, startDemoErl, startDemoEx } from '../support/nodes.js';

let fx: Fixtures;
let ctl: Control;
const cookie = newCookie();
const started: Started[] = [];

async function track(p: Promise<Started>): Promise<Started> {
  const s = await p;
  started.push(s);
  return s;
}

beforeAll(async () => {
  fx = await fixtures();
  ctl = new Control(fx.erlEbin, cookie);
});

const reserved: Listener[] = [];

/** A port held bound but not listening: connections to it are refused, and nobody else can take it. */
function reserve(): Listener {
  const l = bindListener('127.0.0.1', 0);
  reserved.push(l);
  return l;
}

afterAll(async () => {
  for (const l of reserved) l.close();
  await Promise.all(started.map((s) => s.stop()));
  await ctl?.close();
});

/** Two requests on one connection: the answer to each, in order. */
async function twoOnOneConnection(port: number): Promise<string[]> {
  return new Promise((resolveAll, reject) => {
    const sock = connect(port, '127.0.0.1');
    let buf = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      buf += d;
      const bodies = [...buf.matchAll(/\r\n\r\n(\{[^}]*\})/g)].map((m) => m[1] ?? '');
      if (bodies.length === 2) {
        sock.end();
        resolveAll(bodies);
      }
    });
    sock.on('error', reject);
    sock.write('GET /counter HTTP/1.1\r\nhost: x\r\n\r\nGET /counter HTTP/1.1\r\nhost: x\r\n\r\n');
  });
}

function listening(host: string): Promise<Server> {
  return new Promise((resolveServer, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => resolveServer(srv));
  });
}

describe('demo_erl', () => {
  it('1.0.0 serves /, keep-alive /counter and /slow', async () => {
    const peer = await track(startDemoErl(fx.demoErl['1.0.0'], { cookie }));
    expect(await getJson(peer.port, '/')).toEqual({ version: '1.0.0', node: peer.node });
    const [a, b] = await twoOnOneConnection(peer.port);
    expect(JSON.parse(a!)).toEqual({ count: 1, state: 'integer' });
    expect(JSON.parse(b!)).toEqual({ count: 2, state: 'integer' });
    const t0 = Date.now();
    expect(await getJson(peer.port, '/slow?ms=300')).toEqual({ slept: 300 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    // No ERTS in this build: it runs on the system's.
    expect(readdirSync(fx.demoErl['1.0.0']).some((f) => f.startsWith('erts-'))).toBe(false);
  });

  it('1.0.0 with ERTS included runs on its own ERTS', async () => {
    const root = fx.demoErlWithErts;
    expect(readdirSync(root).some((f) => f.startsWith('erts-'))).toBe(true);
    const peer = await track(startDemoErl(root, { cookie }));
    expect(await getJson(peer.port, '/')).toMatchObject({ version: '1.0.0' });
    const rootDir = await ctl.eval<string>(`erpc:call('${peer.node}', code, root_dir, [])`);
    expect(rootDir).toBe(root);
  });

  it('2.0.0 runs the new application and the changed supervision tree', async () => {
    const peer = await track(startDemoErl(fx.demoErl['2.0.0'], { cookie }));
    const body = await getJson(peer.port, '/');
    expect(body).toMatchObject({ version: '2.0.0', node: peer.node });
    // demo_stats counts the hits on GET /, readiness probes included.
    expect(await getJson(peer.port, '/')).toMatchObject({ hits: (body['hits'] as number) + 1 });
    expect((body['apps'] as string[]).sort()).toEqual(['demo_erl', 'demo_stats']);
    const tree = await ctl.eval<string[]>(
      `[Id || {Id, _, _, _} <- erpc:call('${peer.node}', supervisor, which_children, [demo_erl_core_sup])]`,
    );
    expect(tree).toEqual(['counter']);
    expect(await getJson(peer.port, '/counter')).toEqual({ count: 1, state: 'map' });
  });

  it('1.0.1 boots with the counter keeping a map', async () => {
    const peer = await track(startDemoErl(fx.demoErl['1.0.1'], { cookie }));
    expect(await getJson(peer.port, '/')).toEqual({ version: '1.0.1', node: peer.node });
    expect(await getJson(peer.port, '/counter')).toEqual({ count: 1, state: 'map' });
  });

  it('stops accepting when its endpoint is terminated through its parent, and finishes in-flight requests', async () => {
    const peer = await track(startDemoErl(fx.demoErl['1.0.0'], { cookie }));
    const slow = getJson(peer.port, '/slow?ms=800');
    // Wait until that request is being served: a connection process sleeps in it.
    await expect
      .poll(
        () =>
          ctl.eval<number>(
            `erpc:call('${peer.node}', erlang, apply, [fun() ->
               length([P || P <- erlang:processes(),
                            erlang:process_info(P, current_function) =:= {current_function, {timer, sleep, 1}}])
             end, []])`,
          ),
        { timeout: 5000, interval: 20 },
      )
      .toBeGreaterThan(0);
    // The plain contract's stop recipe (docs/design.md): terminate_child on the parent named in the
    // endpoint's $ancestors.
    const r = await ctl.eval<string>(
      `N = '${peer.node}',
       {dictionary, D} = erpc:call(N, erlang, process_info, [erpc:call(N, erlang, whereis, [demo_erl_endpoint]), dictionary]),
       [Parent | _] = proplists:get_value('$ancestors', D),
       erpc:call(N, supervisor, terminate_child, [Parent, endpoint])`,
    );
    expect(r).toBe('ok');
    expect(await slow).toEqual({ slept: 800 });
    await expect(getOnce(`http://127.0.0.1:${peer.port}/`)).rejects.toThrow(/ECONNREFUSED/);
    expect(await ctl.eval(`erpc:call('${peer.node}', demo_erl_counter, bump, [])`)).toEqual([1, 'integer']);
  });

  it('registers the endpoint supervisor under BATON_ENDPOINT', async () => {
    const peer = await track(startDemoErl(fx.demoErl['1.0.0'], { cookie, env: { BATON_ENDPOINT: 'my_endpoint' } }));
    const r = await ctl.eval<{ sup: boolean; acceptors: number }>(
      `P = erpc:call('${peer.node}', erlang, whereis, [my_endpoint]),
       #{sup => is_pid(P), acceptors => length(erpc:call('${peer.node}', supervisor, which_children, [my_endpoint]))}`,
    );
    expect(r).toEqual({ sup: true, acceptors: 4 });
  });

  for (const family of ['inet', 'inet6'] as const) {
    it(`serves on a socket handed over as BATON_LISTEN_FD (${family})`, async () => {
      const host = family === 'inet6' ? '::1' : '127.0.0.1';
      const srv = await listening(host);
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') throw new Error('no address');
      const url = `http://${family === 'inet6' ? '[::1]' : '127.0.0.1'}:${addr.port}/`;
      // PORT names a port held bound but not listening: the app must take the fd, not bind PORT.
      const decoy = reserve();
      const start = startDemoErl(fx.demoErl['1.0.0'], {
        cookie,
        port: decoy.port,
        env: { BATON_LISTEN_FD: '3', BATON_LISTEN_FAMILY: family },
        // An fd number in stdio is dup'ed into the child as is.
        fds: [(srv as unknown as { _handle: { fd: number } })._handle.fd],
        readyUrl: url,
      });
      // The child holds its own copy of the socket from the spawn on; ours must not
      // accept connections meant for it.
      srv.close();
      const peer = await track(start);
      const res = await fetch(url);
      expect(await res.json()).toMatchObject({ version: '1.0.0', node: peer.node });
      await expect(fetch(`http://127.0.0.1:${decoy.port}/`)).rejects.toThrow();
    });
  }

  it('two peers bind one port with BATON_REUSEPORT=1 and both serve', async () => {
    const a = await track(startDemoErl(fx.demoErl['1.0.0'], { cookie, env: { BATON_REUSEPORT: '1' } }));
    const port = a.port;
    const b = await track(startDemoErl(fx.demoErl['1.0.0'], { cookie, port, env: { BATON_REUSEPORT: '1' } }));
    const seen = new Set<string>();
    for (let i = 0; i < 200 && seen.size < 2; i++) {
      // A new connection each time: SO_REUSEPORT spreads connections, not requests.
      seen.add((await getOnce(`http://127.0.0.1:${port}/`))['node'] as string);
    }
    expect([...seen].sort()).toEqual([a.node, b.node].sort());
  });
});

describe('demo_ex', () => {
  it('serves the value runtime.exs computed, through its consolidated protocol, and logs', async () => {
    expect(existsSync(join(fx.demoEx, 'bin', 'demo_ex'))).toBe(true);
    const peer = await track(startDemoEx(fx.demoEx, { cookie, env: { DEMO_EX_VALUE: 'blue' } }));
    const body = await getJson(peer.port, '/');
    expect(body).toEqual({
      node: peer.node,
      runtime_value: 'BLUE/prod',
      describe: `info(${peer.node}, BLUE/prod)`,
      consolidated: true,
    });
    const impl = await ctl.eval<string>(`erpc:call('${peer.node}', 'Elixir.DemoEx.Describe', impl_for, [1])`);
    expect(impl).toBe('Elixir.DemoEx.Describe.Integer');
    await expect.poll(() => peer.output(), { timeout: 5000 }).toMatch(/\[info\] GET \/ -> 200/);
    expect(peer.output()).toMatch(/runtime_value=BLUE\/prod/);
  });

  it('follows the same injection contract: BATON_LISTEN_FD (inet6) and BATON_ENDPOINT', async () => {
    const srv = await listening('::1');
    const addr = srv.address();
    if (addr === null || typeof addr === 'string') throw new Error('no address');
    const url = `http://[::1]:${addr.port}/`;
    const start = startDemoEx(fx.demoEx, {
      cookie,
      port: reserve().port,
      env: { BATON_LISTEN_FD: '3', BATON_LISTEN_FAMILY: 'inet6', BATON_ENDPOINT: 'ex_endpoint' },
      fds: [(srv as unknown as { _handle: { fd: number } })._handle.fd],
      readyUrl: url,
    });
    srv.close();
    const peer = await track(start);
    expect(await getOnce(url)).toMatchObject({ node: peer.node, runtime_value: 'UNSET/prod' });
    const acceptors = await ctl.eval<number>(
      `length(erpc:call('${peer.node}', supervisor, which_children, [ex_endpoint]))`,
    );
    expect(acceptors).toBe(4);
  });
});
