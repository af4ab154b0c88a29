/** The peer side of the CLI: `run`, `peer-node`, `eval`, `remsh`. */
import type { CommandGroup } from './dispatch.js';
import { PEER_USAGE, peerCommands } from './peer-commands.js';
import { runCommand } from './run.js';
import { RUN_USAGE } from './run-config.js';

export const peerGroup: CommandGroup = {
  usage: `${RUN_USAGE}${PEER_USAGE}`,
  commands: { run: runCommand, ...peerCommands },
  // baton run keeps signal handlers and timers; once it is done, it is done.
  exitWhenDone: ['run'],
};
