/**
 * Commands that reach the running peer through the state dir's record:
 * `peer-node` (its node name), `eval` (an Erlang expression evaluated on it),
 * `remsh` (an interactive shell on it: iex for Elixir releases, erl otherwise).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { stateDirFromEnv } from '../common/index.js';
import { EvalSyntaxError, Node } from '../distribution/index.js';
import { showTerm } from '../etf/index.js';
import {
  describeEndpoints,
  type Endpoint,
  erlPath,
  NoPeerError,
  type PeerRecord,
  pidAlive,
  protoDistArgs,
  readLayout,
  readRecord,
} from '../peer/index.js';
import { type Out, parse, UsageError } from './io.js';

export const PEER_USAGE = `  peer-node   [--state-dir DIR]                         print the running peer's node name
  eval 'Expr.' [--state-dir DIR]                        evaluate an Erlang expression on the peer, print the result
  remsh       [--state-dir DIR]                         interactive shell on the peer (iex for Elixir releases)
  status      [--state-dir DIR] [--json]                the running peer and the HTTP endpoints found in it
`;

function record(values: Record<string, unknown>, io: Out): PeerRecord {
  const dir = (values['state-dir'] as string | undefined) ?? stateDirFromEnv(io.env);
  const rec = readRecord(dir);
  if (rec === undefined)
    throw new NoPeerError(`no peer is recorded in ${dir} (is \`baton run\` running with BATON_STATE_DIR=${dir}?)`);
  if (!pidAlive(rec.osPid)) throw new NoPeerError(`the recorded peer ${rec.node} (os pid ${rec.osPid}) is not running`);
  return rec;
}

const stateDirOpt = { 'state-dir': { type: 'string' } } as const;

export async function peerNodeCommand(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(args, stateDirOpt);
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  io.out(`${record(values, io).node}\n`);
  return 0;
}

/** A one-off hidden node with the peer's cookie: outgoing only, nothing registered with EPMD. */
async function withNode<T>(rec: PeerRecord, io: Out, purpose: string, fn: (node: Node) => Promise<T>): Promise<T> {
  const node = new Node({
    name: `baton-${purpose}-${randomBytes(4).toString('hex')}`,
    cookie: rec.cookie,
    hidden: true,
    listen: false,
    log: (line) => io.out(`${line}\n`),
  });
  await node.start();
  try {
    return await fn(node);
  } finally {
    await node.close();
  }
}

export async function evalCommand(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(args, stateDirOpt);
  if (positionals.length !== 1) throw new UsageError("give one expression, e.g. baton eval 'erlang:memory(total).'");
  const rec = record(values, io);
  return withNode(rec, io, 'eval', async (node) => {
    try {
      const value = await node.eval(rec.node, positionals[0]!, { timeoutMs: 60_000 });
      const text = await node.erpc(rec.node, 'baton_peer', 'format', [value], { timeoutMs: 10_000 });
      io.out(`${Buffer.isBuffer(text) ? text.toString('utf8') : showTerm(text)}\n`);
      return 0;
    } catch (err) {
      if (err instanceof EvalSyntaxError) io.err(`baton eval: the expression does not parse: ${err.message}\n`);
      else io.err(`baton eval: evaluating on ${rec.node} failed: ${(err as Error).message}\n`);
      return 1;
    }
  });
}

