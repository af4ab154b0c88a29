/** Runs the `baton` command line from source, as a user would run the installed bin. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './erl.js';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function baton(args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
  const result = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
