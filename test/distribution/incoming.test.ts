/**
 * Peers dialing baton, cookies both ways, EPMD failures, simultaneous dials, ticks.
 */

import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BadRpcError,
  CookieMismatchError,
  DFLAG,
  EpmdError,
  Node,
  NodeDownError,
  OUR_FLAGS,
} from '../../src/distribution/index.js';
import { atom, type Tuple, termEquals, tuple } from '../../src/etf/index.js';
import { closeAllBatons, eventually, HOST, killAll, runErl, startBaton, startErl, uniqueName } from './helpers.js';

const COOKIE = 'incoming_test_cookie';
let baton: Node;
const handshakeErrors: Error[] = [];

beforeAll(async () => {
  baton = await startBaton({ cookie: COOKIE });
  baton.on('handshakeError', (err: Error) => handshakeErrors.push(err));
  baton.expose('baton', 'status', (args) => tuple(atom('ok'), args.length));
});

afterAll(async () => {
  await closeAllBatons();
  await killAll();
});

describe('peers connecting to baton', () => {
  it('net_adm:ping from a peer gets pong, and baton then uses that connection', async () => {
    // The peer dials (no connection from our side yet).
    const ups: string[] = [];
    baton.on('nodeup', (n: string) => ups.push(n));
    const reply = await startErl({ cookie: COOKIE, prefix: 'pinger2', eval: `pong = net_adm:ping('${baton.name}')` });
    expect(ups).toContain(reply.name);
    expect(baton.isConnected(reply.name)).toBe(true);
    // erpc over the incoming connection: no second dial.
    expect(await baton.erpc(reply.name, 'erlang', 'node', [])).toBe(atom(reply.name));
    expect(ups.filter((n) => n === reply.name)).toHaveLength(1);
    // Hidden on their side too.
    const hidden = await baton.erpc(reply.name, 'erlang', 'nodes', [atom('hidden')]);
    expect(hidden).toContain(atom(baton.name));
    reply.kill();
  });

  it('rpc:call from a peer to baton gets a clear {badrpc, ...}, and exposed functions answer', async () => {
    const out = await runErl({
      cookie: COOKIE,
      code: `A = rpc:call('${baton.name}', erlang, node, [], 10000), B = rpc:call('${baton.name}', baton, status, [x, y], 10000), C = erpc:call('${baton.name}', baton, status, [], 10000), D = rpc:call('${baton.name}', baton, status, [1, 2, 3], 10000), {A, B, C, D}`,
    });
    // D's arguments travel as STRING_EXT (a list of small integers): still three arguments.
    expect(out).toMatch(/^\{\{badrpc,\{'EXIT',\{undef,\[\{erlang,node,0,\[\]\}\]\}\}\},\{ok,2\},\{ok,0\},\{ok,3\}\}$/);
  });

  it('erl -remsh baton@host connects, and says clearly that no shell runs there (no hang)', async () => {
    const { spawn } = await import('node:child_process');
    const ups: string[] = [];
    const onUp = (n: string): void => void ups.push(n);
    baton.on('nodeup', onUp);
    // remsh wants a terminal: script(1) gives it one.
    const remshName = uniqueName('remsh');
    const remsh = `erl -sname ${remshName} -setcookie ${COOKIE} -remsh ${baton.name}`;
    const proc = spawn('script', ['-qfc', remsh, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await eventually(() => out.includes('Shell process terminated'), 20_000, 'remsh to report the shell error');
      expect(ups).toContain(`${remshName}@${HOST}`);
    } finally {
      baton.off('nodeup', onUp);
      proc.kill('SIGKILL');
    }
  });

  it('a peer with the wrong cookie gets pang, and baton reports a CookieMismatchError without the cookie', async () => {
    handshakeErrors.length = 0;
    const out = await runErl({ cookie: 'not_the_cookie', code: `net_adm:ping('${baton.name}')` });
    expect(out).toBe('pang');
    await eventually(() => handshakeErrors.some((e) => e instanceof CookieMismatchError), 10_000, 'cookie error');
    const err = handshakeErrors.find((e) => e instanceof CookieMismatchError)!;
    expect(err.message).toMatch(/cookie was wrong/);
    expect(err.message).not.toContain('not_the_cookie');
    expect(err.message).not.toContain(COOKIE);
  });

  it('baton dialing with the wrong cookie gets CookieMismatchError without the cookie', async () => {
    const peer = await startErl({ cookie: 'peer_cookie_123', prefix: 'strict' });
    const err = await baton.connect(peer.name).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CookieMismatchError);
    expect((err as Error).message).toMatch(/cookie was wrong/);
    expect((err as Error).message).not.toContain(COOKIE);
    expect((err as Error).message).not.toContain('peer_cookie_123');
    expect((err as CookieMismatchError).code).toBe('COOKIE_MISMATCH');
    peer.kill();
  });
});

