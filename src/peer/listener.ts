/**
 * The socket baton hands to peers in fd mode: bound once, never listened on by baton
 * (docs/design.md, "Sharing the socket").
 *
 * Node's `net` can only bind by listening, and a listening `net.Server` accepts (libuv
 * polls the socket and takes every connection). So the socket is made with the TCP
 * handle under `net` (`process.binding('tcp_wrap')`: bind, no listen, no polling).
 * The first peer's `gen_tcp:listen(0, [{fd, N}])` turns it into a listener; every
 * peer shares its accept queue and baton never takes a connection from it. The
 * binding is internal to Node but stable across 16–22; if it disappears this module
 * is the one place to change (a small native helper would do the same).
 */
import { getSystemErrorName } from 'node:util';
import { ListenerError } from './errors.js';

interface TcpHandle {
  bind(address: string, port: number): number;
  bind6(address: string, port: number, flags: number): number;
  getsockname(out: { address?: string; port?: number; family?: string }): number;
  close(): void;
  readonly fd: number;
}

interface TcpWrap {
  TCP: new (type: number) => TcpHandle;
  constants: { SERVER: number };
}

function tcpWrap(): TcpWrap {
  const binding = (process as unknown as { binding(name: string): unknown }).binding;
  return binding('tcp_wrap') as TcpWrap;
}

export interface Listener {
  /** The descriptor in baton's process; a peer gets a copy of it at the index it is given. */
  readonly fd: number;
  readonly host: string;
  readonly port: number;
  readonly family: 'inet' | 'inet6';
  close(): void;
}

/** Binds `host:port` (port 0 picks one); `::` is dual stack. */
export function bindListener(host: string, port: number): Listener {
  const { TCP, constants } = tcpWrap();
  const handle = new TCP(constants.SERVER);
  const inet6 = host.includes(':');
  const rc = inet6 ? handle.bind6(host, port, 0) : handle.bind(host, port);
  if (rc !== 0) {
    handle.close();
    const name = getSystemErrorName(rc);
    throw new ListenerError(
      `cannot bind ${inet6 ? `[${host}]` : host}:${port} for the peers: ${name}` +
        (name === 'EADDRINUSE' ? ' (another process, or a peer from an earlier baton, holds the port)' : ''),
    );
  }
  const addr: { port?: number } = {};
  handle.getsockname(addr);
  let closed = false;
  return {
    fd: handle.fd,
    host,
    port: addr.port ?? port,
    family: inet6 ? 'inet6' : 'inet',
    close: () => {
      if (!closed) handle.close();
      closed = true;
    },
  };
}
