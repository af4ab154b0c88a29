/**
 * The pure parts of the distribution layer, without sockets: EPMD messages, framing,
 * both handshake state machines, flags, and control messages (OTP 26 forms included).
 */
import { describe, expect, it } from 'vitest';
import { type Control, decodeControl, encodeControl, OP } from '../../src/distribution/control.js';
import { decodeFrame, encodeFrame, SpawnRequestFrames } from '../../src/distribution/control-frames.js';
import {
  decodeAlive2Resp,
  decodeNamesResp,
  decodePort2Resp,
  encodeAlive2Req,
  encodeNamesReq,
  encodePortPlease2Req,
} from '../../src/distribution/epmd.js';
import { erpcOutcome, spawnOptions } from '../../src/distribution/erpc.js';
import {
  CookieMismatchError,
  ErpcError,
  HandshakeError,
  NodeDownError,
  ProtocolError,
} from '../../src/distribution/errors.js';
import { DFLAG, expandFlags, MANDATORY_25, negotiate, OUR_FLAGS } from '../../src/distribution/flags.js';
import { FrameReader, FrameTooLargeError, frame2 } from '../../src/distribution/framing.js';
import {
  AlreadyConnected,
  ClientHandshake,
  digest,
  type HandshakeIdentity,
  type HandshakeResult,
  ServerHandshake,
  SimultaneousConnectLost,
} from '../../src/distribution/handshake.js';
import { chardataToString, ioAction } from '../../src/distribution/io-server.js';
import { SlabReads } from '../../src/distribution/slab.js';
import {
  atom,
  decode,
  encode,
  improperList,
  Pid,
  Port,
  Reference,
  type Term,
  termEquals,
  tuple,
} from '../../src/etf/index.js';

describe('EPMD codec', () => {
  it('encodes ALIVE2_REQ as erl_epmd does', () => {
    const b = encodeAlive2Req({ port: 0x1234, name: 'baton' });
    expect([...b]).toEqual([0, 18, 120, 0x12, 0x34, 77, 0, 0, 6, 0, 6, 0, 5, ...Buffer.from('baton'), 0, 0]);
  });
  it('decodes ALIVE2_X_RESP incrementally, with 32-bit creation', () => {
    expect(decodeAlive2Resp(Buffer.from([118]))).toBeUndefined();
    expect(decodeAlive2Resp(Buffer.from([118, 0, 0xaa, 0xbb]))).toBeUndefined();
    expect(decodeAlive2Resp(Buffer.from([118, 0, 0xaa, 0xbb, 0xcc, 0xdd]))).toEqual({
      result: 0,
      creation: 0xaabbccdd,
    });
    expect(decodeAlive2Resp(Buffer.from([118, 1]))).toEqual({ result: 1, creation: 0 });
    expect(decodeAlive2Resp(Buffer.from([121, 0, 0, 3]))).toEqual({ result: 0, creation: 3 });
    expect(() => decodeAlive2Resp(Buffer.from([7]))).toThrow(/unexpected EPMD response/);
  });
  it('encodes PORT_PLEASE2_REQ and decodes PORT2_RESP', () => {
    expect([...encodePortPlease2Req('ab')]).toEqual([0, 3, 122, 97, 98]);
    const resp = Buffer.from([119, 0, 0x10, 0x00, 77, 0, 0, 6, 0, 5, 0, 2, 97, 98, 0, 0]);
    expect(decodePort2Resp(resp.subarray(0, 10))).toBeUndefined();
    expect(decodePort2Resp(resp)).toMatchObject({
      found: true,
      port: 4096,
      nodeType: 77,
      highestVersion: 6,
      lowestVersion: 5,
      name: 'ab',
    });
    expect(decodePort2Resp(Buffer.from([119, 1]))).toEqual({ found: false, result: 1 });
  });
  it('keeps U+FEFF at the start of a name (no byte-order mark is stripped)', () => {
    const name = Buffer.from('\uFEFFab', 'utf8');
    const resp = Buffer.from([119, 0, 0x10, 0x00, 77, 0, 0, 6, 0, 5, 0, name.length, ...name, 0, 0]);
    expect(decodePort2Resp(resp)).toMatchObject({ found: true, name: '\uFEFFab' });
    const names = Buffer.concat([Buffer.from([0, 0, 0x11, 0x11]), Buffer.from('name \uFEFFa at port 1\n', 'utf8')]);
    expect(decodeNamesResp(names).names).toEqual([{ name: '\uFEFFa', port: 1 }]);
  });
  it('decodes NAMES', () => {
    expect([...encodeNamesReq()]).toEqual([0, 1, 110]);
    const body = Buffer.concat([
      Buffer.from([0, 0, 0x11, 0x11]),
      Buffer.from('name a at port 1\nname b_c at port 65000\n'),
    ]);
    expect(decodeNamesResp(body)).toEqual({
      epmdPort: 4369,
      names: [
        { name: 'a', port: 1 },
        { name: 'b_c', port: 65000 },
      ],
    });
  });
});