describe('long names', () => {
  it('baton@127.0.0.1 talks to an erl -name node both ways', async () => {
    const { spawn } = await import('node:child_process');
    const base = uniqueName('longpeer');
    const proc = spawn(
      'erl',
      ['-name', `${base}@127.0.0.1`, '-setcookie', COOKIE, '-noshell', '-eval', 'receive after infinity -> ok end.'],
      { stdio: 'ignore' },
    );
    const local = await startBaton({ cookie: COOKIE, name: `${uniqueName('longbaton')}@127.0.0.1` });
    try {
      let value: unknown;
      await eventually(
        async () => {
          value = await local.erpc(`${base}@127.0.0.1`, 'erlang', 'node', []).catch(() => undefined);
          return value !== undefined;
        },
        20_000,
        'long-name peer',
      );
      expect(value).toBe(atom(`${base}@127.0.0.1`));
      expect(await local.eval(`${base}@127.0.0.1`, `net_adm:ping('${local.name}').`)).toBe(atom('pong'));
    } finally {
      proc.kill('SIGKILL');
      await local.close();
    }
  });
});

describe('IPv6', () => {
  it('a peer on inet6_tcp (as on Fly) reaches baton: the listener is dual stack', async () => {
    const out = await runErl({
      cookie: COOKIE,
      args: ['-proto_dist', 'inet6_tcp'],
      code: `{net_adm:ping('${baton.name}'), erpc:call('${baton.name}', baton, status, [1], 10000)}`,
    });
    expect(out).toBe('{pong,{ok,1}}');
  });
});

