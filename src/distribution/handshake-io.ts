/**
 * Runs a handshake state machine over a socket: 2-byte framing, a deadline, and the
 * hand-over of any bytes that arrived after the last handshake message.
 */
import type { Socket } from 'node:net';
import { CookieMismatchError, HandshakeError } from './errors.js';
import { FrameReader, frame2 } from './framing.js';
import { ClientHandshake, type HandshakeResult, type ServerHandshake } from './handshake.js';

/** Handshake messages are a few hundred bytes at most; anything larger is hostile. */
const MAX_HANDSHAKE_MESSAGE = 2048;

export interface Handshaken {
  result: HandshakeResult;
  /** Bytes already read past the handshake (the first frames of the connection). */
  leftover: Buffer;
}

export function runHandshake(
  socket: Socket,
  machine: ClientHandshake | ServerHandshake,
  timeoutMs: number,
): Promise<Handshaken> {
  return new Promise((resolve, reject) => {
    const reader = new FrameReader(2, MAX_HANDSHAKE_MESSAGE);
    let finished = false;
    const peer = (): string =>
      machine instanceof ClientHandshake ? machine.peerName : machine.peerName || 'unknown node';
    const finish = (err?: Error, value?: Handshaken): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      if (err) {
        socket.destroy();
        reject(err);
      } else {
        // Hold further bytes in the socket until the connection attaches its reader.
        socket.pause();
        resolve(value!);
      }
    };
    const timer = setTimeout(
      () => finish(new HandshakeError(`handshake with ${peer()} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      reader.push(chunk);
      try {
        for (let msg = reader.next(); msg !== undefined && !finished; msg = reader.next()) {
          const step = machine.receive(msg);
          for (const out of step.send) socket.write(frame2(out));
          if (step.fail) {
            socket.end();
            finish(step.fail);
            return;
          }
          if (step.done) {
            finish(undefined, { result: step.done, leftover: reader.remainder() });
            return;
          }
        }
      } catch (err) {
        // Let a refusal status reach the peer before the socket goes.
        if (err instanceof HandshakeError && !(err instanceof CookieMismatchError)) socket.end();
        finish(err as Error);
      }
    };
    const onClose = (): void => {
      if (machine instanceof ClientHandshake && machine.awaitingAck) {
        // The server closes without an ack exactly when our digest did not match its cookie.
        finish(new CookieMismatchError(machine.peerName, 'outgoing'));
      } else finish(new HandshakeError(`${peer()} closed the connection during the handshake`));
    };
    const onError = (err: Error): void =>
      finish(new HandshakeError(`handshake with ${peer()} failed: ${err.message}`, { cause: err }));
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);
    if (machine instanceof ClientHandshake) socket.write(frame2(machine.start()));
  });
}
