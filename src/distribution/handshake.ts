/**
 * The version 6 handshake (OTP 23+) as two pure state machines, one per direction.
 * They consume handshake messages (without their 2-byte length) and return what to
 * send; socket I/O lives in `handshake-io.ts`.
 *
 *   client                     server
 *     N flags creation name  →
 *                            ← s status
 *                            ← N flags challenge creation name
 *     r challenge digest     →
 *                            ← a digest
 *
 * digest = md5(cookie ++ decimal(challenge)), the challenge a 32-bit unsigned integer.
 */
import { createHash, randomInt } from 'node:crypto';
import { CookieMismatchError, HandshakeError } from './errors.js';
import { expandFlags, missingMandatory, negotiate } from './flags.js';

export interface HandshakeIdentity {
  /** `name@host` */
  name: string;
  cookie: string;
  flags: bigint;
  creation: number;
}

export interface HandshakeResult {
  peerName: string;
  peerFlags: bigint;
  peerCreation: number;
  /** What both sides use. */
  flags: bigint;
}

/** What to send; then either `done`, or `fail` (after sending), or more messages to come. */
export type Step = { send: Buffer[]; done?: HandshakeResult; fail?: Error };

export function digest(challenge: number, cookie: string): Buffer {
  // erlang:md5(atom_to_list(Cookie) ++ integer_to_list(Challenge)): a charlist, so Latin-1 bytes.
  return createHash('md5')
    .update(Buffer.from(cookie, 'latin1'))
    .update(String(challenge >>> 0))
    .digest();
}

export function newChallenge(): number {
  return randomInt(0, 0x1_0000_0000 - 1);
}

const MAX_NAME = 1023;

function nameMessage(self: HandshakeIdentity): Buffer {
  const name = Buffer.from(self.name, 'utf8');
  const m = Buffer.allocUnsafe(15 + name.length);
  m[0] = 0x4e; // N
  m.writeBigUInt64BE(self.flags, 1);
  m.writeUInt32BE(self.creation >>> 0, 9);
  m.writeUInt16BE(name.length, 13);
  name.copy(m, 15);
  return m;
}

function challengeMessage(self: HandshakeIdentity, challenge: number): Buffer {
  const name = Buffer.from(self.name, 'utf8');
  const m = Buffer.allocUnsafe(19 + name.length);
  m[0] = 0x4e; // N
  m.writeBigUInt64BE(self.flags, 1);
  m.writeUInt32BE(challenge >>> 0, 9);
  m.writeUInt32BE(self.creation >>> 0, 13);
  m.writeUInt16BE(name.length, 17);
  name.copy(m, 19);
  return m;
}

function status(text: string): Buffer {
  return Buffer.concat([Buffer.from('s'), Buffer.from(text, 'latin1')]);
}

function isNodeName(name: string): boolean {
  return /^[^@\s]+@[^@\s]+$/.test(name) && name.length <= 255;
}

function checkFlags(peer: string, flags: bigint): void {
  const missing = missingMandatory(flags);
  if (missing !== 0n) {
    throw new HandshakeError(
      `${peer} lacks mandatory distribution flags 0x${missing.toString(16)} (needs OTP 25 or newer)`,
    );
  }
}

type ClientState = 'status' | 'challenge' | 'ack' | 'done';

/** baton dialing a peer. */
export class ClientHandshake {
  private state: ClientState = 'status';
  private ourChallenge = 0;
  private peerFlags = 0n;
  private peerCreation = 0;

  constructor(
    readonly self: HandshakeIdentity,
    readonly peerName: string,
    private readonly challenge: () => number = newChallenge,
    /** Asked when the peer answers `alive`: do we still lack a connection to it? */
    private readonly stillWanted: () => boolean = () => true,
  ) {}

  start(): Buffer {
    return nameMessage(this.self);
  }

  /** Whether the peer got as far as judging our cookie (a close before its ack then means it was wrong). */
  get awaitingAck(): boolean {
    return this.state === 'ack';
  }

  receive(msg: Buffer): Step {
    switch (this.state) {
      case 'status': {
        if (msg[0] !== 0x73) throw new HandshakeError(`${this.peerName} sent no status (tag ${msg[0]})`);
        const st = msg.subarray(1).toString('latin1');
        if (st === 'ok' || st === 'ok_simultaneous') {
          this.state = 'challenge';
          return { send: [] };
        }
        if (st === 'alive') {
          // The peer holds a connection to us. If we hold none it is stale and ours replaces
          // it; if we do (it dialed us meanwhile), that one is kept and this attempt ends.
          if (this.stillWanted()) {
            this.state = 'challenge';
            return { send: [status('true')] };
          }
          this.state = 'done';
          return { send: [status('false')], fail: new AlreadyConnected(this.peerName) };
        }
        if (st === 'nok') throw new SimultaneousConnectLost(this.peerName);
        if (st === 'not_allowed')
          throw new HandshakeError(`${this.peerName} does not allow connections from ${this.self.name}`);
        throw new HandshakeError(`${this.peerName} answered with status ${JSON.stringify(st.slice(0, 64))}`);
      }
      case 'challenge': {
        if (msg.length < 19 || msg[0] !== 0x4e) throw new HandshakeError(`${this.peerName} sent a malformed challenge`);
        const flags = msg.readBigUInt64BE(1);
        const challenge = msg.readUInt32BE(9);
        const creation = msg.readUInt32BE(13);
        const nameLen = msg.readUInt16BE(17);
        if (msg.length !== 19 + nameLen) throw new HandshakeError(`${this.peerName} sent a malformed challenge`);
        const name = msg.subarray(19).toString('utf8');
        if (name !== this.peerName) throw new HandshakeError(`dialed ${this.peerName} but ${name} answered`);
        checkFlags(name, flags);
        this.peerFlags = expandFlags(flags);
        this.peerCreation = creation;
        this.ourChallenge = this.challenge() >>> 0;
        const reply = Buffer.allocUnsafe(21);
        reply[0] = 0x72; // r
        reply.writeUInt32BE(this.ourChallenge, 1);
        digest(challenge, this.self.cookie).copy(reply, 5);
        this.state = 'ack';
        return { send: [reply] };
      }
      case 'ack': {
        if (msg.length !== 17 || msg[0] !== 0x61) throw new HandshakeError(`${this.peerName} sent a malformed ack`);
        if (!msg.subarray(1).equals(digest(this.ourChallenge, this.self.cookie))) {
          throw new CookieMismatchError(this.peerName, 'outgoing');
        }
        this.state = 'done';
        return {
          send: [],
          done: {
            peerName: this.peerName,
            peerFlags: this.peerFlags,
            peerCreation: this.peerCreation,
            flags: negotiate(this.self.flags, this.peerFlags),
          },
        };
      }
      case 'done':
        throw new HandshakeError('handshake already complete');
    }
  }
}

