/**
 * baton dialing a real OTP node and calling it with erpc, rex and eval.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BadRpcError,
  ErpcError,
  EvalSyntaxError,
  type Node,
  NodeDownError,
  TimeoutError,
} from '../../src/distribution/index.js';
import {
  asList,
  atom,
  BitString,
  charlist,
  ExportFun,
  Fun,
  float,
  ImproperList,
  improperList,
  Pid,
  Port,
  Reference,
  type Term,
  termEquals,
  tuple,
} from '../../src/etf/index.js';
import { closeAllBatons, type ErlNode, killAll, startBaton, startErl } from './helpers.js';

const COOKIE = 'erpc_test_cookie';
let peer: ErlNode;
let baton: Node;
const logged: string[] = [];

beforeAll(async () => {
  peer = await startErl({ cookie: COOKIE, prefix: 'erpc' });
  baton = await startBaton({ cookie: COOKIE, log: (line) => logged.push(line) });
  await baton.connect(peer.name);
});

afterAll(async () => {
  await closeAllBatons();
  await killAll();
});

describe('erpc', () => {
  it('every term type of src/etf survives a round trip', async () => {
    const remotePid = await baton.erpc(peer.name, 'erlang', 'self', []);
    const remotePort = await baton.eval(peer.name, 'hd(erlang:ports()).');
    const remoteRef = await baton.erpc(peer.name, 'erlang', 'make_ref', []);
    const remoteFun = await baton.eval(peer.name, 'fun(X) -> X + 1 end.');
    expect(remotePid).toBeInstanceOf(Pid);
    expect(remotePort).toBeInstanceOf(Port);
    expect(remoteRef).toBeInstanceOf(Reference);
    expect(remoteFun).toBeInstanceOf(Fun);
    const local = baton.spawn();
    const richMap = new Map<Term, Term>([
      [atom('k'), 1],
      [Buffer.from('bin'), [1]],
      [tuple(1, 2), new Map([[1, 2]])],
    ]);
    const terms: Term[] = [
      0,
      255,
      -1,
      2 ** 31,
      -(2 ** 31) - 1,
      Number.MAX_SAFE_INTEGER,
      2n ** 64n,
      -(2n ** 300n),
      1.5,
      float(1),
      float(-0),
      float(-1e300),
      1e-300,
      atom('ok'),
      atom(''),
      atom('héllo wörld ✓'),
      atom('x'.repeat(255)),
      Buffer.from('binary'),
      Buffer.alloc(0),
      new BitString(Buffer.from([0xff, 0x80]), 3),
      [],
      [1, 2, 3],
      charlist('a charlist ✓'),
      [atom('a'), [Buffer.from('b')], tuple()],
      improperList([1, 2], 3),
      improperList([atom('alias')], remoteRef),
      tuple(),
      tuple(1, tuple(2, tuple(3))),
      new Map(),
      richMap,
      remotePid,
      local.pid,
      baton.makeRef(),
      remoteRef,
      remotePort,
      remoteFun,
      new ExportFun(atom('lists'), atom('reverse'), 1),
      Array.from({ length: 300 }, (_, i) => i * 1000),
    ];
    for (const t of terms) {
      const back = await baton.erpc(peer.name, 'baton_dist_helper', 'echo', [t]);
      expect(termEquals(back, t), `round trip of ${String(t instanceof Object ? t.constructor.name : t)}`).toBe(true);
    }
    // The peer sees them as what they are, not just bytes that come back.
    expect(await baton.erpc(peer.name, 'erlang', 'is_pid', [local.pid])).toBe(atom('true'));
    expect(await baton.erpc(peer.name, 'erlang', 'node', [local.pid])).toBe(atom(baton.name));
    expect(await baton.erpc(peer.name, 'erlang', 'is_map_key', [tuple(1, 2), richMap])).toBe(atom('true'));
    expect(await baton.erpc(peer.name, 'erlang', 'bit_size', [new BitString(Buffer.from([0xff, 0x80]), 3)])).toBe(11);
    // [2, 1] travels as STRING_EXT, so it decodes to a Charlist: the same list.
    expect(asList(await baton.eval(peer.name, '(fun lists:reverse/1)([1,2]).'))).toEqual([2, 1]);
    local.exit();
  });

  it('throw, exit and error arrive typed, error with the remote stack', async () => {
    const thrown = await baton.erpc(peer.name, 'erlang', 'throw', [atom('ball')]).catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(ErpcError);
    expect((thrown as ErpcError).class).toBe('throw');
    expect((thrown as ErpcError).reason).toBe(atom('ball'));

    const exited = await baton.erpc(peer.name, 'erlang', 'exit', [tuple(atom('shutdown'), 1)]).catch((e: unknown) => e);
    expect((exited as ErpcError).class).toBe('exit');
    expect(termEquals((exited as ErpcError).reason, tuple(atom('shutdown'), 1))).toBe(true);

    const errored = await baton.erpc(peer.name, 'lists', 'nth', [5, [1]]).catch((e: unknown) => e);
    expect(errored).toBeInstanceOf(ErpcError);
    expect((errored as ErpcError).class).toBe('error');
    expect((errored as ErpcError).reason).toBe(atom('function_clause'));
    const stack = (errored as ErpcError).remoteStack;
    expect(stack.length).toBeGreaterThan(0);
    expect(
      stack.some(
        (f) => f instanceof Object && 'elements' in f && (f as { elements: Term[] }).elements[0] === atom('lists'),
      ),
    ).toBe(true);
    expect((errored as ErpcError).code).toBe('ERPC');

    const undef = await baton.erpc(peer.name, 'no_such_module', 'f', []).catch((e: unknown) => e);
    expect((undef as ErpcError).reason).toBe(atom('undef'));
  });

  it('io:format inside a call shows up in the log and does not hang', async () => {
    const value = await baton.erpc(peer.name, 'baton_dist_helper', 'format_and_return', [tuple(atom('x'), 1)], {
      timeoutMs: 10_000,
    });
    expect(termEquals(value, tuple(atom('x'), 1))).toBe(true);
    // ~p quotes the node name where its atom needs quotes (test names have `-`).
    const printed = /^[a-z][a-zA-Z0-9_@]*$/.test(peer.name) ? peer.name : `'${peer.name}'`;
    expect(logged).toContain(`hello from ${printed}: {x,1}`);
    expect(logged).toContain('second line');
  });

  it('nodes(hidden) on the peer lists baton, nodes() does not', async () => {
    const hidden = (await baton.erpc(peer.name, 'erlang', 'nodes', [atom('hidden')])) as Term[];
    const visible = (await baton.erpc(peer.name, 'erlang', 'nodes', [])) as Term[];
    expect(hidden).toContain(atom(baton.name));
    expect(visible).not.toContain(atom(baton.name));
  });

  it('200 concurrent erpc calls all get their own answer', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => baton.erpc(peer.name, 'baton_dist_helper', 'sleep_then', [i % 20, i])),
    );
    expect(results).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it('a 16 MiB binary as argument and result', async () => {
    const big = Buffer.alloc(16 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
    const size = await baton.erpc(peer.name, 'erlang', 'byte_size', [big], { timeoutMs: 60_000 });
    expect(size).toBe(big.length);
    const back = (await baton.erpc(peer.name, 'baton_dist_helper', 'echo', [big], { timeoutMs: 60_000 })) as Buffer;
    expect(Buffer.compare(back, big)).toBe(0);
    const made = (await baton.erpc(peer.name, 'baton_dist_helper', 'big', [16 * 1024 * 1024], {
      timeoutMs: 60_000,
    })) as Buffer;
    expect(made.length).toBe(16 * 1024 * 1024);
    expect(made.every((b) => b === 7)).toBe(true);
  });

  it('binaries read into the slab stay intact across slab boundaries and later reads', async () => {
    // Echoes of uneven sizes put frame ends at every kind of offset in the read slabs;
    // results are kept while later reads arrive, so a reused region would show up here.
    const kept: [Buffer, Buffer][] = [];
    for (let i = 0; i < 40; i++) {
      const sent = Buffer.alloc(30_000 + i * 7_919, i + 1);
      sent[0] = i;
      kept.push([sent, (await baton.erpc(peer.name, 'baton_dist_helper', 'echo', [sent])) as Buffer]);
    }
    const concurrent = await Promise.all(
      kept.map(([sent]) => baton.erpc(peer.name, 'baton_dist_helper', 'echo', [sent])),
    );
    kept.forEach(([sent, back], i) => {
      expect(Buffer.compare(back, sent)).toBe(0);
      expect(Buffer.compare(concurrent[i] as Buffer, sent)).toBe(0);
    });
  });

  it('binaries kept from earlier replies survive the read slabs being reused', async () => {
    // ~3.5 MiB of replies: the slabs are used up and reading goes back to earlier ones.
    // Small binaries are copied out when decoded; every 25th is large (a view that pins
    // its slab). Overwriting either kind would change a kept result.
    const sent = Array.from({ length: 3000 }, (_, i) => {
      const b = Buffer.alloc(i % 25 === 0 ? 20_000 : 1000 + (i % 97), i & 0xff);
      b.writeUInt32BE(i, 0);
      return b;
    });
    const back: Buffer[] = [];
    for (let i = 0; i < sent.length; i += 100) {
      back.push(
        ...((await Promise.all(
          sent.slice(i, i + 100).map((b) => baton.erpc(peer.name, 'baton_dist_helper', 'echo', [b])),
        )) as Buffer[]),
      );
    }
    const wrong = sent.flatMap((b, i) => (Buffer.compare(b, back[i]!) === 0 ? [] : [i]));
    expect(wrong).toEqual([]);
  });

  it('a timeout rejects with TimeoutError and kills the remote process', async () => {
    const before = (await baton.erpc(peer.name, 'erlang', 'system_info', [atom('process_count')])) as number;
    const started = Date.now();
    const err = await baton.erpc(peer.name, 'timer', 'sleep', [60_000], { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(Date.now() - started).toBeLessThan(5_000);
    // The remote sleeper is gone again (killed), not left behind for a minute.
    let after = 0;
    for (let i = 0; i < 100; i++) {
      after = (await baton.erpc(peer.name, 'erlang', 'system_info', [atom('process_count')])) as number;
      if (after <= before) break;
      await sleep(20);
    }
    expect(after).toBeLessThanOrEqual(before);
    // The connection is still good.
    expect(await baton.erpc(peer.name, 'erlang', 'node', [])).toBe(atom(peer.name));
  });

  it('cast runs without an answer', async () => {
    const p = baton.spawn({ name: 'cast_target' });
    await baton.cast(peer.name, 'baton_dist_helper', 'report_to', [
      tuple(atom('cast_target'), atom(baton.name)),
      atom('cast_done'),
    ]);
    expect(await p.receive(undefined, 10_000)).toBe(atom('cast_done'));
    p.exit();
  });
});

describe('rpc via rex and eval', () => {
  it('rpc:call through rex returns values and raises BadRpcError', async () => {
    expect(await baton.rpc(peer.name, 'lists', 'sum', [[1, 2, 3]])).toBe(6);
    const err = await baton.rpc(peer.name, 'erlang', 'error', [atom('nope')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadRpcError);
    expect((err as BadRpcError).reason instanceof Object).toBe(true);
  });

  it('eval runs an expression sequence with erl_eval on the peer', async () => {
    expect(await baton.eval(peer.name, 'X = 20, Y = X + 1, {X, Y * 2}.')).toEqual(tuple(20, 42));
    expect(await baton.eval(peer.name, 'node()')).toBe(atom(peer.name));
    const err = await baton.eval(peer.name, 'X = .').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EvalSyntaxError);
    expect((err as Error).message).toMatch(/syntax error before: '\.'/);
    const raised = await baton.eval(peer.name, 'erlang:error(oops).').catch((e: unknown) => e);
    expect(raised).toBeInstanceOf(ErpcError);
  });
});

describe('failures', () => {
  it('a call to a node that is not running is a NodeDownError', async () => {
    const err = await baton
      .erpc(`nobody_${process.pid}@${peer.name.split('@')[1]}`, 'erlang', 'node', [])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodeDownError);
  });

  it('kill -9 of the peer fails every pending call with NodeDownError, well before the timeout', async () => {
    const victim = await startErl({ cookie: COOKIE, prefix: 'victim' });
    await baton.connect(victim.name);
    const pending = Array.from({ length: 50 }, () =>
      baton.erpc(victim.name, 'timer', 'sleep', [120_000], { timeoutMs: 60_000 }).then(
        () => 'resolved',
        (e: unknown) => e,
      ),
    );
    await sleep(200);
    const killedAt = Date.now();
    victim.kill('SIGKILL');
    const results = await Promise.all(pending);
    const elapsed = Date.now() - killedAt;
    for (const r of results) expect(r).toBeInstanceOf(NodeDownError);
    expect(elapsed).toBeLessThan(5_000);
    expect(baton.isConnected(victim.name)).toBe(false);
    // The other peer is unaffected.
    expect(await baton.erpc(peer.name, 'erlang', 'node', [])).toBe(atom(peer.name));
  });

  it('reconnects on demand after the peer restarts under the same name', async () => {
    const first = await startErl({ cookie: COOKIE, prefix: 'phoenix' });
    const firstPid = (await baton.erpc(first.name, 'erlang', 'whereis', [atom('init')])) as Pid;
    first.kill('SIGKILL');
    await first.exited;
    const err = await baton.erpc(first.name, 'erlang', 'node', []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodeDownError);
    const second = await startErl({ cookie: COOKIE, name: first.name.split('@')[0]! });
    const secondPid = (await baton.erpc(second.name, 'erlang', 'whereis', [atom('init')])) as Pid;
    // A new incarnation: same name, new creation.
    expect(secondPid.creation).not.toBe(firstPid.creation);
    expect(baton.isConnected(second.name)).toBe(true);
    void ImproperList;
  });
});
