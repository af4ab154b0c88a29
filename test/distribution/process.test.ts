/**
 * TS processes as real OTP nodes see them: messages both ways, gen_server calls
 * (replies by ALIAS_SEND), links, monitors, exit signals, node monitors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Node, ProcessExitError, TimeoutError } from '../../src/distribution/index.js';
import { atom, type Pid, Reference, type Term, Tuple, termEquals, tuple } from '../../src/etf/index.js';
import { closeAllBatons, type ErlNode, eventually, killAll, startBaton, startErl } from './helpers.js';

const COOKIE = 'process_test_cookie';
let peer: ErlNode;
let baton: Node;

beforeAll(async () => {
  peer = await startErl({ cookie: COOKIE, prefix: 'proc', eval: 'baton_dist_helper:start_server()' });
  baton = await startBaton({ cookie: COOKIE });
  await baton.connect(peer.name);
});

afterAll(async () => {
  await closeAllBatons();
  await killAll();
});

const isTuple = (m: Term, first: Term): m is Tuple => m instanceof Tuple && m.elements[0] === first;

describe('messages', () => {
  it('an erl process sends to a registered TS process by {Name, Node}', async () => {
    const p = baton.spawn({ name: 'ts_inbox' });
    await baton.erpc(peer.name, 'baton_dist_helper', 'send_to', [
      atom('ts_inbox'),
      atom(baton.name),
      tuple(atom('hello'), 1),
    ]);
    const got = await p.receive(undefined, 10_000);
    expect(termEquals(got, tuple(atom('hello'), 1))).toBe(true);
    p.exit();
    expect(baton.whereis('ts_inbox')).toBeUndefined();
  });

  it('receive is selective and times out', async () => {
    const p = baton.spawn();
    await baton.erpc(peer.name, 'baton_dist_helper', 'report_to', [p.pid, atom('first')]);
    await baton.erpc(peer.name, 'baton_dist_helper', 'report_to', [p.pid, atom('second')]);
    expect(await p.receive((m) => (m === atom('second') ? m : undefined), 10_000)).toBe(atom('second'));
    expect(await p.receive(undefined, 10_000)).toBe(atom('first'));
    await expect(p.receive(undefined, 50)).rejects.toBeInstanceOf(TimeoutError);
    p.exit();
  });

  it('a TS process calls a gen_server on the peer and gets the reply (also when replied from elsewhere)', async () => {
    const p = baton.spawn();
    expect(await p.call(['baton_dist_server', peer.name], atom('ping'))).toBe(atom('pong'));
    const big = Buffer.alloc(100_000, 1);
    expect(termEquals(await p.call(['baton_dist_server', peer.name], tuple(atom('echo'), big)), big)).toBe(true);
    // gen_server:reply/2 from another process: the reply travels by ALIAS_SEND to our alias.
    expect(
      termEquals(await p.call(['baton_dist_server', peer.name], tuple(atom('later'), 7)), tuple(atom('late'), 7)),
    ).toBe(true);
    const serverPid = (await baton.erpc(peer.name, 'erlang', 'whereis', [atom('baton_dist_server')])) as Pid;
    expect(await p.call(serverPid, atom('ping'))).toBe(atom('pong'));
    // A call to a name that is not registered fails at once (monitor: noproc).
    await expect(p.call(['no_such_server', peer.name], atom('ping'))).rejects.toBeInstanceOf(ProcessExitError);
    expect(p.queueLength).toBe(0);
    p.exit();
  });
});

describe('monitors', () => {
  it('erl monitors a TS pid and gets DOWN with the exit reason', async () => {
    const watched = baton.spawn();
    const inbox = baton.spawn();
    await baton.erpc(peer.name, 'baton_dist_helper', 'monitor_and_report', [watched.pid, inbox.pid]);
    watched.exit(tuple(atom('shutdown'), atom('bye')));
    const got = (await inbox.receive(undefined, 10_000)) as Tuple;
    const down = got.elements[1] as Tuple;
    expect(down.elements[0]).toBe(atom('DOWN'));
    expect(termEquals(down.elements[3]!, watched.pid)).toBe(true);
    expect(termEquals(down.elements[4]!, tuple(atom('shutdown'), atom('bye')))).toBe(true);
    // Monitoring a TS pid that is already gone: DOWN noproc at once.
    await baton.erpc(peer.name, 'baton_dist_helper', 'monitor_and_report', [watched.pid, inbox.pid]);
    const again = (await inbox.receive(undefined, 10_000)) as Tuple;
    expect((again.elements[1] as Tuple).elements[4]).toBe(atom('noproc'));
    inbox.exit();
  });

  it('a TS process monitors a remote pid and a remote registered name', async () => {
    const p = baton.spawn();
    const remote = (await baton.eval(peer.name, 'spawn(fun() -> receive stop -> exit(done) end end).')) as Pid;
    const ref = p.monitor(remote);
    p.send(remote, atom('stop'));
    const down = (await p.receive((m) => (isTuple(m, atom('DOWN')) ? m : undefined), 10_000)) as Tuple;
    expect(termEquals(down.elements[1]!, ref)).toBe(true);
    expect(termEquals(down.elements[3]!, remote)).toBe(true);
    expect(down.elements[4]).toBe(atom('done'));

    await baton.eval(peer.name, 'register(named_victim, spawn(fun() -> receive stop -> exit(named_done) end end)).');
    const nref = p.monitor(['named_victim', peer.name]);
    p.send(['named_victim', peer.name], atom('stop'));
    const ndown = (await p.receive((m) => (isTuple(m, atom('DOWN')) ? m : undefined), 10_000)) as Tuple;
    expect(termEquals(ndown.elements[1]!, nref)).toBe(true);
    expect(termEquals(ndown.elements[3]!, tuple(atom('named_victim'), atom(peer.name)))).toBe(true);
    expect(ndown.elements[4]).toBe(atom('named_done'));

    const missing = p.monitor(['nobody_here', peer.name]);
    const mdown = (await p.receive((m) => (isTuple(m, atom('DOWN')) ? m : undefined), 10_000)) as Tuple;
    expect(termEquals(mdown.elements[1]!, missing)).toBe(true);
    expect(mdown.elements[4]).toBe(atom('noproc'));
    p.exit();
  });

  it('demonitor stops the DOWN', async () => {
    const p = baton.spawn();
    const remote = (await baton.eval(peer.name, 'spawn(fun() -> receive stop -> exit(done) end end).')) as Pid;
    const monitoredBy = async (): Promise<Term> =>
      ((await baton.erpc(peer.name, 'erlang', 'process_info', [remote, atom('monitored_by')])) as Tuple).elements[1]!;
    const ref = p.monitor(remote);
    await eventually(async () => termEquals(await monitoredBy(), [p.pid]), 10_000, 'the monitor on the peer');
    p.demonitor(ref);
    // The peer drops it, so it has no DOWN to send for it.
    await eventually(async () => termEquals(await monitoredBy(), []), 10_000, 'the demonitor on the peer');
    // A second monitor's DOWN comes from the same exit on the same connection: once it is
    // here, a DOWN for the first would be too.
    const second = p.monitor(remote);
    p.send(remote, atom('stop'));
    const down = (await p.receive(undefined, 10_000)) as Tuple;
    expect(down.elements[0]).toBe(atom('DOWN'));
    expect(termEquals(down.elements[1]!, second)).toBe(true);
    expect(p.queueLength).toBe(0);
    p.exit();
  });
});

describe('links and exit signals', () => {
  it('an erl process linked to a TS pid gets its exit', async () => {
    const ts = baton.spawn();
    const inbox = baton.spawn();
    await baton.erpc(peer.name, 'baton_dist_helper', 'link_and_report', [ts.pid, inbox.pid]);
    ts.exit(atom('ts_quit'));
    const got = (await inbox.receive(undefined, 10_000)) as Tuple;
    const exit = got.elements[1] as Tuple;
    expect(exit.elements[0]).toBe(atom('EXIT'));
    expect(termEquals(exit.elements[1]!, ts.pid)).toBe(true);
    expect(exit.elements[2]).toBe(atom('ts_quit'));
    inbox.exit();
  });

  it('an erl process that dies takes its linked TS process with it', async () => {
    const ts = baton.spawn();
    await baton.erpc(peer.name, 'baton_dist_helper', 'kill_in', [ts.pid, tuple(50, atom('erl_boom'))]);
    expect(await ts.exited).toBe(atom('erl_boom'));
    expect(ts.isAlive).toBe(false);
  });

  it('a trapping TS process gets {EXIT, Pid, Reason} instead of dying', async () => {
    const trapper = baton.spawn({ trapExit: true });
    const remote = (await baton.erpc(peer.name, 'baton_dist_helper', 'kill_in', [
      trapper.pid,
      tuple(50, atom('erl_boom')),
    ])) as Pid;
    const msg = (await trapper.receive(undefined, 10_000)) as Tuple;
    expect(msg.elements[0]).toBe(atom('EXIT'));
    expect(termEquals(msg.elements[1]!, remote)).toBe(true);
    expect(msg.elements[2]).toBe(atom('erl_boom'));
    trapper.exit();
  });

  it('a normal exit by a link is ignored by a process that does not trap exits', async () => {
    // Both are linked to, and monitor, the same remote process. Dying with an atom reason,
    // a BEAM process sends its link exits before its monitors' DOWNs (`twin`, trapping,
    // shows that order here), so once `calm` has its DOWN it has had the normal exit too.
    const calm = baton.spawn();
    const twin = baton.spawn({ trapExit: true });
    // It waits for one `go` from each, sent after their link and monitor (signals between
    // two processes keep their order), so both are in place when it exits.
    const remote = (await baton.eval(
      peer.name,
      'spawn(fun() -> receive go -> receive go -> exit(normal) end end end).',
    )) as Pid;
    for (const p of [calm, twin]) {
      p.link(remote);
      p.monitor(remote);
      p.send(remote, atom('go'));
    }
    const calmDown = (await calm.receive(undefined, 10_000)) as Tuple;
    expect(calmDown.elements[0]).toBe(atom('DOWN'));
    expect(calmDown.elements[4]).toBe(atom('normal'));
    expect(calm.isAlive).toBe(true);
    const first = (await twin.receive(undefined, 10_000)) as Tuple;
    expect(termEquals(first, tuple(atom('EXIT'), remote, atom('normal')))).toBe(true);
    expect(((await twin.receive(undefined, 10_000)) as Tuple).elements[0]).toBe(atom('DOWN'));
    calm.exit();
    twin.exit();
  });

  it('link from TS, then unlink (UNLINK_ID on OTP 25+): the peer drops the link', async () => {
    const ts = baton.spawn();
    const remote = (await baton.eval(peer.name, 'spawn(fun() -> receive {die, R} -> exit(R) end end).')) as Pid;
    ts.link(remote);
    await eventually(
      async () => {
        const links = (await baton.erpc(peer.name, 'erlang', 'process_info', [remote, atom('links')])) as Tuple;
        return Array.isArray(links.elements[1]) && (links.elements[1] as Term[]).some((l) => termEquals(l, ts.pid));
      },
      10_000,
      'link on the peer',
    );
    ts.unlink(remote);
    await eventually(
      async () => {
        const links = (await baton.erpc(peer.name, 'erlang', 'process_info', [remote, atom('links')])) as Tuple;
        return Array.isArray(links.elements[1]) && links.elements[1].length === 0;
      },
      10_000,
      'unlink on the peer',
    );
    // A monitor's DOWN comes after any link exit of the same death (see the test above):
    // once it is here, an exit would have arrived too.
    ts.monitor(remote);
    ts.send(remote, tuple(atom('die'), atom('after_unlink')));
    const down = (await ts.receive(undefined, 10_000)) as Tuple;
    expect(down.elements[0]).toBe(atom('DOWN'));
    expect(down.elements[4]).toBe(atom('after_unlink'));
    expect(ts.isAlive).toBe(true);
    ts.exit();
  });

  it('exit(TsPid, kill) from erl kills a TS process, even a trapping one', async () => {
    const ts = baton.spawn({ trapExit: true });
    await baton.erpc(peer.name, 'erlang', 'exit', [ts.pid, atom('kill')]).catch(() => undefined);
    await baton.eval(peer.name, 'ok.');
    expect(await ts.exited).toBe(atom('killed'));
  });

  it('a link to a TS pid that does not exist gives noproc', async () => {
    const ghost = baton.spawn();
    ghost.exit();
    const inbox = baton.spawn();
    await baton.erpc(peer.name, 'baton_dist_helper', 'link_and_report', [ghost.pid, inbox.pid]);
    const got = (await inbox.receive(undefined, 10_000)) as Tuple;
    expect((got.elements[1] as Tuple).elements[2]).toBe(atom('noproc'));
    inbox.exit();
  });
});

describe('node monitors', () => {
  it('node.monitorNode and process monitorNode fire when the peer dies', async () => {
    const victim = await startErl({ cookie: COOKIE, prefix: 'nodemon' });
    await baton.connect(victim.name);
    const mon = baton.monitorNode(victim.name);
    const p = baton.spawn();
    p.monitorNode(victim.name);
    const linked = baton.spawn({ trapExit: true });
    const remote = (await baton.eval(victim.name, 'spawn(fun() -> receive _ -> ok end end).')) as Pid;
    linked.link(remote);
    const mref = p.monitor(remote);
    victim.kill('SIGKILL');
    const down = await mon.down;
    expect(down.node).toBe(victim.name);
    expect(
      termEquals(
        await p.receive((m) => (isTuple(m, atom('nodedown')) ? m : undefined), 10_000),
        tuple(atom('nodedown'), atom(victim.name)),
      ),
    ).toBe(true);
    const pdown = (await p.receive((m) => (isTuple(m, atom('DOWN')) ? m : undefined), 10_000)) as Tuple;
    expect(termEquals(pdown.elements[1]!, mref)).toBe(true);
    expect(pdown.elements[4]).toBe(atom('noconnection'));
    const exit = (await linked.receive(undefined, 10_000)) as Tuple;
    expect(exit.elements[2]).toBe(atom('noconnection'));
    p.exit();
    linked.exit();
  });

  it('monitorNode of a node that cannot be reached fires at once', async () => {
    const mon = baton.monitorNode(`ghost_${process.pid}@${peer.name.split('@')[1]}`);
    const down = await mon.down;
    expect(down.reason).toMatch(/not registered/);
    void Reference;
  });
});

describe('receive robustness', () => {
  it('a matcher that throws fails that receive only; the message stays and the connection lives', async () => {
    const p = baton.spawn();
    const pending = p.receive(() => {
      throw new Error('matcher bug');
    }, 10_000);
    // Observed before the message can arrive: the message and the erpc reply may come in separate reads.
    const failed = expect(pending).rejects.toThrow('matcher bug');
    await baton.erpc(peer.name, 'baton_dist_helper', 'report_to', [p.pid, atom('kept')]);
    await failed;
    expect(await p.receive(undefined, 1000)).toBe(atom('kept'));
    expect(await baton.erpc(peer.name, 'erlang', 'node', [])).toBe(atom(peer.name));
    p.exit();
  });
});
