/**
 * `baton run` on a Phoenix-shaped release as Fly runs it: FLY_PRIVATE_IP (here ::1) and
 * the env.sh Fly's template writes give long names over inet6_tcp, the socket is bound
 * on `::` and injected into the endpoint, `baton status` names what it found, and
 * SIGTERM stops the peer by the ThousandIsland recipe.
 */
import { describe, expect, it } from 'vitest';
import { baton } from '../support/cli.js';
import { getOnce, uniqueName } from '../support/nodes.js';
import { peerNode, recordedPort, remshEval, runEnv, startRun, useRuns } from '../support/run.js';

const t = useRuns();

describe('baton run, Phoenix on Fly', () => {
  it('FLY_PRIVATE_IP=::1: <app>-<ref>-<gen>@::1, served over IPv4 and IPv6, status names the endpoints, remsh reaches it, SIGTERM stops by the recipe', async () => {
    const app = uniqueName('fly').replace(/[^a-z0-9-]/g, '-');
    const env = runEnv(t.fx.demoPhx.bandit, {
      FLY_PRIVATE_IP: '::1',
      FLY_APP_NAME: app,
      FLY_IMAGE_REF: 'registry.fly.io/demo:deployment-01JABCDEF',
      SECRET_KEY_BASE: 's'.repeat(64),
    });
    delete env['BATON_BIND'];
    const run = startRun(env);
    const node = await peerNode(env);
    const port = recordedPort(env);
    expect(node).toMatch(new RegExp(`^${app}-01JABCDEF-\\d+@::1$`));
    for (const host of ['127.0.0.1', '[::1]']) {
      expect(await getOnce(`http://${host}:${port}/`)).toMatchObject({ server: 'bandit', node });
    }
    await expect
      .poll(() => run.output(), { timeout: 10_000 })
      .toContain('DemoPhxWeb.Endpoint (demo_phx, bandit) listens on the handed socket (fd 3)');

    const st = baton(['status'], env);
    expect(st.stderr).toBe('');
    expect(st.status).toBe(0);
    expect(st.stdout).toContain(`peer ${node}`);
    expect(st.stdout).toContain('phoenix DemoPhxWeb.Endpoint (demo_phx, bandit)');
    expect(st.stdout).toMatch(new RegExp(`thousand_island <[\\d.]+> port ${port}`));

    // An operator's remote shell reaches this peer (not the base name env.sh exports).
    await remshEval(env, 'node()', `:"${node}"`);

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.output()).toMatch(
      /stopped accepting by thousand_island \(suspend \d+ ms, park \d+ ms, close \d+ ms, resume \d+ ms, drain \d+ ms\)/,
    );
  });

  it('baton status without a running peer says so in one sentence and exits 1', () => {
    const env = runEnv(t.fx.demoPhx.bandit);
    const r = baton(['status'], env);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `baton status: no peer is recorded in ${env['BATON_STATE_DIR']} (is \`baton run\` running with BATON_STATE_DIR=${env['BATON_STATE_DIR']}?)\n`,
    );
  });
});
