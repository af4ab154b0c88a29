/** scripts/ensure-toolchain.sh, as a user without Erlang and without root meets it. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../support/erl.js';

describe('ensure-toolchain.sh', () => {
  it('names what is missing and prints the exact install command when it cannot install', () => {
    // A PATH with a shell and `id` but no Erlang, run as an unprivileged user.
    const bin = mkdtempSync(join(tmpdir(), 'baton-nopath-'));
    for (const tool of ['bash', 'id']) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
    const script = join(repoRoot, 'scripts/ensure-toolchain.sh');
    const asNobody =
      process.getuid?.() === 0 ? ['/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
    const [cmd, ...args] = [...asNobody, '/usr/bin/bash', script];
    const result = spawnSync(cmd!, args, { env: { PATH: bin }, encoding: 'utf8' });
    rmSync(bin, { recursive: true, force: true });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('baton: missing erl erlc rebar3 elixir mix');
    expect(result.stderr).toContain(
      "sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends erlang-nox erlang-dev elixir rebar3'",
    );
  });

  it('passes when the toolchain is on PATH', () => {
    const result = spawnSync('bash', [join(repoRoot, 'scripts/ensure-toolchain.sh')], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});