/** `baton status`: what runs here, and the endpoints baton_endpoint finds in the peer. */
export async function statusCommand(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(args, { ...stateDirOpt, json: { type: 'boolean' } });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const rec = record(values, io);
  let endpoints: Endpoint[] | string;
  try {
    endpoints = await withNode(rec, io, 'status', (node) =>
      describeEndpoints((m, f, a, t) => node.erpc(rec.node, m, f, a, { timeoutMs: t ?? 10_000 })),
    );
  } catch (err) {
    endpoints = `cannot ask ${rec.node}: ${(err as Error).message}`;
  }
  const peer = {
    node: rec.node,
    os_pid: rec.osPid,
    app: rec.app,
    vsn: rec.vsn,
    release_root: rec.releaseRoot,
    handoff: rec.handoff,
    port: rec.port,
    started_at: rec.startedAt,
    baton: rec.baton,
  };
  if (values.json === true) {
    io.out(
      `${JSON.stringify(typeof endpoints === 'string' ? { peer, error: endpoints } : { peer, endpoints }, null, 2)}\n`,
    );
    return typeof endpoints === 'string' ? 1 : 0;
  }
  io.out(
    `peer ${rec.node} (os pid ${rec.osPid}): ${rec.app} ${rec.vsn}, ${rec.handoff} handoff on port ${rec.port}, since ${rec.startedAt}\n`,
  );
  if (typeof endpoints === 'string') {
    io.err(`baton status: ${endpoints}\n`);
    return 1;
  }
  if (endpoints.length === 0) io.out('endpoints: none found\n');
  else io.out('endpoints:\n');
  for (const e of endpoints) {
    const detail = [e.app, e.adapter].filter((x) => x !== undefined).join(', ');
    io.out(
      `  ${e.kind} ${e.name}${detail ? ` (${detail})` : ''}${e.port !== undefined && e.port !== 0 ? ` port ${e.port}` : ''}\n`,
    );
  }
  return 0;
}

/**
 * The command line of a remote shell on the recorded peer. For Elixir releases it is the
 * release's own `releases/<vsn>/iex` with what `bin/<rel> remote` would pass it, but
 * not through that script: its env.sh may export RELEASE_NODE (Fly's template does),
 * which names the app's base node rather than this peer, and ERL_AFLAGS with a second
 * `-proto_dist` (see protoDistArgs).
 */
export function remshCommandLine(
  rec: PeerRecord,
  erl: string,
  env: Record<string, string | undefined> = {},
): { cmd: string; args: string[]; env: Record<string, string> } {
  const suffix = randomBytes(3).toString('hex');
  const host = rec.node.slice(rec.node.indexOf('@') + 1);
  const protoDist = protoDistArgs(host, env, undefined);
  const self = `remsh-${suffix}@${host}`;
  if (rec.elixir) {
    const relDir = join(rec.releaseRoot, 'releases', rec.vsn);
    const remoteVmArgs = join(relDir, 'remote.vm.args');
    return {
      cmd: join(relDir, 'iex'),
      args: [
        '--hidden',
        '--cookie',
        rec.cookie,
        rec.longNames ? '--name' : '--sname',
        self,
        '--boot',
        join(relDir, 'start_clean'),
        '--boot-var',
        'RELEASE_LIB',
        join(rec.releaseRoot, 'lib'),
        ...(existsSync(remoteVmArgs) ? ['--vm-args', remoteVmArgs] : []),
        '--remsh',
        rec.node,
      ],
      env: protoDist.length > 0 ? { ELIXIR_ERL_OPTIONS: protoDist.join(' ') } : {},
    };
  }
  return {
    cmd: erl,
    args: [
      rec.longNames ? '-name' : '-sname',
      self,
      '-hidden',
      '-setcookie',
      rec.cookie,
      ...protoDist,
      '-remsh',
      rec.node,
    ],
    env: {},
  };
}

export async function remshCommand(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(args, stateDirOpt);
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const rec = record(values, io);
  const layout = readLayout(rec.releaseRoot);
  const { cmd, args: argv, env } = remshCommandLine(rec, erlPath(layout), io.env);
  io.err(`baton: remote shell on ${rec.node} (leave with Ctrl-G q, or Ctrl-C twice; q() would stop the peer)\n`);
  const child = spawn(cmd, argv, { stdio: 'inherit', env: { ...io.env, ...env } });
  return new Promise((resolve) => {
    child.once('error', (err) => {
      io.err(`baton remsh: cannot run ${cmd}: ${err.message}\n`);
      resolve(1);
    });
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

export const peerCommands: Record<string, (args: string[], io: Out) => Promise<number>> = {
  'peer-node': peerNodeCommand,
  eval: evalCommand,
  remsh: remshCommand,
};
