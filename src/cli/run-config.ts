/**
 * `baton run`'s configuration: flags override the environment (docs/configuration.md).
 * Pure, so each default and each refusal is unit-tested.
 */
import { stateDirFromEnv } from '../common/index.js';
import { DEFAULT_RESTART_POLICY } from '../manager/index.js';
import type { Handoff } from '../peer/index.js';
import { parse, UsageError } from './io.js';

export interface RunConfig {
  releaseRoot: string;
  app: string | undefined;
  port: number;
  handoff: Handoff;
  bind: string;
  endpoint: string | undefined;
  stateDir: string;
  cookie: string | undefined;
  drainMs: number;
  orphanMs: number;
  /** Peer name base (RELEASE_NODE's name part, else the app). */
  releaseNode: string | undefined;
  /** Attempts to start the first peer before baton gives up (exit 1). */
  startAttempts: number;
  /** Backoff between restarts: first and largest delay. */
  backoffMs: number;
  maxBackoffMs: number;
  /** baton's node polls this long after each erpc request (NodeOptions.busyPollMs); undefined: its default. */
  busyPollMs: number | undefined;
}

export const RUN_USAGE = `  run         [--release DIR] [--app A] [--port N] [--handoff fd|reuseport|restart] [--bind ADDR]
              [--endpoint NAME] [--state-dir DIR]        run the release as a peer, restart it when it exits
`;

function int(name: string, v: string | undefined, def: number): number {
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${name} must be a non-negative integer, not '${v}'`);
  return n;
}

function ms(name: string, v: string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new UsageError(`${name} must be a non-negative number of milliseconds, not '${v}'`);
  return n;
}

export function runConfig(args: string[], env: Record<string, string | undefined>): RunConfig {
  const { values, positionals } = parse(args, {
    release: { type: 'string' },
    app: { type: 'string' },
    port: { type: 'string' },
    handoff: { type: 'string' },
    bind: { type: 'string' },
    endpoint: { type: 'string' },
    'state-dir': { type: 'string' },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const v = values as Record<string, string | undefined>;
  const handoff = v['handoff'] ?? env['BATON_HANDOFF'] ?? 'fd';
  if (handoff !== 'fd' && handoff !== 'reuseport' && handoff !== 'restart') {
    throw new UsageError(`the handoff must be fd, reuseport or restart, not '${handoff}'`);
  }
  const port = int('the port', v['port'] ?? env['BATON_PORT'] ?? env['PORT'], 4000);
  if (port > 65535) throw new UsageError(`the port must be at most 65535, not ${port}`);
  const fly = env['FLY_PRIVATE_IP'] !== undefined && env['FLY_PRIVATE_IP'] !== '';
  return {
    releaseRoot: v['release'] ?? env['BATON_RELEASE_ROOT'] ?? '/app',
    app: v['app'] ?? env['BATON_APP'] ?? undefined,
    port,
    handoff,
    bind: v['bind'] ?? env['BATON_BIND'] ?? (fly ? '::' : '0.0.0.0'),
    endpoint: v['endpoint'] ?? (env['BATON_ENDPOINT'] || undefined),
    stateDir: v['state-dir'] ?? stateDirFromEnv(env),
    cookie: env['BATON_COOKIE'] || env['RELEASE_COOKIE'] || undefined,
    drainMs: int('BATON_DRAIN_MS', env['BATON_DRAIN_MS'], 15_000),
    orphanMs: int('BATON_ORPHAN_MS', env['BATON_ORPHAN_MS'], 60_000),
    releaseNode: env['RELEASE_NODE'] || undefined,
    startAttempts: int('BATON_START_ATTEMPTS', env['BATON_START_ATTEMPTS'], DEFAULT_RESTART_POLICY.startAttempts),
    backoffMs: int('BATON_BACKOFF_MS', env['BATON_BACKOFF_MS'], DEFAULT_RESTART_POLICY.backoffMs),
    maxBackoffMs: DEFAULT_RESTART_POLICY.maxBackoffMs,
    busyPollMs: ms('BATON_BUSY_POLL_MS', env['BATON_BUSY_POLL_MS']),
  };
}