describe('framing', () => {
  it('reassembles frames split anywhere, including ticks', () => {
    const frames = [Buffer.from('hello'), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from('x')];
    const wire = Buffer.concat(
      frames
        .map((f) => Buffer.concat([Buffer.from([0, 0, 0, 0]).fill(0), f]))
        .map((b, i) => {
          b.writeUInt32BE(frames[i]!.length, 0);
          return b;
        }),
    );
    for (const step of [1, 3, 4096, wire.length]) {
      const r = new FrameReader(4, 1 << 20);
      const got: Buffer[] = [];
      for (let i = 0; i < wire.length; i += step) {
        r.push(wire.subarray(i, i + step));
        for (let f = r.next(); f !== undefined; f = r.next()) got.push(Buffer.from(f));
      }
      expect(got.map((g) => g.length)).toEqual([5, 0, 70_000, 1]);
      expect(got[2]!.every((b) => b === 7)).toBe(true);
      expect(r.pending).toBe(0);
    }
  });
  it('joins chunks that lie next to each other in memory: the frame is a view, not a copy', () => {
    const wire = Buffer.alloc(4 + 70_000, 5);
    wire.writeUInt32BE(70_000, 0);
    const r = new FrameReader(4, 1 << 20);
    for (let i = 0; i < wire.length; i += 4096) r.push(wire.subarray(i, i + 4096));
    const f = r.next()!;
    expect(f.length).toBe(70_000);
    expect(f.buffer).toBe(wire.buffer);
    expect(f.byteOffset).toBe(wire.byteOffset + 4);
    // Separate buffers (copies of the same bytes) are reassembled as before.
    const s = new FrameReader(4, 1 << 20);
    for (let i = 0; i < wire.length; i += 4096) s.push(Buffer.from(wire.subarray(i, i + 4096)));
    expect(s.next()!.equals(f)).toBe(true);
    expect(s.pending).toBe(0);
  });
  it('refuses an oversized declared length before buffering it', () => {
    const r = new FrameReader(4, 1000);
    r.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2]));
    expect(() => r.next()).toThrow(FrameTooLargeError);
    const h = new FrameReader(2, 10);
    h.push(frame2(Buffer.alloc(11)));
    expect(() => h.next()).toThrow(/exceeds the limit/);
  });
  it('returns frames packed several to a chunk, headers split across chunks, byte for byte', () => {
    const bodies = [Buffer.from('one'), Buffer.alloc(0), Buffer.from('three!'), Buffer.alloc(300, 3), Buffer.from('x')];
    const wire = Buffer.concat(
      bodies.map((b) => {
        const h = Buffer.alloc(4);
        h.writeUInt32BE(b.length);
        return Buffer.concat([h, b]);
      }),
    );
    for (const cuts of [[1, 2, 3], [5, 6], [7, 9, 17, 100], [wire.length - 1], [2, 4, 8, 16, 32, 64, 128, 256]]) {
      const r = new FrameReader(4, 1 << 20);
      const got: Buffer[] = [];
      let from = 0;
      for (const to of [...cuts, wire.length]) {
        r.push(wire.subarray(from, to));
        from = to;
        for (let f = r.next(); f !== undefined; f = r.next()) got.push(Buffer.from(f));
      }
      expect(got).toEqual(bodies);
      expect(r.pending).toBe(0);
    }
  });
  it('hands over the remainder', () => {
    const r = new FrameReader(2, 100);
    r.push(Buffer.concat([frame2(Buffer.from('ab')), Buffer.from([0, 0, 0, 9, 1])]));
    expect(r.next()?.toString()).toBe('ab');
    expect([...r.remainder()]).toEqual([0, 0, 0, 9, 1]);
  });
  it('says whether it still holds bytes of a buffer', () => {
    const wire = Buffer.from([0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 2, 9]);
    const other = Buffer.from([9]);
    const r = new FrameReader(4, 100);
    r.push(wire);
    expect(r.holds(wire.buffer)).toBe(true);
    expect([...r.next()!]).toEqual([1, 2, 3]);
    expect(r.next()).toBeUndefined();
    expect(r.holds(wire.buffer)).toBe(true);
    r.push(other);
    expect([...r.next()!]).toEqual([9, 9]);
    expect(r.holds(wire.buffer)).toBe(false);
    expect(r.holds(other.buffer)).toBe(false);
  });
});

