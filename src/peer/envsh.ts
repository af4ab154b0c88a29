/** Sourcing `releases/<vsn>/env.sh` as a mix release's start script does, to learn what it exports. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { envChanges, parseEnv0 } from './args.js';

const run = promisify(execFile);

export async function sourceEnvSh(path: string, env: Record<string, string>): Promise<Record<string, string>> {
  // `$0` is the file; the script's own output goes nowhere, only `env -0` is read.
  const { stdout } = await run('/bin/sh', ['-c', '. "$0" >/dev/null 2>&1 </dev/null; env -0', path], {
    env,
    maxBuffer: 16 * 1024 * 1024,
    timeout: 10_000,
  });
  return envChanges(env, parseEnv0(stdout));
}
