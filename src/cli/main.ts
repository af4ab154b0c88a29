#!/usr/bin/env node
/**
 * `baton` command line. Exit codes: 0 ok, 1 failure, 2 usage, 3 busy.
 * Commands arrive with the areas they drive; this file only dispatches.
 */
import { readFileSync } from 'node:fs';
import { startGroupCommand } from './dispatch.js';
import { peerGroup } from './peer-cli.js';
import { storeGroup } from './store-commands.js';

const groups = [storeGroup, peerGroup];

const USAGE = `usage: baton <command> [options]

commands:
  version     print baton's version
  help        print this text
${groups.map((g) => g.usage).join('')}`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function main(argv: string[]): number {
  const [command] = argv;
  switch (command) {
    case 'version':
    case '--version':
      process.stdout.write(`baton ${version()}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return 0;
    default: {
      const group = groups.find((g) => Object.hasOwn(g.commands, command));
      if (group !== undefined) return startGroupCommand(group, command, argv.slice(1));
      process.stderr.write(`baton: unknown command '${command}'.\n${USAGE}`);
      return 2;
    }
  }
}

process.exitCode = main(process.argv.slice(2));