describe('slab reads', () => {
  /** Reads of `n` bytes until one lands outside `buf`; returns that read's slab. */
  function useUp(slab: SlabReads, buf: ArrayBufferLike): ArrayBufferLike {
    for (let i = 0; i < 100; i++) {
      const region = slab.next();
      const got = slab.filled(65_536, region);
      if (got.buffer !== buf) return got.buffer;
    }
    throw new Error('the slab never turned');
  }

  it('turns back to the previous slab once nothing points into it', () => {
    const slab = new SlabReads();
    slab.track(() => false);
    const a = slab.filled(10, slab.next()).buffer;
    const b = useUp(slab, a);
    expect(b).not.toBe(a);
    expect(useUp(slab, b)).toBe(a);
    expect(useUp(slab, a)).toBe(b);
  });

  it('never writes again into a slab that a decoded binary points into', () => {
    const slab = new SlabReads();
    slab.track(() => false);
    const a = slab.filled(10, slab.next()).buffer;
    slab.pin(a);
    const b = useUp(slab, a);
    const c = useUp(slab, b);
    expect(c).not.toBe(a);
    // Pinning something that is not a slab (a frame reassembled by copy) changes nothing.
    slab.pin(new ArrayBuffer(8));
    expect(useUp(slab, c)).toBe(b);
  });

  it('does not reuse a slab that still holds part of an incomplete frame, nor any before it is told how to ask', () => {
    const untracked = new SlabReads();
    const x = untracked.filled(10, untracked.next()).buffer;
    const y = useUp(untracked, x);
    expect(useUp(untracked, y)).not.toBe(x);

    const held = new Set<ArrayBufferLike>();
    const slab = new SlabReads();
    slab.track((buf) => held.has(buf));
    const a = slab.filled(10, slab.next()).buffer;
    held.add(a);
    const b = useUp(slab, a);
    const c = useUp(slab, b);
    expect(c).not.toBe(a);
    held.delete(a);
    expect(useUp(slab, c)).toBe(b);
  });

  it('decodes with binaries below 4 KiB copied', () => {
    const { views } = decodeFrame(
      Buffer.concat([Buffer.from([112]), encode(tuple(Buffer.alloc(4095), Buffer.alloc(4096)))]),
      SlabReads.decodeOptions,
    );
    expect(views).toBe(1);
  });
});

const client: HandshakeIdentity = { name: 'baton@host', cookie: 'secret', flags: OUR_FLAGS, creation: 11 };
const server: HandshakeIdentity = {
  name: 'peer@host',
  cookie: 'secret',
  flags: OUR_FLAGS | DFLAG.PUBLISHED,
  creation: 22,
};

function converse(c: ClientHandshake, s: ServerHandshake) {
  let toServer = [c.start()];
  let clientDone: HandshakeResult | undefined;
  let serverDone: HandshakeResult | undefined;
  for (let round = 0; round < 10 && toServer.length > 0; round++) {
    const toClient: Buffer[] = [];
    for (const m of toServer) {
      const step = s.receive(m);
      toClient.push(...step.send);
      serverDone ??= step.done;
    }
    toServer = [];
    for (const m of toClient) {
      const step = c.receive(m);
      toServer.push(...step.send);
      clientDone ??= step.done;
    }
  }
  return { clientDone, serverDone };
}

