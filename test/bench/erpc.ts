/**
 * `npm run bench -- erpc [calls] [durationMs]`: baton against a native hidden erl node,
 * both calling `erpc:call(Peer, baton_dist_helper, echo, [X])` on the same peer in the
 * same run. Latency p50/p99 of a tiny call and of a 64 KiB echo, throughput with 1 and
 * 64 concurrent callers; the table ends with baton/native ratios.
 *
 * `npm run bench -- erpc [calls=5000] [durationMs=3000] [rounds=3]`: rounds alternate
 * native and baton so that load from elsewhere on the machine hits both alike.
 */
import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tuple, atom, type Term } from '../../src/etf/index.js';
import { Node, shortHostname } from '../../src/distribution/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const EBIN = join(here, '..', '..', '_build', 'default', 'lib', 'baton', 'test', 'erl');

interface Figures {
  tiny: [number, number];
  echo64k: [number, number];
  tput1: number;
  tput64: number;
}

function startErl(name: string, cookie: string, extra: string[], evalCode: string): { done: Promise<string>; kill(): void } {
  const proc = spawn('erl', ['-sname', name, '-setcookie', cookie, '-noshell', '-pa', EBIN, ...extra, '-eval', evalCode], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return {
    done: new Promise((resolve) => proc.on('exit', () => resolve(out))),
    kill: () => proc.kill('SIGKILL'),
  };
}

async function waitForPeer(node: Node, peer: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      await node.connect(peer);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`peer ${peer} did not come up`);
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.max(0, Math.round(sorted.length * q) - 1)]!;
}

async function batonFigures(node: Node, peer: string, n: number, durMs: number): Promise<Figures> {
  const tiny = atom('ok');
  const big = Buffer.alloc(65536, 'x');
  const call = (arg: Buffer | typeof tiny): Promise<unknown> => node.erpc(peer, 'baton_dist_helper', 'echo', [arg]);
  const latency = async (arg: Buffer | typeof tiny, count: number): Promise<[number, number]> => {
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = process.hrtime.bigint();
      await call(arg);
      samples.push(Number(process.hrtime.bigint() - t0));
    }
    samples.sort((a, b) => a - b);
    return [percentile(samples, 0.5), percentile(samples, 0.99)];
  };
  const throughput = async (callers: number): Promise<number> => {
    const deadline = Date.now() + durMs;
    const t0 = process.hrtime.bigint();
    const counts = await Promise.all(
      Array.from({ length: callers }, async () => {
        let k = 0;
        while (Date.now() < deadline) {
          await call(tiny);
          k++;
        }
        return k;
      }),
    );
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    return Math.round(counts.reduce((a, b) => a + b, 0) / secs);
  };
  await latency(tiny, 500);
  await latency(big, 100);
  return {
    tiny: await latency(tiny, n),
    echo64k: await latency(big, Math.max(1, Math.floor(n / 5))),
    tput1: await throughput(1),
    tput64: await throughput(64),
  };
}

function nativeFromTerm(t: Term): Figures {
  const e = (t as Tuple).elements;
  const pair = (x: Term | undefined): [number, number] => [Number((x as Tuple).elements[0]), Number((x as Tuple).elements[1])];
  return { tiny: pair(e[0]), echo64k: pair(e[1]), tput1: Number(e[2]), tput64: Number(e[3]) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function combine(rounds: Figures[]): Figures {
  return {
    tiny: [median(rounds.map((r) => r.tiny[0])), median(rounds.map((r) => r.tiny[1]))],
    echo64k: [median(rounds.map((r) => r.echo64k[0])), median(rounds.map((r) => r.echo64k[1]))],
    tput1: median(rounds.map((r) => r.tput1)),
    tput64: median(rounds.map((r) => r.tput64)),
  };
}

export async function run(args: string[]): Promise<void> {
  const n = Number(args[0] ?? 5000);
  const durMs = Number(args[1] ?? 3000);
  const rounds = Number(args[2] ?? 3);
  const cookie = `bench_${process.pid}`;
  const host = shortHostname();
  const peerName = `bench_peer_${process.pid}`;
  const driverName = `bench_native_${process.pid}`;
  const peer = startErl(peerName, cookie, [], 'receive after infinity -> ok end.');
  // The native side: a hidden erl node that runs the same measurements when asked.
  const driver = startErl(driverName, cookie, ['-hidden'], 'receive after infinity -> ok end.');
  const node = new Node({ name: `bench_baton_${process.pid}`, cookie, hidden: true, log: () => {} });
  try {
    const peerFull = `${peerName}@${host}`;
    const driverFull = `${driverName}@${host}`;
    await waitForPeer(node, peerFull);
    await waitForPeer(node, driverFull);
    await node.erpc(peerFull, 'code', 'add_patha', [[...EBIN].map((c) => c.charCodeAt(0))]);
    console.log(`${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} (the machine's other work lands on both sides alike)`);
    console.log(
      `peer ${peerFull}; ${rounds} interleaved rounds (native, then baton), medians shown; ` +
        `${n} latency samples (${Math.floor(n / 5)} for 64 KiB), ${durMs} ms per throughput run`,
    );
    const nativeRounds: Figures[] = [];
    const batonRounds: Figures[] = [];
    for (let r = 0; r < rounds; r++) {
      nativeRounds.push(nativeFromTerm(await node.erpc(driverFull, 'baton_bench', 'round', [atom(peerFull), n, durMs], { timeoutMs: 600_000 })));
      batonRounds.push(await batonFigures(node, peerFull, n, durMs));
    }
    const native = combine(nativeRounds);
    const baton = combine(batonRounds);
    const us = (ns: number): string => (ns / 1000).toFixed(1);
    const rows: [string, string, string, string][] = [
      ['tiny call p50 (µs)', us(native.tiny[0]), us(baton.tiny[0]), (baton.tiny[0] / native.tiny[0]).toFixed(2)],
      ['tiny call p99 (µs)', us(native.tiny[1]), us(baton.tiny[1]), (baton.tiny[1] / native.tiny[1]).toFixed(2)],
      ['64 KiB echo p50 (µs)', us(native.echo64k[0]), us(baton.echo64k[0]), (baton.echo64k[0] / native.echo64k[0]).toFixed(2)],
      ['64 KiB echo p99 (µs)', us(native.echo64k[1]), us(baton.echo64k[1]), (baton.echo64k[1] / native.echo64k[1]).toFixed(2)],
      ['throughput, 1 caller (calls/s)', String(native.tput1), String(baton.tput1), (baton.tput1 / native.tput1).toFixed(2)],
      ['throughput, 64 callers (calls/s)', String(native.tput64), String(baton.tput64), (baton.tput64 / native.tput64).toFixed(2)],
    ];
    console.log('');
    console.log('| metric | native erl (hidden) | baton | baton/native |');
    console.log('|---|---:|---:|---:|');
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
    console.log('');
    console.log('Latency ratios: lower is better (target ≤ 1.2). Throughput ratios: higher is better (target ≥ 1.0).');
  } finally {
    await node.close();
    peer.kill();
    driver.kill();
  }
}