describe('EPMD', () => {
  it('registers baton (NAMES lists it) and refuses a taken name', async () => {
    const names = await baton.names();
    expect(names.names.map((n) => n.name)).toContain(baton.name.split('@')[0]);
    expect(names.names.find((n) => n.name === baton.name.split('@')[0])!.port).toBe(baton.port);
    const twin = new Node({ name: baton.name, cookie: COOKIE, log: () => {} });
    const err = await twin.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EpmdError);
    expect((err as EpmdError).reason).toBe('name_taken');
    await twin.close();
  });

  it('EPMD absent: start and connect fail with a clear EpmdError', async () => {
    const unused = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    const lonely = new Node({ name: uniqueName('lonely'), cookie: COOKIE, epmdPort: unused, log: () => {} });
    const err = await lonely.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EpmdError);
    expect((err as EpmdError).reason).toBe('unreachable');
    expect((err as Error).message).toMatch(/EPMD is not running/);
    const dialer = new Node({
      name: uniqueName('dialer'),
      cookie: COOKIE,
      epmdPort: unused,
      listen: false,
      log: () => {},
    });
    const err2 = await dialer.connect(`anyone@${HOST}`).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(EpmdError);
    await lonely.close();
    await dialer.close();
  });

  it('with startEpmd, baton starts EPMD itself when none runs (it may be the first node on the machine)', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const first = new Node({
      name: uniqueName('first'),
      cookie: COOKIE,
      epmdPort: port,
      startEpmd: true,
      log: () => {},
    });
    try {
      await first.start();
      const names = await first.names();
      expect(names.names.map((n) => n.name)).toContain(first.name.split('@')[0]);
      // An erl node using that EPMD finds baton.
      const out = await runErl({
        cookie: COOKIE,
        code: `net_adm:ping('${first.name}')`,
        env: { ERL_EPMD_PORT: String(port) },
      });
      expect(out).toBe('pong');
    } finally {
      await first.close();
      const { execFileSync } = await import('node:child_process');
      execFileSync('epmd', ['-port', String(port), '-kill']);
    }
  });

  it('connect to a name EPMD does not know is a NodeDownError', async () => {
    const err = await baton.connect(`nobody_${process.pid}@${HOST}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodeDownError);
    expect((err as Error).message).toMatch(/not registered/);
  });
});

describe('one connection per peer', () => {
  it('when baton and the peer dial each other at the same moment, one connection survives', async () => {
    for (let round = 0; round < 4; round++) {
      const local = await startBaton({ cookie: COOKIE });
      const events: string[] = [];
      local.on('nodeup', (n: string) => events.push(`up ${n}`));
      local.on('nodedown', (n: string) => events.push(`down ${n}`));
      // Told when the peer's connect_node has returned: its attempt is over by then.
      const probe = local.spawn({ name: 'simul_probe' });
      // The peer waits for the same instant as we do, then both dial.
      const at = Date.now() + 1500;
      const peer = await startErl({
        cookie: COOKIE,
        prefix: `simul${round}`,
        eval: `spawn(fun() -> timer:sleep(max(0, ${at} - erlang:system_time(millisecond))), R = net_kernel:connect_node('${local.name}'), {simul_probe, '${local.name}'} ! {connected, R} end)`,
      });
      await sleep(Math.max(0, at - Date.now()));
      await local.connect(peer.name);
      expect(termEquals(await probe.receive(undefined, 10_000), tuple(atom('connected'), atom('true')))).toBe(true);
      // Both attempts are over (ours returned, the peer's told us) and no handshake is left
      // in flight here: no connection can still come up or be replaced.
      await eventually(() => local.stats().pendingHandshakes === 0, 10_000, 'handshakes to finish');
      expect(events.filter((e) => e === `up ${peer.name}`)).toHaveLength(1);
      expect(events.filter((e) => e.startsWith('down'))).toHaveLength(0);
      expect(local.connectedNodes()).toEqual([peer.name]);
      expect(await local.erpc(peer.name, 'erlang', 'node', [])).toBe(atom(peer.name));
      peer.kill();
      await local.close();
    }
  });
});

describe('two baton nodes', () => {
  it('dialing each other in the same instant end with one connection each way agreed', async () => {
    // Many rounds: the interleavings differ (nok / ok_simultaneous / alive → false).
    for (let round = 0; round < 40; round++) {
      const a = await startBaton({ cookie: COOKIE });
      const b = await startBaton({ cookie: COOKIE });
      b.expose('baton', 'whoami', () => atom(b.name));
      a.expose('baton', 'whoami', () => atom(a.name));
      const ups = { a: 0, b: 0 };
      a.on('nodeup', () => ups.a++);
      b.on('nodeup', () => ups.b++);
      await Promise.all([a.connect(b.name), b.connect(a.name)]);
      expect(await a.erpc(b.name, 'baton', 'whoami', [])).toBe(atom(b.name));
      expect(await b.erpc(a.name, 'baton', 'whoami', [])).toBe(atom(a.name));
      expect(ups).toEqual({ a: 1, b: 1 });
      await a.close();
      await b.close();
    }
  });
});

describe('a node that comes back under the same name', () => {
  it('replaces the connection we still hold (status alive → true)', async () => {
    const a = await startBaton({ cookie: COOKIE });
    const name = uniqueName('twin');
    const b1 = await startBaton({ cookie: COOKIE, name });
    await b1.connect(a.name);
    const b1Down = new Promise<string>((r) => b1.once('nodedown', (_n: string, reason: string) => r(reason)));
    const ups: string[] = [];
    a.on('nodeup', (n: string) => ups.push(n));
    // Same name, not registered with EPMD (b1 holds the name there), dialing a.
    const b2 = new Node({ name: b1.name, cookie: COOKIE, listen: false, log: () => {} });
    b2.expose('baton', 'which', () => atom('b2'));
    await b2.connect(a.name);
    await b1Down;
    expect(ups).toEqual([b1.name]);
    expect(a.connectedNodes()).toEqual([b1.name]);
    expect(await a.erpc(b1.name, 'baton', 'which', [])).toBe(atom('b2'));
    await b2.close();
  });
});

describe("a stranger using a connected node's name", () => {
  it('cannot cut the existing connection without the cookie', async () => {
    const a = await startBaton({ cookie: COOKIE });
    const b = await startBaton({ cookie: COOKIE });
    b.expose('baton', 'which', () => atom('real'));
    await b.connect(a.name);
    const downs: string[] = [];
    a.on('nodedown', (n: string) => downs.push(n));
    const impostor = new Node({ name: b.name, cookie: 'guessed_wrong', listen: false, log: () => {} });
    const err = await impostor.connect(a.name).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CookieMismatchError);
    expect(downs).toEqual([]);
    expect(await a.erpc(b.name, 'baton', 'which', [])).toBe(atom('real'));
    await impostor.close();
  });
});

describe('a peer without SPAWN', () => {
  it('erpc falls back to rpc through rex', async () => {
    const a = await startBaton({ cookie: COOKIE });
    const old = await startBaton({ cookie: COOKIE, distFlags: OUR_FLAGS & ~DFLAG.SPAWN });
    old.expose('legacy', 'add', (args) => (args[0] as number) + (args[1] as number));
    expect(await a.erpc(old.name, 'legacy', 'add', [2, 3])).toBe(5);
    const err = await a.erpc(old.name, 'legacy', 'missing', []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadRpcError);
  });
});

describe('ticks', () => {
  it('an idle connection survives several net_ticktimes (ticks both ways)', async () => {
    const local = await startBaton({ cookie: COOKIE, netTicktime: 2 });
    const peer = await startErl({ cookie: COOKIE, prefix: 'ticker', args: ['-kernel', 'net_ticktime', '2'] });
    await local.connect(peer.name);
    const events: string[] = [];
    local.on('nodeup', (n: string) => events.push(`up ${n}`));
    local.on('nodedown', (n: string, reason: string) => events.push(`down ${n} ${reason}`));
    const probe = local.spawn({ name: 'tick_probe' });
    // The peer counts the packets of the connection (net_kernel:node_info/1) and reports
    // once baton has sent it 12 after this call: nothing else is sent meanwhile, so those
    // are baton's ticks, one per 0.5 s interval, three net_ticktimes in all. Without the
    // peer's ticks baton drops a connection after one ticktime of silence, and the peer
    // likewise without baton's.
    await local.eval(
      peer.name,
      `Baton = '${local.name}',
       Counts = fun() -> {ok, I} = net_kernel:node_info(Baton),
                         {element(2, lists:keyfind(in, 1, I)), element(2, lists:keyfind(out, 1, I))} end,
       spawn(fun() ->
         {In0, Out0} = Counts(),
         Wait = fun W() ->
           {In, Out} = Counts(),
           if In - In0 >= 12 -> {tick_probe, Baton} ! {idle, In - In0, Out - Out0};
              true -> timer:sleep(100), W()
           end
         end,
         Wait()
       end).`,
    );
    const report = (await probe.receive(undefined, 30_000)) as Tuple;
    expect(report.elements[0]).toBe(atom('idle'));
    // The peer ticked too (it writes a tick in each quarter ticktime it sent nothing).
    expect(report.elements[2] as number).toBeGreaterThanOrEqual(8);
    expect(events).toEqual([]);
    expect(await local.erpc(peer.name, 'erlang', 'nodes', [atom('hidden')])).toContain(atom(local.name));
    peer.kill();
    await local.close();
  });

  it('a peer that stops answering (SIGSTOP) is declared down after net_ticktime, failing pending calls', async () => {
    const local = await startBaton({ cookie: COOKIE, netTicktime: 2 });
    const peer = await startErl({ cookie: COOKIE, prefix: 'frozen' });
    await local.connect(peer.name);
    const pending = local.erpc(peer.name, 'timer', 'sleep', [60_000], { timeoutMs: 60_000 }).catch((e: unknown) => e);
    await sleep(100);
    peer.proc.kill('SIGSTOP');
    const started = Date.now();
    const err = await pending;
    expect(err).toBeInstanceOf(NodeDownError);
    expect((err as NodeDownError).reason).toBe('net_tick_timeout');
    expect(Date.now() - started).toBeLessThan(5_000);
    peer.proc.kill('SIGCONT');
    peer.kill();
    await local.close();
  });
});
