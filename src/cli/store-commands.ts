/** The store side of the CLI: `publish`, `releases`, `status --fleet` (plain `status` is the local peer's). */
import type { CommandGroup } from './dispatch.js';
import { fleetStatusCommand } from './fleet-status.js';
import { statusCommand } from './peer-commands.js';
import { publishCommand } from './publish.js';
import { releasesCommand } from './releases.js';

export const storeGroup: CommandGroup = {
  usage: `  publish <release dir | tarball> --app A --mode hot|blue-green|auto [--version V] [--wait]
              [--timeout S] [--keep N] [--store URL]   publish a layer to the store
  releases    [--app A] [--store URL] [--json]          what is published, sizes and dates
  status --fleet --app A [--store URL] [--json]         per-machine results of the current upgrades
`,
  commands: {
    publish: publishCommand,
    releases: releasesCommand,
    status: (args, io) => (args.includes('--fleet') ? fleetStatusCommand(args, io) : statusCommand(args, io)),
  },
};
