/** `baton publish`: a release directory or tarball becomes a layer; `--wait` follows the fleet. */
import { publish, type UpgradeMode } from '../release/index.js';
import { type FleetOutcome, waitForFleet } from '../store/index.js';
import { mib, type Out, openFrom, parse, UsageError } from './io.js';

function progressPrinter(io: Out): (sent: number, total: number) => void {
  let lastQuarter = -1;
  let lastDraw = 0;
  return (sent, total) => {
    const pct = total === 0 ? 100 : Math.floor((sent / total) * 100);
    if (io.tty) {
      const now = Date.now();
      if (now - lastDraw < 100 && sent < total) return;
      lastDraw = now;
      io.err(`\ruploading ${pct}% (${mib(sent)} / ${mib(total)})${sent >= total ? '\n' : ''}`);
    } else if (Math.floor(pct / 25) > lastQuarter) {
      lastQuarter = Math.floor(pct / 25);
      io.err(`uploading ${pct}% (${mib(sent)} / ${mib(total)})\n`);
    }
  };
}

export async function publishCommand(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(args, {
    app: { type: 'string' },
    mode: { type: 'string' },
    version: { type: 'string' },
    wait: { type: 'boolean' },
    timeout: { type: 'string' },
    keep: { type: 'string' },
    store: { type: 'string' },
  });
  const [input, ...extra] = positionals;
  if (input === undefined || extra.length > 0) throw new UsageError('publish takes one release directory or tarball');
  const app = values.app ?? io.env.BATON_APP;
  if (typeof app !== 'string') throw new UsageError('--app is required');
  const mode = values.mode;
  if (mode !== 'hot' && mode !== 'blue-green' && mode !== 'auto')
    throw new UsageError('--mode must be hot, blue-green or auto');
  const keep = values.keep === undefined ? undefined : Number(values.keep);
  if (keep !== undefined && (!Number.isInteger(keep) || keep < 1))
    throw new UsageError('--keep must be a positive integer');
  const timeoutS = values.timeout === undefined ? 600 : Number(values.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new UsageError('--timeout must be a number of seconds');

  const store = openFrom(values, io);
  const r = await publish({
    store,
    app,
    input,
    mode: mode as UpgradeMode | 'auto',
    ...(typeof values.version === 'string' ? { version: values.version } : {}),
    ...(keep !== undefined ? { keep } : {}),
    ...(io.env.BATON_IMAGE_REF || io.env.FLY_IMAGE_REF
      ? { imageRef: (io.env.BATON_IMAGE_REF || io.env.FLY_IMAGE_REF)! }
      : {}),
    onProgress: progressPrinter(io),
    log: (l) => io.out(`${l}\n`),
  });
  io.out(
    `published ${app} ${r.layer.version} as ${r.mode} (upgrade ${r.upgradeId}, sha256 ${r.layer.sha256}${r.uploaded ? '' : ', tarball already there'})\n`,
  );
  if (r.pruned.length > 0) io.out(`pruned ${r.pruned.join(', ')}\n`);
  if (values.wait !== true) return 0;

  const pollMs = Number(io.env.BATON_POLL_MS) || 1000;
  let shown = '';
  const o = await waitForFleet(store, app, r.doc, r.upgradeId, {
    timeoutMs: timeoutS * 1000,
    pollMs,
    onProgress: (p) => {
      const line = `waiting: ${p.completed.length + p.failed.length}/${p.expected.length} machines reported`;
      if (line !== shown && p.expected.length > 0) io.err(`${line}\n`);
      shown = line;
    },
  });
  return reportFleet(o, io);
}

function reportFleet(o: FleetOutcome, io: Out): number {
  if (o.expected.length === 0) {
    io.out('no machine reported for the previous upgrade: nothing to wait for\n');
    return 0;
  }
  io.out(`${o.completed.length} of ${o.expected.length} machines completed\n`);
  for (const f of o.failed) io.out(`failed: ${f.machine}: ${f.error}\n`);
  for (const t of o.timedOut) io.out(`timed out: ${t}\n`);
  return o.failed.length === 0 && o.timedOut.length === 0 ? 0 : 1;
}
