/**
 * One raw HTTP/1.1 client connection kept alive across requests, for tests that must
 * know which connection a request went over (Node's agents hide that).
 */
import { connect, type Socket } from 'node:net';

export interface HttpAnswer {
  headers: Record<string, string>;
  /** The JSON body. */
  body: Record<string, unknown>;
  /** Status line and headers, a newline, then the body: for matching by text. */
  text: string;
}

export class KeepAlive {
  private buf = '';
  private waiter: (() => void) | undefined;
  closed = false;

  private constructor(private readonly sock: Socket) {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      this.buf += d;
      this.waiter?.();
    });
    sock.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    sock.on('error', () => {
      this.closed = true;
      this.waiter?.();
    });
  }

  static open(port: number, host = '127.0.0.1'): Promise<KeepAlive> {
    return new Promise((resolveConn, reject) => {
      const sock = connect({ port, host });
      sock.once('connect', () => resolveConn(new KeepAlive(sock)));
      sock.once('error', reject);
    });
  }

  /** Sends `GET path` and resolves with its 200 answer; rejects on another status, a close, or after `ms`. */
  async get(path: string, ms = 5000): Promise<HttpAnswer> {
    if (this.closed) throw new Error('connection closed');
    this.sock.write(`GET ${path} HTTP/1.1\r\nhost: localhost\r\n\r\n`);
    const deadline = Date.now() + ms;
    for (;;) {
      const answer = this.take();
      if (answer !== undefined) return answer;
      if (this.closed) throw new Error(`connection closed before an answer to ${path}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response to ${path} within ${ms} ms`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(timer);
          r();
        };
      });
      this.waiter = undefined;
    }
  }

  /** Resolves once the server has closed the connection. */
  async closedByServer(): Promise<void> {
    while (!this.closed) {
      await new Promise<void>((r) => (this.waiter = r));
      this.waiter = undefined;
    }
  }

  close(): void {
    this.sock.destroy();
  }

  private take(): HttpAnswer | undefined {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const head = this.buf.slice(0, end);
    const [status, ...lines] = head.split('\r\n');
    if (!/^HTTP\/1\.1 200 /.test(status ?? '')) throw new Error(`unexpected status line ${status}`);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const len = Number(headers['content-length']);
    if (this.buf.length < end + 4 + len) return undefined;
    // latin1 keeps one char per byte, so lengths are byte counts; the body is UTF-8.
    const raw = this.buf.slice(end + 4, end + 4 + len);
    this.buf = this.buf.slice(end + 4 + len);
    const body = Buffer.from(raw, 'latin1').toString('utf8');
    return { headers, body: JSON.parse(body) as Record<string, unknown>, text: `${head}\n${body}` };
  }
}
