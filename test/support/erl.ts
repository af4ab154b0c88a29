/** Running real `erl` and `erlc` from tests: compile helper modules, evaluate expressions. */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const repoRoot = resolve(import.meta.dirname, '../..');

const compiled: string[] = [];
// The directories live as long as the test file's process: nodes started from them load lazily.
process.once('exit', () => {
  for (const dir of compiled) rmSync(dir, { recursive: true, force: true });
});

/** Compiles the named modules of test/erl into a fresh directory (removed when the process exits) and returns it. */
export async function compileTestModules(...modules: string[]): Promise<string> {
  const out = await mkdtemp(join(tmpdir(), 'baton-erl-'));
  compiled.push(out);
  await run('erlc', ['-o', out, ...modules.map((m) => join(repoRoot, 'test/erl', `${m}.erl`))]);
  return out;
}

/** Runs `Expr` (ending without a dot) in a fresh, non-distributed erl; rejects on a non-zero exit. */
export async function erlEval(codePath: string, expr: string, timeoutMs = 120_000): Promise<string> {
  // A crash inside -eval leaves the node running; turn it into an exit status instead.
  const guarded = `try (${expr}) of _ -> halt(0) catch C:R:S -> io:format(standard_error, "~p:~p~n~p~n", [C, R, S]), halt(1) end.`;
  const { stdout } = await run('erl', ['-noshell', '-pa', codePath, '-eval', guarded], {
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/** An Erlang string literal for a path or other text. */
export function erlString(text: string): string {
  return JSON.stringify(text);
}
