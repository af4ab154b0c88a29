/**
 * Running one command of a group (store, peer) behind main.ts's synchronous switch.
 * Every group fails the same way: a usage error prints the group's usage and exits 2,
 * any other failure is one readable sentence and exits 1.
 */
import { type Out, UsageError } from './io.js';

export type Command = (args: string[], io: Out) => Promise<number>;

export interface CommandGroup {
  usage: string;
  commands: Record<string, Command>;
  /** Commands that leave handlers or timers behind (`run`): the process exits when they return. */
  exitWhenDone?: readonly string[];
}

export async function runGroupCommand(group: CommandGroup, command: string, args: string[], io: Out): Promise<number> {
  try {
    const run = group.commands[command];
    if (run === undefined) throw new UsageError(`unknown command '${command}'`);
    return await run(args, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`baton ${command}: ${err.message}\nusage:\n${group.usage}`);
      return 2;
    }
    io.err(`baton ${command}: ${(err as Error).message}\n`);
    return 1;
  }
}

/** Starts the command and sets the exit code when it is done; returns at once. */
export function startGroupCommand(group: CommandGroup, command: string, args: string[]): number {
  void runGroupCommand(group, command, args, {
    out: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(s),
    tty: process.stderr.isTTY === true,
    env: process.env,
  }).then((code) => {
    process.exitCode = code;
    if (group.exitWhenDone?.includes(command)) setImmediate(() => process.exit(code));
  });
  return 0;
}