describe('handshake v6', () => {
  it('digest is md5(cookie ++ decimal challenge), as dist_util:gen_digest/2', () => {
    // erlang:md5([atom_to_list(secretcookie) | integer_to_list(4000000000)]) on OTP 25
    expect(digest(4_000_000_000, 'secretcookie').toString('hex').toUpperCase()).toBe(
      'F6B5C4A858BDE253867E716E0D31580E',
    );
  });
  it('client and server agree, each learns the other', () => {
    const c = new ClientHandshake(client, 'peer@host', () => 123);
    const s = new ServerHandshake(
      server,
      () => 'ok',
      undefined,
      () => 0xfffffffe,
    );
    const { clientDone, serverDone } = converse(c, s);
    expect(clientDone).toMatchObject({ peerName: 'peer@host', peerCreation: 22 });
    expect(serverDone).toMatchObject({ peerName: 'baton@host', peerCreation: 11 });
    // Hidden: our name message never carries PUBLISHED, and the negotiated set drops it.
    expect(clientDone!.flags & DFLAG.PUBLISHED).toBe(0n);
    expect(clientDone!.flags & DFLAG.UNLINK_ID).toBe(DFLAG.UNLINK_ID);
  });
  it('name message layout: N, flags:64, creation:32, len:16, name', () => {
    const m = new ClientHandshake(client, 'peer@host').start();
    expect(m[0]).toBe(0x4e);
    expect(m.readBigUInt64BE(1)).toBe(OUR_FLAGS);
    expect(m.readUInt32BE(9)).toBe(11);
    expect(m.readUInt16BE(13)).toBe(10);
    expect(m.subarray(15).toString()).toBe('baton@host');
  });
  it('a wrong cookie is a CookieMismatchError on the server, never naming the cookie', () => {
    const c = new ClientHandshake({ ...client, cookie: 'wrong-cookie-xyz' }, 'peer@host');
    const s = new ServerHandshake(server, () => 'ok');
    let err: unknown;
    try {
      converse(c, s);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CookieMismatchError);
    expect((err as Error).message).toMatch(/cookie was wrong/);
    expect((err as Error).message).not.toContain('wrong-cookie-xyz');
    expect((err as Error).message).not.toContain('secret');
  });
  it('a wrong ack is a CookieMismatchError on the client', () => {
    const c = new ClientHandshake(client, 'peer@host', () => 5);
    c.receive(Buffer.from('sok'));
    const challenge = Buffer.alloc(19 + 9);
    challenge[0] = 0x4e;
    challenge.writeBigUInt64BE(OUR_FLAGS, 1);
    challenge.writeUInt32BE(77, 9);
    challenge.writeUInt32BE(1, 13);
    challenge.writeUInt16BE(9, 17);
    challenge.write('peer@host', 19);
    const reply = c.receive(challenge).send[0]!;
    expect(reply.subarray(5).equals(digest(77, 'secret'))).toBe(true);
    const ack = Buffer.concat([Buffer.from('a'), digest(5, 'other')]);
    expect(() => c.receive(ack)).toThrow(CookieMismatchError);
  });
  it('statuses: nok loses a simultaneous connect, alive is answered true, not_allowed refuses', () => {
    expect(() => new ClientHandshake(client, 'peer@host').receive(Buffer.from('snok'))).toThrow(
      SimultaneousConnectLost,
    );
    expect(new ClientHandshake(client, 'peer@host').receive(Buffer.from('salive')).send[0]!.toString()).toBe('strue');
    // Already connected (the peer dialed us meanwhile): decline, keep that connection.
    const declined = new ClientHandshake(client, 'peer@host', undefined, () => false).receive(Buffer.from('salive'));
    expect(declined.send.map(String)).toEqual(['sfalse']);
    expect(declined.fail).toBeInstanceOf(AlreadyConnected);
    expect(() => new ClientHandshake(client, 'peer@host').receive(Buffer.from('snot_allowed'))).toThrow(HandshakeError);
    const s = new ServerHandshake(server, () => 'nok');
    expect(s.receive(new ClientHandshake(client, 'peer@host').start()).send.map(String)).toEqual(['snok']);
  });
  it('server: alive asks the client, and replaces the old connection on true', () => {
    let replaced = '';
    const s = new ServerHandshake(
      server,
      () => 'alive',
      (n) => (replaced = n),
    );
    expect(s.receive(new ClientHandshake(client, 'peer@host').start()).send.map(String)).toEqual(['salive']);
    const step = s.receive(Buffer.from('strue'));
    expect(step.send[0]![0]).toBe(0x4e);
    // Not yet: only a correct challenge reply may replace the connection.
    expect(replaced).toBe('');
    const challenge = step.send[0]!.readUInt32BE(9);
    const bad = Buffer.concat([Buffer.from('r'), Buffer.alloc(4), digest(challenge, 'wrong')]);
    const stranger = new ServerHandshake(
      server,
      () => 'alive',
      (n) => (replaced = `stranger ${n}`),
      () => challenge,
    );
    stranger.receive(new ClientHandshake(client, 'peer@host').start());
    stranger.receive(Buffer.from('strue'));
    expect(() => stranger.receive(bad)).toThrow(CookieMismatchError);
    expect(replaced).toBe('');
    const good = Buffer.concat([Buffer.from('r'), Buffer.alloc(4), digest(challenge, 'secret')]);
    expect(s.receive(good).done?.peerName).toBe('baton@host');
    expect(replaced).toBe('baton@host');
  });
  it('keeps U+FEFF at the start of a node name in either direction (no byte-order mark is stripped)', () => {
    const bomServer = { ...server, name: '\uFEFFpeer@host' };
    const c = new ClientHandshake(client, '\uFEFFpeer@host', () => 1);
    const s = new ServerHandshake(bomServer, () => 'ok');
    expect(converse(c, s).clientDone?.peerName).toBe('\uFEFFpeer@host');
    // A server that dropped the mark would take this dialer for baton@host.
    const bomClient = new ClientHandshake({ ...client, name: '\uFEFFbaton@host' }, 'peer@host');
    let seen: string | undefined;
    try {
      seen = new ServerHandshake(server, (name) => {
        seen = name;
        return 'ok';
      }).receive(bomClient.start()).done?.peerName;
    } catch (err) {
      expect((err as Error).message).toContain('\uFEFFbaton@host');
    }
    if (seen !== undefined) expect(seen).toBe('\uFEFFbaton@host');
  });
  it('refuses peers without the OTP 25 mandatory flags and malformed names', () => {
    const old = new ClientHandshake({ ...client, flags: DFLAG.EXTENDED_REFERENCES }, 'peer@host').start();
    expect(() => new ServerHandshake(server, () => 'ok').receive(old)).toThrow(/mandatory distribution flags/);
    const noHost = new ClientHandshake({ ...client, name: 'justname' }, 'peer@host').start();
    expect(() => new ServerHandshake(server, () => 'ok').receive(noHost)).toThrow(/invalid node name/);
    expect(() => new ServerHandshake(server, () => 'ok').receive(Buffer.from('n\x00\x05'))).toThrow(HandshakeError);
  });
});

