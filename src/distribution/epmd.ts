/**
 * EPMD: the codec (pure) and a small client over `node:net`.
 *
 * Requests are framed with a 2-byte length; responses are not (they are read until
 * complete, and NAMES until EPMD closes the socket). The ALIVE2 socket must stay open
 * for as long as the name is to stay registered.
 */

import { execFile } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { EpmdError } from './errors.js';

export const EPMD_DEFAULT_PORT = 4369;
const ALIVE2_REQ = 120;
const ALIVE2_X_RESP = 118;
const ALIVE2_RESP = 121;
const PORT_PLEASE2_REQ = 122;
const PORT2_RESP = 119;
const NAMES_REQ = 110;
/** Handshake versions baton speaks: 6 only (OTP 23+). */
export const DIST_VERSION = 6;

export interface Alive2Request {
  port: number;
  /** 77 normal, 72 hidden. OTP registers every node, hidden or not, as 77. */
  nodeType?: number;
  name: string;
  extra?: Buffer;
}

function framed(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + body.length);
  out.writeUInt16BE(body.length, 0);
  body.copy(out, 2);
  return out;
}

export function encodeAlive2Req(req: Alive2Request): Buffer {
  const name = Buffer.from(req.name, 'utf8');
  const extra = req.extra ?? Buffer.alloc(0);
  const body = Buffer.allocUnsafe(13 + name.length + extra.length);
  let o = 0;
  body[o++] = ALIVE2_REQ;
  body.writeUInt16BE(req.port, o);
  o += 2;
  body[o++] = req.nodeType ?? 77;
  body[o++] = 0; // protocol: tcp/ip v4
  body.writeUInt16BE(DIST_VERSION, o);
  o += 2;
  body.writeUInt16BE(DIST_VERSION, o);
  o += 2;
  body.writeUInt16BE(name.length, o);
  o += 2;
  name.copy(body, o);
  o += name.length;
  body.writeUInt16BE(extra.length, o);
  o += 2;
  extra.copy(body, o);
  return framed(body);
}

export type Alive2Response = { result: number; creation: number };

/** `undefined` while incomplete. */
export function decodeAlive2Resp(buf: Buffer): Alive2Response | undefined {
  if (buf.length < 1) return undefined;
  const tag = buf[0];
  if (tag === ALIVE2_X_RESP) {
    if (buf.length < 2) return undefined;
    if (buf[1] !== 0) return { result: buf[1]!, creation: 0 };
    if (buf.length < 6) return undefined;
    return { result: 0, creation: buf.readUInt32BE(2) };
  }
  if (tag === ALIVE2_RESP) {
    if (buf.length < 2) return undefined;
    if (buf[1] !== 0) return { result: buf[1]!, creation: 0 };
    if (buf.length < 4) return undefined;
    return { result: 0, creation: buf.readUInt16BE(2) };
  }
  throw new EpmdError('protocol', `unexpected EPMD response tag ${tag} to ALIVE2_REQ`);
}

export function encodePortPlease2Req(name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  return framed(Buffer.concat([Buffer.from([PORT_PLEASE2_REQ]), n]));
}

export type Port2Response =
  | { found: false; result: number }
  | {
      found: true;
      port: number;
      nodeType: number;
      protocol: number;
      highestVersion: number;
      lowestVersion: number;
      name: string;
      extra: Buffer;
    };

/** `undefined` while incomplete. */
export function decodePort2Resp(buf: Buffer): Port2Response | undefined {
  if (buf.length < 2) return undefined;
  if (buf[0] !== PORT2_RESP)
    throw new EpmdError('protocol', `unexpected EPMD response tag ${buf[0]} to PORT_PLEASE2_REQ`);
  if (buf[1] !== 0) return { found: false, result: buf[1]! };
  if (buf.length < 12) return undefined;
  const nameLen = buf.readUInt16BE(10);
  if (buf.length < 12 + nameLen + 2) return undefined;
  const extraLen = buf.readUInt16BE(12 + nameLen);
  if (buf.length < 14 + nameLen + extraLen) return undefined;
  return {
    found: true,
    port: buf.readUInt16BE(2),
    nodeType: buf[4]!,
    protocol: buf[5]!,
    highestVersion: buf.readUInt16BE(6),
    lowestVersion: buf.readUInt16BE(8),
    name: buf.subarray(12, 12 + nameLen).toString('utf8'),
    extra: Buffer.from(buf.subarray(14 + nameLen, 14 + nameLen + extraLen)),
  };
}

export function encodeNamesReq(): Buffer {
  return framed(Buffer.from([NAMES_REQ]));
}

export interface NamesResponse {
  epmdPort: number;
  names: { name: string; port: number }[];
}

