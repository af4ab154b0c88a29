/**
 * The peer's HTTP endpoints, as `baton_endpoint` (erlang/baton_endpoint.erl) sees them
 * from inside: discovery for `baton status`, fd injection into Phoenix endpoints before
 * the application starts, and stopping to accept without resetting a connection. This
 * module only calls and decodes; the decisions are made in the peer, where the
 * processes are.
 */
import { atom, showTerm, type Term, Tuple } from '../etf/index.js';
import { ErlMap, termList, termText } from './erl-map.js';
import { PeerError } from './errors.js';

/** How a peer is asked something: `Peer.erpc`, or a node's erpc bound to the peer. */
export type PeerCall = (mod: string, fun: string, args: Term[], timeoutMs?: number) => Promise<Term>;

export interface Endpoint {
  kind: 'phoenix' | 'thousand_island' | 'ranch' | 'plain';
  /** Endpoint module (Phoenix), server pid (ThousandIsland), listener ref (ranch), registered name (plain). */
  name: string;
  /** The port its socket listens on, or (Phoenix) the one its config names. */
  port?: number;
  /** Phoenix: the application whose env holds the endpoint's config. */
  app?: string;
  /** Phoenix: `bandit`, `cowboy`, or the adapter module when it is neither. */
  adapter?: string;
}

export interface Injection {
  app: string;
  endpoint: string;
  adapter: string;
  /** `injected`, or why the endpoint was left as it was (`no_http`, `unknown_adapter`). */
  result: string;
  /** The endpoint's `http` config as injected, in Erlang syntax. */
  http?: string;
}

export interface StopAccepting {
  /** `thousand_island`, `ranch`, `plain`, or a fallback (`thousand_island_suspend`, `ranch_suspend`). */
  recipe: string;
  /** Each phase and how long it took, in order (ms). */
  phases: Array<[string, number]>;
  /** Why the recipe could not run as designed, when it could not. */
  fallback?: string;
  /** Connections still busy when the drain gave up. */
  leftOpen: number;
}

export async function describeEndpoints(call: PeerCall): Promise<Endpoint[]> {
  const r = await call('baton_endpoint', 'describe', [], 10_000);
  return termList(r).map((e) => {
    const m = ErlMap.of(e);
    const out: Endpoint = { kind: m.text('kind') as Endpoint['kind'], name: m.text('name') };
    const port = m.number('port');
    if (port !== undefined) out.port = port;
    const app = m.atom('app');
    if (app !== undefined) out.app = app;
    const adapter = m.atom('adapter');
    if (adapter !== undefined) out.adapter = moduleName(adapter);
    return out;
  });
}

/** How the peer gets its listening socket: the handed fd, or SO_REUSEPORT on the port. */
export type SocketHandoff = { fd: number; inet6: boolean } | { reuseport: true };

/**
 * Rewrites every Phoenix endpoint's `http` in `apps` (and what they depend on) to listen
 * on the handed fd of the peer (or, in reuseport mode, to add SO_REUSEPORT where the
 * adapter allows it); to be called once the release's config, runtime.exs included, is
 * in place, and before the application starts.
 */
export async function injectEndpoints(call: PeerCall, apps: string[], sock: SocketHandoff): Promise<Injection[]> {
  const spec = new Map<Term, Term>(
    'fd' in sock
      ? [
          [atom('fd'), sock.fd],
          [atom('inet6'), atom(sock.inet6 ? 'true' : 'false')],
        ]
      : [[atom('reuseport'), atom('true')]],
  );
  const r = await call('baton_endpoint', 'inject', [apps.map(atom), spec], 30_000);
  return termList(r).map((e) => {
    const m = ErlMap.of(e);
    const res = m.get('result');
    const out: Injection = {
      app: m.text('app'),
      endpoint: moduleName(m.text('endpoint')),
      adapter: moduleName(m.text('adapter')),
      result: res instanceof Tuple ? `skipped: ${termText(res.elements[1])}` : termText(res),
    };
    if (m.get('http') !== undefined) out.http = m.text('http');
    return out;
  });
}

/** Stops the endpoint on `port` accepting and drains it, by the recipe that fits what runs. */
export async function stopAccepting(
  call: PeerCall,
  o: { port: number; endpoint?: string; drainMs: number },
): Promise<StopAccepting> {
  const spec = new Map<Term, Term>([
    [atom('port'), o.port],
    [atom('endpoint'), atom(o.endpoint ?? 'undefined')],
    [atom('drain_ms'), o.drainMs],
  ]);
  // The peer bounds every phase itself; this bound only covers a peer that stops answering.
  const answer = await call('baton_endpoint', 'stop', [spec], o.drainMs + 20_000);
  if (!(answer instanceof Map))
    throw new PeerError(`baton_endpoint:stop answered ${showTerm(answer)}, not a result map`);
  const r = ErlMap.of(answer);
  const fallback = r.binary('fallback');
  return {
    recipe: r.text('recipe'),
    phases: r.list('phases').map((p) => {
      const [name, ms] = p instanceof Tuple ? p.elements : [];
      return [termText(name), typeof ms === 'number' ? ms : 0];
    }),
    ...(fallback !== undefined ? { fallback } : {}),
    leftOpen: r.number('left_open') ?? 0,
  };
}

/** `thousand_island (suspend 1 ms, park 4 ms, ...)`, for the log. */
export function describeStop(s: StopAccepting): string {
  const phases = s.phases.map(([n, ms]) => `${n} ${ms} ms`).join(', ');
  return `${s.recipe} (${phases})${s.fallback !== undefined ? `; fallback because ${s.fallback}` : ''}`;
}

function moduleName(name: string): string {
  return name.startsWith('Elixir.') ? name.slice('Elixir.'.length) : name;
}
