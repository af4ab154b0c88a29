/** `baton status --fleet`: per-machine results of the layers current.json holds. */
import { type Out, openFrom, parse, UsageError } from './io.js';

export async function fleetStatusCommand(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(args, {
    fleet: { type: 'boolean' },
    app: { type: 'string' },
    store: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length > 0) throw new UsageError('status takes no arguments');
  const app = values.app ?? io.env.BATON_APP;
  if (typeof app !== 'string') throw new UsageError('--app is required');
  const store = openFrom(values, io);
  const { doc } = await store.readCurrent(app);
  const layers = [
    ['blue-green', doc?.blue_green_upgrade ?? null],
    ['hot', doc?.hot_upgrade ?? null],
  ] as const;
  const report: Record<string, unknown> = { image_ref: doc?.image_ref ?? null };
  for (const [name, layer] of layers) {
    if (layer === null) {
      report[name] = null;
      continue;
    }
    const results = await store.readResults(app, layer.upgrade_id);
    report[name] = {
      version: layer.version,
      upgrade_id: layer.upgrade_id,
      published_at: layer.published_at,
      machines: Object.fromEntries(results),
    };
  }
  if (values.json === true) {
    io.out(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  io.out(`${app}: image ${doc?.image_ref ?? '(none recorded)'}\n`);
  for (const [name, layer] of layers) {
    if (layer === null) {
      io.out(`${name}: none\n`);
      continue;
    }
    const r = report[name] as {
      machines: Record<string, { state: string; error?: string; timings: Record<string, number> }>;
    };
    const machines = Object.entries(r.machines);
    io.out(
      `${name}: ${layer.version} (upgrade ${layer.upgrade_id}, published ${layer.published_at}), ${machines.length} machine${machines.length === 1 ? '' : 's'} reported\n`,
    );
    for (const [m, res] of machines) {
      const total = res.timings.total;
      io.out(`  ${m}  ${res.state}${total !== undefined ? `  ${total} ms` : ''}${res.error ? `  ${res.error}` : ''}\n`);
    }
  }
  return 0;
}
