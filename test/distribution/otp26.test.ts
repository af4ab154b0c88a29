/**
 * OTP 26+ obligations that OTP 25 cannot exercise, checked with a scripted peer over a
 * real socket: UNLINK_ID must be acknowledged, V4 pids/ports/references must pass.
 */

import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Control, decodeControl, OP } from '../../src/distribution/control.js';
import { decodeFrame, encodeFrame } from '../../src/distribution/control-frames.js';
import { DFLAG, OUR_FLAGS } from '../../src/distribution/flags.js';
import { FrameReader } from '../../src/distribution/framing.js';
import { ClientHandshake } from '../../src/distribution/handshake.js';
import { runHandshake } from '../../src/distribution/handshake-io.js';
import type { Node } from '../../src/distribution/index.js';
import { atom, Pid, Port, Reference, type Term, type Tuple, termEquals, tuple } from '../../src/etf/index.js';
import { closeAllBatons, HOST, startBaton } from './helpers.js';

const COOKIE = 'otp26_cookie';
let baton: Node;

beforeAll(async () => {
  baton = await startBaton({ cookie: COOKIE });
});
afterAll(async () => {
  await closeAllBatons();
});

/** A scripted OTP 26 peer: handshake, then raw frames both ways. */
async function fakePeer(name: string, target: Node = baton) {
  const s: Socket = await new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port: target.port });
    sock.once('connect', () => resolve(sock));
    sock.once('error', reject);
  });
  const hs = await runHandshake(
    s,
    new ClientHandshake({ name, cookie: COOKIE, flags: OUR_FLAGS, creation: 0xfffffff0 }, target.name),
    5000,
  );
  const reader = new FrameReader(4, 1 << 24);
  const inbox: { ctl: Term; control: Control }[] = [];
  let wake: (() => void) | undefined;
  const onData = (chunk: Buffer): void => {
    reader.push(chunk);
    for (let f = reader.next(); f !== undefined; f = reader.next()) {
      if (f.length === 0) continue;
      const { ctl, payload } = decodeFrame(f);
      inbox.push({ ctl, control: decodeControl(ctl, payload) });
    }
    wake?.();
  };
  if (hs.leftover.length) onData(hs.leftover);
  s.on('data', onData);
  // runHandshake leaves the socket paused for whoever takes it over.
  s.resume();
  return {
    flags: hs.result.flags,
    send(ctl: Term, payload?: Term) {
      for (const b of encodeFrame(ctl, payload)) s.write(b);
    },
    async next(pred: (c: Control, ctl: Term) => boolean, timeoutMs = 5000): Promise<{ ctl: Term; control: Control }> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = inbox.findIndex((m) => pred(m.control, m.ctl));
        if (i >= 0) return inbox.splice(i, 1)[0]!;
        if (Date.now() > deadline) throw new Error('no matching frame');
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
    },
    close: () => s.destroy(),
    /** Stop reading: the kernel buffers fill, then baton's send queue grows. */
    pause: () => {
      s.off('data', onData);
      s.pause();
    },
  };
}

describe('OTP 26 obligations', () => {
  it('negotiates UNLINK_ID and V4_NC', async () => {
    const peer = await fakePeer(`otp26a_${process.pid}@${HOST}`);
    expect(peer.flags & DFLAG.UNLINK_ID).toBe(DFLAG.UNLINK_ID);
    expect(peer.flags & DFLAG.V4_NC).toBe(DFLAG.V4_NC);
    peer.close();
  });

  it('acknowledges UNLINK_ID with UNLINK_ID_ACK {36, Id, To, From} and drops the link', async () => {
    const name = `otp26b_${process.pid}@${HOST}`;
    const peer = await fakePeer(name);
    const ts = baton.spawn({ trapExit: true });
    const remote = new Pid(atom(name), 0xfffffff0, 0xfffffff1, 0xfffffff0);
    peer.send(tuple(OP.LINK, remote, ts.pid));
    const id = 2n ** 63n + 5n;
    peer.send(tuple(OP.UNLINK_ID, id, remote, ts.pid));
    const ack = await peer.next((c) => c.kind === 'unlink_id_ack');
    expect((ack.ctl as Tuple).elements[0]).toBe(OP.UNLINK_ID_ACK);
    expect(ack.control).toMatchObject({ kind: 'unlink_id_ack', id });
    if (ack.control.kind !== 'unlink_id_ack') throw new Error('unreachable');
    expect(termEquals(ack.control.from, ts.pid)).toBe(true);
    expect(termEquals(ack.control.to, remote)).toBe(true);
    // The link is gone: an exit from the remote pid no longer reaches the (trapping)
    // process. A message sent after it on the same connection is handled after it, so
    // once that message is in, an {'EXIT', ...} would be in the mailbox before it.
    peer.send(tuple(OP.EXIT, remote, ts.pid, atom('late')));
    peer.send(tuple(OP.SEND, atom(''), ts.pid), atom('after_exit'));
    expect(await ts.receive(undefined, 5000)).toBe(atom('after_exit'));
    expect(ts.queueLength).toBe(0);
    expect(ts.isAlive).toBe(true);
    // Our own unlink uses UNLINK_ID when the peer has it.
    ts.link(remote);
    await peer.next((c) => c.kind === 'link');
    ts.unlink(remote);
    const ours = await peer.next((c) => c.kind === 'unlink_id');
    expect((ours.ctl as Tuple).elements[0]).toBe(OP.UNLINK_ID);
    ts.exit();
    peer.close();
  });

  it('delivers messages with V4 pids, 64-bit ports and 5-word references, and replies with them intact', async () => {
    const name = `otp26c_${process.pid}@${HOST}`;
    const peer = await fakePeer(name);
    const ts = baton.spawn({ name: 'v4_box' });
    const bigPid = new Pid(atom(name), 0xfffffff0, 0xfffffff1, 0xfffffff0);
    const bigPort = new Port(atom(name), 0xffff_ffff_ffffn, 0xfffffff0);
    const bigRef = new Reference(atom(name), 0xfffffff0, [1, 2, 3, 4, 0xffffffff]);
    const msg = tuple(bigPid, bigPort, bigRef);
    peer.send(tuple(OP.REG_SEND, bigPid, atom(''), atom('v4_box')), msg);
    const got = await ts.receive(undefined, 5000);
    expect(termEquals(got, msg)).toBe(true);
    ts.send(bigPid, got);
    const back = await peer.next((c) => c.kind === 'send');
    if (back.control.kind !== 'send') throw new Error('unreachable');
    expect(termEquals(back.control.message, msg)).toBe(true);
    // Sending to a remote alias (a five-word reference) goes out as ALIAS_SEND.
    ts.send(bigRef, atom('to_alias'));
    const aliased = await peer.next((c) => c.kind === 'alias_send');
    if (aliased.control.kind !== 'alias_send') throw new Error('unreachable');
    expect(termEquals(aliased.control.alias, bigRef)).toBe(true);
    ts.exit();
    peer.close();
  });
});

