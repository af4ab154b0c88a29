/**
 * Where baton keeps its peer record, logs, name counter and (by default) its store.
 * An empty `BATON_STATE_DIR` counts as unset, as an empty variable usually means
 * "not configured" in a Dockerfile or fly.toml.
 */
export const DEFAULT_STATE_DIR = '/tmp/baton';

export function stateDirFromEnv(env: NodeJS.ProcessEnv): string {
  return env['BATON_STATE_DIR'] || DEFAULT_STATE_DIR;
}