describe('flags', () => {
  it('mandatory OTP 25 set is 0x01070F94', () => {
    expect(MANDATORY_25).toBe(0x01070f94n);
  });
  it('baton is hidden and offers monitors, spawn, alias, UNLINK_ID, V4_NC', () => {
    expect(OUR_FLAGS & DFLAG.PUBLISHED).toBe(0n);
    for (const f of [
      DFLAG.DIST_MONITOR,
      DFLAG.DIST_MONITOR_NAME,
      DFLAG.SPAWN,
      DFLAG.ALIAS,
      DFLAG.UNLINK_ID,
      DFLAG.V4_NC,
      DFLAG.EXIT_PAYLOAD,
    ]) {
      expect(OUR_FLAGS & f).toBe(f);
    }
    expect(OUR_FLAGS & (DFLAG.ATOM_CACHE | DFLAG.DIST_HDR_ATOM_CACHE | DFLAG.FRAGMENTS)).toBe(0n);
  });
  it('expands MANDATORY_25_DIGEST and negotiates the intersection', () => {
    expect(expandFlags(DFLAG.MANDATORY_25_DIGEST) & MANDATORY_25).toBe(MANDATORY_25);
    expect(negotiate(OUR_FLAGS, DFLAG.MANDATORY_25_DIGEST | DFLAG.SPAWN) & DFLAG.SPAWN).toBe(DFLAG.SPAWN);
    expect(negotiate(OUR_FLAGS, DFLAG.MANDATORY_25_DIGEST) & DFLAG.EXIT_PAYLOAD).toBe(0n);
  });
});

