/** Dispatch of `run`, `peer-node`, `eval`, `remsh` behind main.ts's synchronous switch. */
import { peerCommands, PEER_USAGE } from './peer-commands.js';
import { runCommand } from './run.js';
import { RUN_USAGE } from './run-config.js';
import { UsageError, type Out } from './store-io.js';

export const PEER_CLI_USAGE = `${RUN_USAGE}${PEER_USAGE}`;

const commands: Record<string, (args: string[], io: Out) => Promise<number>> = { run: runCommand, ...peerCommands };

export async function runPeerCommand(command: string, args: string[], io: Out): Promise<number> {
  try {
    const run = commands[command];
    if (run === undefined) throw new UsageError(`unknown command '${command}'`);
    return await run(args, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`baton ${command}: ${err.message}\nusage:\n${PEER_CLI_USAGE}`);
      return 2;
    }
    const e = err as Error & { code?: string };
    io.err(`baton ${command}: ${e.message}\n`);
    return 1;
  }
}

export function startPeerCommand(command: string, args: string[]): number {
  void runPeerCommand(command, args, {
    out: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(s),
    tty: process.stderr.isTTY === true,
    env: process.env,
  }).then((code) => {
    process.exitCode = code;
    // baton run keeps signal handlers and timers; once it is done, it is done.
    if (command === 'run') setImmediate(() => process.exit(code));
  });
  return 0;
}
