import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { baton } from '../support/cli.js';
import { repoRoot } from '../support/erl.js';

describe('baton command line', () => {
  it('prints its version', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    const result = baton(['version']);
    expect(result.status).toBe(0);
    expect(result.stdout.trim()).toBe(`baton ${pkg.version}`);
  });

  it('prints usage for help', () => {
    const result = baton(['help']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^usage: baton <command>/);
  });

  it('exits 2 with one readable sentence and the usage for an unknown command', () => {
    const result = baton(['frobnicate']);
    expect(result.status).toBe(2);
    expect(result.stderr.split('\n')[0]).toBe("baton: unknown command 'frobnicate'.");
    expect(result.stderr).toContain('usage: baton');
  });
});