const me = atom('baton@host');
const them = atom('peer@host');
const p1 = new Pid(me, 1, 0, 7);
const p2 = new Pid(them, 90, 0, 8);
const r1 = new Reference(them, 8, [1, 2, 3]);
// OTP 26+ (V4_NC): references up to 5 words, pid ids and serials of 32 bits, ports of 64 bits.
const r5 = new Reference(them, 0xfffffff0, [0xffffffff, 1, 2, 3, 4]);
const bigPid = new Pid(them, 0xfffffff0, 0xfffffff1, 0xfffffff2);
const bigPort = new Port(them, 0xffff_ffff_ffffn, 5);

function roundTrip(msg: Control, flags: bigint): Control {
  const bufs = encodeControl(msg, flags);
  const frame = Buffer.concat(encodeFrame(bufs.ctl, bufs.payload));
  expect(frame.readUInt32BE(0)).toBe(frame.length - 4);
  const { ctl, payload } = decodeFrame(frame.subarray(4));
  return decodeControl(ctl, payload);
}

describe('control messages', () => {
  const all: Control[] = [
    { kind: 'link', from: p1, to: p2 },
    { kind: 'unlink_id', id: 77, from: p1, to: p2 },
    { kind: 'unlink_id_ack', id: 77, from: p2, to: p1 },
    { kind: 'send', from: p1, to: p2, message: tuple(atom('hi'), bigPort, r5, bigPid) },
    { kind: 'reg_send', from: p1, name: atom('rex'), message: [1, 2] },
    { kind: 'alias_send', from: p1, alias: r5, message: atom('x') },
    { kind: 'exit', from: p1, to: p2, reason: tuple(atom('shutdown'), r1) },
    { kind: 'exit2', from: p1, to: p2, reason: atom('kill') },
    { kind: 'monitor', from: p1, target: atom('named'), ref: r1 },
    { kind: 'demonitor', from: p1, target: p2, ref: r1 },
    { kind: 'monitor_exit', from: atom('named'), to: p1, ref: r5, reason: atom('noproc') },
    {
      kind: 'spawn_request',
      reqId: r1,
      from: p1,
      groupLeader: p1,
      module: atom('erpc'),
      fun: atom('execute_call'),
      arity: 4,
      options: [atom('monitor')],
      args: [r1, atom('m'), atom('f'), []],
    },
    { kind: 'spawn_reply', reqId: r5, to: p1, flags: 2, result: bigPid },
  ];
  for (const flags of [OUR_FLAGS, MANDATORY_25]) {
    it(`round-trips every kind (${flags === OUR_FLAGS ? 'EXIT_PAYLOAD' : 'no EXIT_PAYLOAD'})`, () => {
      for (const m of all) {
        const back = roundTrip(m, flags);
        expect(back.kind).toBe(m.kind);
        for (const [k, v] of Object.entries(m)) {
          // Without SEND_SENDER the sender is not on the wire.
          if (m.kind === 'send' && k === 'from' && flags === MANDATORY_25) continue;
          expect(termEquals((back as unknown as Record<string, Term>)[k]!, v as Term), `${m.kind}.${k}`).toBe(true);
        }
      }
    });
  }
  it('uses the payload exit forms only with EXIT_PAYLOAD, and SEND_SENDER only with SEND_SENDER', () => {
    const exit: Control = { kind: 'exit', from: p1, to: p2, reason: atom('x') };
    expect(encodeControl(exit, OUR_FLAGS).ctl.elements[0]).toBe(OP.PAYLOAD_EXIT);
    expect(encodeControl(exit, MANDATORY_25).ctl.elements[0]).toBe(OP.EXIT);
    const send: Control = { kind: 'send', from: p1, to: p2, message: 1 };
    expect(encodeControl(send, OUR_FLAGS).ctl.elements[0]).toBe(OP.SEND_SENDER);
    expect(encodeControl(send, MANDATORY_25).ctl.elements[0]).toBe(OP.SEND);
  });
  it('decodes trace-token variants and OTP 26 UNLINK_ID exactly as OTP writes them', () => {
    const tt = atom('token');
    expect(decodeControl(tuple(OP.SEND_TT, atom(''), p1, tt), 5)).toMatchObject({ kind: 'send', to: p1, message: 5 });
    expect(decodeControl(tuple(OP.REG_SEND_TT, p2, atom(''), atom('n'), tt), 5)).toMatchObject({
      kind: 'reg_send',
      name: atom('n'),
    });
    expect(decodeControl(tuple(OP.EXIT2_TT, p2, p1, tt, atom('r')), undefined)).toMatchObject({
      kind: 'exit2',
      reason: atom('r'),
    });
    expect(decodeControl(tuple(OP.UNLINK_ID, 2n ** 64n - 1n, p2, p1), undefined)).toMatchObject({
      kind: 'unlink_id',
      id: 2n ** 64n - 1n,
    });
  });
  it('refuses malformed control messages', () => {
    const bad: [Term, Term | undefined][] = [
      [atom('x'), undefined],
      [tuple(), undefined],
      [tuple(OP.LINK, p1), undefined],
      [tuple(OP.LINK, p1, atom('notpid')), undefined],
      [tuple(OP.SEND, atom(''), p1), undefined],
      [tuple(OP.LINK, p1, p2), 1],
      [tuple(99, p1, p2), undefined],
      [tuple(OP.SPAWN_REQUEST, r1, p1, p1, atom('mfa'), []), []],
    ];
    for (const [ctl, payload] of bad) expect(() => decodeControl(ctl, payload)).toThrow(ProtocolError);
    expect(() => decodeFrame(Buffer.from([131, 68]))).toThrow(/atom cache/);
    const ok = Buffer.concat([Buffer.from([112]), encode(tuple(OP.LINK, p1, p2))]);
    expect(() => decodeFrame(Buffer.concat([ok, encode(1), Buffer.from([0])]))).toThrow(/trailing/);
  });
});

