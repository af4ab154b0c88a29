/**
 * Real releases for the tests, assembled by rebar3 (offline: the app needs only kernel
 * and stdlib) in a temp dir. Variants differ in exactly what `--mode auto` looks at.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TinyRelease {
  /** Release version (relx) and app version. */
  vsn?: string;
  appVsn?: string;
  /** Body of tiny_worker:hello/0. */
  hello?: string;
  /** Extra supervisor child spec text inside tiny_sup:init/1's list. */
  supChildren?: string;
  greeting?: string;
  vmArgsExtra?: string;
  /** A second application in the release. */
  withExtraApp?: boolean;
  appEnvExtra?: string;
  /** Adds module tiny_extra (a modules-list-only change of tiny.app). */
  extraModule?: boolean;
}

export function buildTinyRelease(base: string, name: string, o: TinyRelease = {}): string {
  const dir = join(base, name);
  const vsn = o.vsn ?? '0.1.0';
  const appVsn = o.appVsn ?? '0.1.0';
  mkdirSync(join(dir, 'apps/tiny/src'), { recursive: true });
  mkdirSync(join(dir, 'config'), { recursive: true });
  const apps = o.withExtraApp ? '[tiny, extra]' : '[tiny]';
  writeFileSync(
    join(dir, 'rebar.config'),
    `{erl_opts, [debug_info]}.\n{relx, [{release, {tiny, "${vsn}"}, ${apps}}, {dev_mode, false}, {include_erts, false}, {include_src, false}, {sys_config, "config/sys.config"}, {vm_args, "config/vm.args"}]}.\n`,
  );
  writeFileSync(join(dir, 'config/sys.config'), `[{tiny, [{greeting, "${o.greeting ?? 'hi'}"}]}].\n`);
  writeFileSync(join(dir, 'config/vm.args'), `-sname tiny\n-setcookie tiny\n${o.vmArgsExtra ?? ''}`);
  writeFileSync(
    join(dir, 'apps/tiny/src/tiny.app.src'),
    `{application, tiny, [{description, "tiny"}, {vsn, "${appVsn}"}, {registered, []}, {mod, {tiny_app, []}}, {applications, [kernel, stdlib]}, {env, [${o.appEnvExtra ?? ''}]}]}.\n`,
  );
  writeFileSync(
    join(dir, 'apps/tiny/src/tiny_app.erl'),
    `-module(tiny_app).\n-behaviour(application).\n-export([start/2, stop/1]).\nstart(_, _) -> tiny_sup:start_link().\nstop(_) -> ok.\n`,
  );
  writeFileSync(
    join(dir, 'apps/tiny/src/tiny_sup.erl'),
    `-module(tiny_sup).\n-behaviour(supervisor).\n-export([start_link/0, init/1]).\nstart_link() -> supervisor:start_link({local, ?MODULE}, ?MODULE, []).\ninit([]) -> {ok, {#{}, [${o.supChildren ?? ''}]}}.\n`,
  );
  writeFileSync(
    join(dir, 'apps/tiny/src/tiny_worker.erl'),
    `-module(tiny_worker).\n-export([hello/0]).\nhello() -> ${o.hello ?? 'hello'}.\n`,
  );
  if (o.extraModule)
    writeFileSync(join(dir, 'apps/tiny/src/tiny_extra.erl'), `-module(tiny_extra).\n-export([y/0]).\ny() -> 2.\n`);
  if (o.withExtraApp) {
    mkdirSync(join(dir, 'apps/extra/src'), { recursive: true });
    writeFileSync(
      join(dir, 'apps/extra/src/extra.app.src'),
      `{application, extra, [{vsn, "1.0.0"}, {registered, []}, {applications, [kernel, stdlib]}, {env, []}]}.\n`,
    );
    writeFileSync(join(dir, 'apps/extra/src/extra.erl'), `-module(extra).\n-export([x/0]).\nx() -> 1.\n`);
  }
  execFileSync('rebar3', ['release'], { cwd: dir, stdio: 'pipe', env: { ...process.env, REBAR_COLOR: 'none' } });
  return join(dir, '_build/default/rel/tiny');
}

/** Compiles one Erlang module and returns the .beam bytes' path. */
export function compileModule(base: string, module: string, body = ''): string {
  mkdirSync(base, { recursive: true });
  const src = join(base, `${module}.erl`);
  writeFileSync(src, `-module(${module}).\n-export([f/0]).\nf() -> ok.\n${body}`);
  execFileSync('erlc', ['-o', base, src], { stdio: 'pipe' });
  return join(base, `${module}.beam`);
}
