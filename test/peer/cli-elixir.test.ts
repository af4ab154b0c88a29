/** `baton run` with the Elixir release: runtime config from the run's environment, and remsh through iex. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/erl.js';
import { fixtures, type Fixtures } from '../support/fixtures.js';
import { freePort, getOnce } from '../support/nodes.js';
import { cleanupRuns, peerNode, runEnv, startRun, trackChild } from '../support/run.js';

let fx: Fixtures;

beforeAll(async () => {
  fx = await fixtures();
});

afterAll(cleanupRuns);

describe('baton run (Elixir)', () => {
  it('runs demo_ex with its runtime config; remsh opens iex on the peer', async () => {
    const port = await freePort();
    const env = runEnv(fx.demoEx, { BATON_PORT: String(port), DEMO_EX_VALUE: 'cli' });
    const run = startRun(env);
    const node = await peerNode(env);
    expect(await getOnce(`http://127.0.0.1:${port}/`)).toMatchObject({ node, runtime_value: 'CLI/prod', consolidated: true });
    // The peer's Logger output reaches baton's stdout.
    await expect.poll(() => run.output(), { timeout: 5000 }).toMatch(/runtime_value=CLI\/prod/);

    const cli = `${process.execPath} --import tsx ${join(repoRoot, 'src/cli/main.ts')} remsh`;
    const sh = spawn('script', ['-qfc', cli, '/dev/null'], { cwd: repoRoot, env: { ...process.env, ...env }, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    trackChild(sh);
    let out = '';
    sh.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await expect.poll(() => out, { timeout: 30_000 }).toMatch(/iex\(\S+\)\d+>/);
    sh.stdin!.write('{node(), Application.fetch_env!(:demo_ex, :runtime_value)}\n');
    await expect.poll(() => out, { timeout: 10_000 }).toContain(`{:"${node}", "CLI/prod"}`);
    const exited = new Promise<number | null>((r) => sh.once('exit', (c) => r(c)));
    sh.stdin!.write('\x07');
    await expect.poll(() => out, { timeout: 10_000 }).toMatch(/-->/);
    sh.stdin!.write('q\n');
    expect(await exited).toBe(0);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    expect(run.output()).toMatch(/SIGINT: stopping the peer/);
  });
});