describe('erpc results', () => {
  const res = new Reference(me, 7, [9, 9, 9]);
  it('maps the exit reason of erpc:execute_call/4', () => {
    expect(erpcOutcome(tuple(res, atom('return'), 42), res, 'n')).toEqual({ ok: true, value: 42 });
    const t = erpcOutcome(tuple(res, atom('throw'), atom('x')), res, 'n');
    expect(!t.ok && t.error instanceof ErpcError && t.error.class).toBe('throw');
    const e = erpcOutcome(tuple(res, atom('error'), atom('badarg'), [tuple(atom('m'), atom('f'), 1, [])]), res, 'n');
    expect(!e.ok && e.error instanceof ErpcError && e.error.remoteStack.length).toBe(1);
    const down = erpcOutcome(atom('noconnection'), res, 'n');
    expect(!down.ok && down.error).toBeInstanceOf(NodeDownError);
    const killed = erpcOutcome(atom('killed'), res, 'n');
    expect(!killed.ok && killed.error instanceof ErpcError && killed.error.class).toBe('exit');
    // Someone else's Ref: not our answer.
    const other = erpcOutcome(tuple(new Reference(me, 7, [1, 1, 1]), atom('return'), 1), res, 'n');
    expect(other.ok).toBe(false);
  });
  it('reads spawn options', () => {
    expect(spawnOptions([tuple(atom('reply'), atom('error_only')), atom('monitor')])).toEqual({
      monitor: true,
      link: false,
    });
    expect(spawnOptions([atom('link'), tuple(atom('monitor'), [])])).toEqual({ monitor: true, link: true });
  });
});

describe('io server requests', () => {
  const from = p2;
  it('answers put_chars with the text, io:format by apply, input with eof, unknown with an error', () => {
    expect(
      ioAction(tuple(atom('io_request'), from, 1, tuple(atom('put_chars'), atom('unicode'), Buffer.from('héllo\n')))),
    ).toMatchObject({
      kind: 'reply',
      reply: atom('ok'),
      output: 'héllo\n',
    });
    expect(
      ioAction(
        tuple(
          atom('io_request'),
          from,
          1,
          tuple(atom('put_chars'), atom('unicode'), atom('io_lib'), atom('format'), [[126, 112], [1]]),
        ),
      ),
    ).toMatchObject({ kind: 'apply', module: atom('io_lib'), fun: atom('format') });
    expect(ioAction(tuple(atom('io_request'), from, 1, tuple(atom('get_line'), atom('unicode'), [])))).toMatchObject({
      reply: atom('eof'),
    });
    expect(ioAction(tuple(atom('io_request'), from, 1, atom('what')))).toMatchObject({
      reply: tuple(atom('error'), atom('request')),
    });
    expect(ioAction(atom('junk'))).toEqual({ kind: 'ignore' });
  });
  it('flattens chardata', () => {
    expect(chardataToString([104, [Buffer.from('é')], [[]], 33])).toBe('hé!');
    expect(chardataToString([Buffer.from([0xe9])], atom('latin1'))).toBe('é');
    expect(chardataToString([atom('x')])).toBeUndefined();
  });
  it('flattens chardata nested 100,000 deep, as unicode:characters_to_list does', () => {
    let data: Term = [Buffer.from('end')];
    for (let i = 0; i < 100_000; i++) data = [104, data, improperList([33], Buffer.from('.'))];
    const text = chardataToString(data);
    expect(text?.length).toBe(100_000 * 3 + 3);
    expect(text?.startsWith('hhh')).toBe(true);
    expect(text?.slice(99_999, 100_006)).toBe('hend!.!');
  });
});

