/**
 * One fetch + verify + extract from a file store, in a process of its own so its peak
 * RSS is the extraction's. Prints JSON on stdout.
 */
import { fetchRelease } from '../../src/release/index.js';
import { openStore } from '../../src/store/index.js';

const [storeUrl, key, sha256, dest] = process.argv.slice(2);
const store = openStore(storeUrl!);
const rssBefore = process.resourceUsage().maxRSS;
const t0 = process.hrtime.bigint();
await fetchRelease(key!, dest!, { store, sha256: sha256!, expect: 'full' });
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
process.stdout.write(JSON.stringify({ ms, maxRssKiB: process.resourceUsage().maxRSS, rssBeforeKiB: rssBefore }));