/** The whole response (EPMD closes the socket after it). */
export function decodeNamesResp(buf: Buffer): NamesResponse {
  if (buf.length < 4) throw new EpmdError('protocol', 'truncated NAMES response');
  const names: { name: string; port: number }[] = [];
  for (const line of buf.subarray(4).toString('utf8').split('\n')) {
    const m = /^name (.+) at port (\d+)$/.exec(line);
    if (m) names.push({ name: m[1]!, port: Number(m[2]) });
  }
  return { epmdPort: buf.readUInt32BE(0), names };
}

export interface EpmdAddress {
  host: string;
  port: number;
  timeoutMs?: number;
}

/** The EPMD port from `ERL_EPMD_PORT` as `erl` reads it, else 4369. */
export function defaultEpmdPort(): number {
  const env = Number(process.env.ERL_EPMD_PORT);
  return Number.isInteger(env) && env > 0 && env < 65536 ? env : EPMD_DEFAULT_PORT;
}

function unreachable(addr: EpmdAddress, cause: unknown): EpmdError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? String(cause);
  return new EpmdError(
    'unreachable',
    `EPMD is not running on ${addr.host}:${addr.port} (${code}); start it with \`epmd -daemon\` or set the EPMD port`,
    { cause },
  );
}

/**
 * Sends `request` and feeds every byte received to `decode` until it returns a value
 * (or, with `untilClose`, until EPMD closes). Bounded: EPMD answers are small.
 */
function exchange<T>(
  addr: EpmdAddress,
  request: Buffer,
  decode: (buf: Buffer, closed: boolean) => T | undefined,
  keepOpen = false,
): Promise<{ value: T; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: addr.host, port: addr.port });
    let buf = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(
      () =>
        fail(
          new EpmdError(
            'unreachable',
            `EPMD on ${addr.host}:${addr.port} did not answer in ${addr.timeoutMs ?? 5000} ms`,
          ),
        ),
      addr.timeoutMs ?? 5000,
    );
    const fail = (err: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const attempt = (closed: boolean): void => {
      if (done) return;
      let value: T | undefined;
      try {
        value = decode(buf, closed);
      } catch (err) {
        fail(err as Error);
        return;
      }
      if (value !== undefined) {
        done = true;
        clearTimeout(timer);
        if (!keepOpen) socket.destroy();
        resolve({ value, socket });
      } else if (closed) {
        fail(new EpmdError('protocol', `EPMD on ${addr.host}:${addr.port} closed the connection mid-answer`));
      }
    };
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > 1 << 20) fail(new EpmdError('protocol', 'EPMD answer too large'));
      else attempt(false);
    });
    socket.on('end', () => attempt(true));
    socket.on('close', () => attempt(true));
    socket.on('error', (err) => fail(unreachable(addr, err)));
  });
}

export interface Registration {
  creation: number;
  /** Unregisters (EPMD drops the name when this socket closes). */
  close(): void;
  /** Called if EPMD goes away while we are registered. */
  socket: Socket;
}

export async function epmdRegister(addr: EpmdAddress, req: Alive2Request): Promise<Registration> {
  const { value, socket } = await exchange(addr, encodeAlive2Req(req), (b) => decodeAlive2Resp(b), true);
  if (value.result !== 0) {
    socket.destroy();
    throw new EpmdError(
      'name_taken',
      `EPMD on ${addr.host}:${addr.port} refused to register ${req.name} (result ${value.result}): the name is already taken`,
    );
  }
  socket.removeAllListeners('data');
  socket.on('data', () => {});
  return { creation: value.creation, close: () => socket.destroy(), socket };
}

export async function epmdPortPlease(addr: EpmdAddress, name: string): Promise<Port2Response> {
  const { value } = await exchange(addr, encodePortPlease2Req(name), (b) => decodePort2Resp(b));
  return value;
}

export async function epmdNames(addr: EpmdAddress): Promise<NamesResponse> {
  const { value } = await exchange(addr, encodeNamesReq(), (b, closed) => (closed ? decodeNamesResp(b) : undefined));
  return value;
}

/**
 * Starts `epmd -daemon` on `addr.port` (as `erl` does when it finds none) and waits
 * until it answers. baton may be the first distributed program on a machine: it runs
 * before the peer whose `erl` would otherwise have started EPMD.
 */
export async function startEpmdDaemon(addr: EpmdAddress, epmdPath = 'epmd'): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile(epmdPath, ['-daemon', '-port', String(addr.port)], { timeout: 10_000 }, (err) =>
      err
        ? reject(
            new EpmdError('unreachable', `could not start ${epmdPath} -daemon on port ${addr.port}: ${err.message}`, {
              cause: err,
            }),
          )
        : resolve(),
    );
  });
  const deadline = Date.now() + (addr.timeoutMs ?? 5000);
  for (;;) {
    try {
      await epmdNames(addr);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}
