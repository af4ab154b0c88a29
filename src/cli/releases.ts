/** `baton releases`: what is published, with sizes, dates and which layer uses it. */
import { mib, type Out, openFrom, parse, UsageError } from './io.js';

export async function releasesCommand(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(args, {
    app: { type: 'string' },
    store: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length > 0) throw new UsageError('releases takes no arguments');
  const store = openFrom(values, io);
  const list = await store.listReleases(typeof values.app === 'string' ? values.app : undefined);
  if (values.json === true) {
    io.out(`${JSON.stringify(list, null, 2)}\n`);
    return 0;
  }
  if (list.length === 0) {
    io.out(`nothing published in ${store.url}\n`);
    return 0;
  }
  const rows = list.map((r) => [r.app, r.version, mib(r.size), r.lastModified.toISOString(), r.inUse.join('+')]);
  const head = ['APP', 'VERSION', 'SIZE', 'PUBLISHED', 'IN USE'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows])
    io.out(
      `${r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()}\n`,
    );
  return 0;
}