it('decode(encode()) keeps V4 references intact (ETF sanity for the dist layer)', () => {
  expect(termEquals(decode(encode(r5)), r5)).toBe(true);
  expect(termEquals(decode(encode(bigPort)), bigPort)).toBe(true);
});

describe('zero-copy payloads', () => {
  it('large binaries are written as themselves and decode to the same term', () => {
    const big = Buffer.alloc(100_000, 3);
    const mid = Buffer.alloc(20_000, 4);
    const payload: Term = [r1, atom('m'), atom('f'), [big, tuple(1, mid, Buffer.from('small')), [], charlistOf(300)]];
    const parts = encodeFrame(tuple(OP.SEND, atom(''), p2), payload);
    expect(parts.some((b) => b === big)).toBe(true);
    expect(parts.some((b) => b === mid)).toBe(true);
    const frame = Buffer.concat(parts);
    expect(frame.readUInt32BE(0)).toBe(frame.length - 4);
    const { payload: back } = decodeFrame(frame.subarray(4));
    expect(termEquals(back!, payload)).toBe(true);
    // What the BEAM would write for the same term (canonical encoding) decodes the same.
    expect(termEquals(decode(encode(payload)), back!)).toBe(true);
  });
});

describe('spawn request frames', () => {
  const me = atom('baton@host');
  const caller = new Pid(me, 1, 0, 11);
  const leader = new Pid(me, 2, 0, 11);
  const request = (id: number, fun: string, args: Term[]): Extract<Control, { kind: 'spawn_request' }> => ({
    kind: 'spawn_request',
    reqId: new Reference(me, 11, [id, id + 1, id + 2]),
    from: caller,
    groupLeader: leader,
    module: atom('erpc'),
    fun: atom('execute_call'),
    arity: 4,
    options: MONITOR,
    args: [new Reference(me, 11, [9, 9, 9]), atom('m'), atom(fun), args],
  });
  const MONITOR = [atom('monitor')];
  const generic = (msg: Control): Buffer => {
    const { ctl, payload } = encodeControl(msg, OUR_FLAGS);
    return Buffer.concat(encodeFrame(ctl, payload));
  };

  it('writes the bytes the generic encoder writes, for each request id, argument and function', () => {
    const frames = new SpawnRequestFrames();
    const big = Buffer.alloc(70_000, 5);
    for (const msg of [
      request(1, 'f', [atom('ok')]),
      request(0x3ffff, 'f', [1, 2]),
      request(5, 'g', []),
      request(6, 'g', [big, 1]),
    ]) {
      const parts = frames.frame(msg);
      expect(Buffer.concat(parts)).toEqual(generic(msg));
      const { ctl, payload } = decodeFrame(Buffer.concat(parts).subarray(4));
      expect(decodeControl(ctl, payload)).toMatchObject({ kind: 'spawn_request', reqId: msg.reqId });
    }
    // A large binary argument is written as itself, not copied.
    expect(frames.frame(request(7, 'g', [big])).some((b) => b === big)).toBe(true);
  });
});

function charlistOf(n: number): number[] {
  return Array.from({ length: n }, (_, i) => 97 + (i % 26));
}

it('an empty {requests, []} batch is still answered', () => {
  expect(ioAction(tuple(atom('io_request'), p2, 9, tuple(atom('requests'), [])))).toMatchObject({
    kind: 'reply',
    reply: atom('ok'),
  });
});