/** The peer answered `alive` while we already hold a connection to it: that one is used. */
export class AlreadyConnected extends HandshakeError {
  constructor(readonly peerName: string) {
    super(`already connected to ${peerName}`);
  }
}

/** The peer answered `nok`: it is dialing us at the same time and its attempt wins. */
export class SimultaneousConnectLost extends HandshakeError {
  constructor(readonly peerName: string) {
    super(`${peerName} is connecting to us at the same time; its connection is kept`);
  }
}

/** How the server answers a name: `alive` asks the client whether to replace the existing connection. */
export type Admission = 'ok' | 'ok_simultaneous' | 'nok' | 'not_allowed' | 'alive';

type ServerState = 'name' | 'alive_reply' | 'reply' | 'done' | 'refused';

/** A peer dialing baton. */
export class ServerHandshake {
  private state: ServerState = 'name';
  private ourChallenge = 0;
  private peer = '';
  private peerFlags = 0n;
  private peerCreation = 0;
  private replacing = false;

  constructor(
    readonly self: HandshakeIdentity,
    /** Decides whether the named node may connect now (simultaneous dials, duplicates). */
    private readonly admit: (peerName: string) => Admission,
    /** Called when the client wants to replace the connection we still hold, and proved the cookie. */
    private readonly replace: (peerName: string) => void = () => {},
    private readonly challenge: () => number = newChallenge,
  ) {}

  get peerName(): string {
    return this.peer;
  }

  receive(msg: Buffer): Step {
    switch (this.state) {
      case 'name': {
        if (msg.length < 15 || msg[0] !== 0x4e) {
          throw new HandshakeError(`expected a version 6 name message, got tag ${msg[0]} (${msg.length} bytes)`);
        }
        const flags = msg.readBigUInt64BE(1);
        const creation = msg.readUInt32BE(9);
        const nameLen = msg.readUInt16BE(13);
        if (nameLen > MAX_NAME || msg.length !== 15 + nameLen) throw new HandshakeError('malformed name message');
        const name = msg.subarray(15).toString('utf8');
        if (!isNodeName(name)) throw new HandshakeError(`invalid node name ${JSON.stringify(name.slice(0, 64))}`);
        checkFlags(name, flags);
        this.peer = name;
        this.peerFlags = expandFlags(flags);
        this.peerCreation = creation;
        const admission = this.admit(name);
        if (admission === 'nok' || admission === 'not_allowed') {
          this.state = 'refused';
          return { send: [status(admission)] };
        }
        if (admission === 'alive') {
          this.state = 'alive_reply';
          return { send: [status('alive')] };
        }
        return { send: [status(admission), this.sendChallenge()] };
      }
      case 'alive_reply': {
        const st = msg[0] === 0x73 ? msg.subarray(1).toString('latin1') : '';
        if (st === 'true') {
          // The old connection goes only once this one has proved the cookie (as
          // dist_util's wait_pending): a stranger using the name cannot cut it.
          this.replacing = true;
          return { send: [this.sendChallenge()] };
        }
        this.state = 'refused';
        throw new HandshakeError(`${this.peer} declined to replace its existing connection`);
      }
      case 'reply': {
        if (msg.length !== 21 || msg[0] !== 0x72)
          throw new HandshakeError(`${this.peer} sent a malformed challenge reply`);
        const theirChallenge = msg.readUInt32BE(1);
        if (!msg.subarray(5).equals(digest(this.ourChallenge, this.self.cookie))) {
          throw new CookieMismatchError(this.peer, 'incoming');
        }
        if (this.replacing) this.replace(this.peer);
        const ack = Buffer.allocUnsafe(17);
        ack[0] = 0x61; // a
        digest(theirChallenge, this.self.cookie).copy(ack, 1);
        this.state = 'done';
        return {
          send: [ack],
          done: {
            peerName: this.peer,
            peerFlags: this.peerFlags,
            peerCreation: this.peerCreation,
            flags: negotiate(this.self.flags, this.peerFlags),
          },
        };
      }
      case 'refused':
      case 'done':
        throw new HandshakeError('unexpected handshake message');
    }
  }

  private sendChallenge(): Buffer {
    this.ourChallenge = this.challenge() >>> 0;
    this.state = 'reply';
    return challengeMessage(this.self, this.ourChallenge);
  }
}
