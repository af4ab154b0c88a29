/**
 * The store side of the CLI: `publish`, `releases`, `status --fleet`. Async commands
 * behind main.ts's synchronous switch: `startStoreCommand` sets the exit code itself.
 */
import { fleetStatusCommand } from './fleet-status.js';
import { publishCommand } from './publish.js';
import { releasesCommand } from './releases.js';
import { UsageError, type Out } from './store-io.js';

export const STORE_USAGE = `  publish <release dir | tarball> --app A --mode hot|blue-green|auto [--version V] [--wait]
              [--timeout S] [--keep N] [--store URL]   publish a layer to the store
  releases    [--app A] [--store URL] [--json]          what is published, sizes and dates
  status --fleet --app A [--store URL] [--json]         per-machine results of the current upgrades
`;

const commands: Record<string, (args: string[], io: Out) => Promise<number>> = {
  publish: publishCommand,
  releases: releasesCommand,
  status: fleetStatusCommand,
};

export async function runStoreCommand(command: string, args: string[], io: Out): Promise<number> {
  try {
    const run = commands[command];
    if (run === undefined) throw new UsageError(`unknown command '${command}'`);
    return await run(args, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`baton ${command}: ${err.message}\nusage:\n${STORE_USAGE}`);
      return 2;
    }
    io.err(`baton ${command}: ${(err as Error).message}\n`);
    return 1;
  }
}

/** For main.ts's synchronous switch: runs the command and sets the exit code when done. */
export function startStoreCommand(command: string, args: string[]): number {
  void runStoreCommand(command, args, {
    out: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(s),
    tty: process.stderr.isTTY === true,
    env: process.env,
  }).then((code) => {
    process.exitCode = code;
  });
  return 0;
}