describe('lifecycle', () => {
  it('spawn before start has finished is refused (no pid without a creation)', async () => {
    const { Node } = await import('../../src/distribution/index.js');
    const n = new Node({ name: `early_${process.pid}`, cookie: COOKIE, log: () => {} });
    expect(() => n.spawn()).toThrow(/start/);
    const starting = n.start();
    expect(() => n.spawn()).toThrow(/start/);
    await starting;
    const p = n.spawn();
    expect(p.pid.creation).toBe(n.creation);
    expect(n.creation).toBeGreaterThan(0);
    await n.close();
  });
});

describe('erpc against a scripted peer', () => {
  it('a call that times out before its spawn reply has its process killed when the reply comes', async () => {
    const name = `slowspawn_${process.pid}@${HOST}`;
    const peer = await fakePeer(name);
    const call = baton.erpc(name, 'm', 'f', [], { timeoutMs: 100 }).catch((e: unknown) => e);
    const req = await peer.next((c) => c.kind === 'spawn_request');
    if (req.control.kind !== 'spawn_request') throw new Error('unreachable');
    expect(req.control.module).toBe(atom('erpc'));
    expect(termEquals(req.control.options, [atom('monitor')])).toBe(true);
    expect(((await call) as Error).constructor.name).toBe('TimeoutError');
    expect(baton.stats().pendingCalls).toBe(0);
    const spawned = new Pid(atom(name), 77, 0, 0xfffffff0);
    peer.send(tuple(OP.SPAWN_REPLY, req.control.reqId, req.control.from, 2, spawned));
    const demon = await peer.next((c) => c.kind === 'demonitor');
    const kill = await peer.next((c) => c.kind === 'exit2');
    if (demon.control.kind !== 'demonitor' || kill.control.kind !== 'exit2') throw new Error('unreachable');
    expect(termEquals(demon.control.target, spawned)).toBe(true);
    expect(termEquals(demon.control.ref, req.control.reqId)).toBe(true);
    expect(kill.control.reason).toBe(atom('kill'));
    peer.close();
  });

  it('a spawn failure is an ErpcError {erpc, Reason}; a closed connection fails calls at once', async () => {
    const name = `failspawn_${process.pid}@${HOST}`;
    const peer = await fakePeer(name);
    const call = baton.erpc(name, 'm', 'f', []).catch((e: unknown) => e);
    const req = await peer.next((c) => c.kind === 'spawn_request');
    if (req.control.kind !== 'spawn_request') throw new Error('unreachable');
    peer.send(tuple(OP.SPAWN_REPLY, req.control.reqId, req.control.from, 0, atom('system_limit')));
    const err = (await call) as { code: string; reason: Term };
    expect(err.code).toBe('ERPC');
    expect(termEquals(err.reason, tuple(atom('erpc'), atom('system_limit')))).toBe(true);
    const hanging = baton.erpc(name, 'm', 'f', []).catch((e: unknown) => e);
    await peer.next((c) => c.kind === 'spawn_request');
    peer.close();
    expect(((await hanging) as { code: string }).code).toBe('NODE_DOWN');
  });
});

it('inspecting a node does not show its cookie', async () => {
  const { inspect } = await import('node:util');
  expect(inspect(baton, { depth: 5 })).not.toContain(COOKIE);
});

describe('a peer that stops reading', () => {
  it('is dropped once the send queue passes maxSendQueueBytes, instead of growing memory', async () => {
    const small = await startBaton({ cookie: COOKIE, maxSendQueueBytes: 8 * 1024 * 1024 });
    const name = `deaf_${process.pid}@${HOST}`;
    const peer = await fakePeer(name, small);
    peer.pause();
    const down = new Promise<string>((r) => small.once('nodedown', (_n: string, reason: string) => r(reason)));
    const p = small.spawn();
    const chunk = Buffer.alloc(1024 * 1024, 1);
    const target = new Pid(atom(name), 1, 0, 0xfffffff0);
    for (let i = 0; i < 200 && small.isConnected(name); i++) {
      p.send(target, chunk);
      await new Promise((r) => setImmediate(r));
    }
    expect(await down).toMatch(/send queue over/);
    expect(small.isConnected(name)).toBe(false);
    peer.close();
  });
});
