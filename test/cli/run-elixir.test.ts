/** `baton run` with the Elixir release: runtime config from the run's environment, and remsh through iex. */
import { describe, expect, it } from 'vitest';
import { getOnce } from '../support/nodes.js';
import { peerNode, recordedPort, remshEval, runEnv, startRun, useRuns } from '../support/run.js';

const t = useRuns();

describe('baton run (Elixir)', () => {
  it('runs demo_ex with its runtime config; remsh opens iex on the peer', async () => {
    const env = runEnv(t.fx.demoEx, { DEMO_EX_VALUE: 'cli' });
    const run = startRun(env);
    const node = await peerNode(env);
    const port = recordedPort(env);
    expect(await getOnce(`http://127.0.0.1:${port}/`)).toMatchObject({
      node,
      runtime_value: 'CLI/prod',
      consolidated: true,
    });
    // The peer's Logger output reaches baton's stdout.
    await expect.poll(() => run.output(), { timeout: 5000 }).toMatch(/runtime_value=CLI\/prod/);

    await remshEval(env, '{node(), Application.fetch_env!(:demo_ex, :runtime_value)}', `{:"${node}", "CLI/prod"}`);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    expect(run.output()).toMatch(/SIGINT: stopping the peer/);
  });
});
