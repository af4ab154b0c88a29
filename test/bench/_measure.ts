/** Shared pieces of the benchmarks: timing loops and table printing. */

/** Operations per second of `fn`, timed in batches for at least `minMs` after a warm-up. */
export function opsPerSecond(fn: () => unknown, minMs = 400): number {
  const warmUntil = performance.now() + minMs / 4;
  while (performance.now() < warmUntil) fn();
  let ops = 0;
  let batch = 1;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(minMs * 1e6));
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    now = process.hrtime.bigint();
    if (batch < 1 << 16 && now - start < deadline - start) batch *= 2;
  }
  return ops / (Number(now - start) / 1e9);
}

/** The median of several rounds, taken in turn across contenders so drift hits all of them alike. */
export function interleaved(
  contenders: Record<string, () => unknown>,
  rounds = 5,
  minMs = 200,
): Record<string, number> {
  const samples: Record<string, number[]> = {};
  for (const name of Object.keys(contenders)) samples[name] = [];
  for (let r = 0; r < rounds; r++) {
    for (const [name, fn] of Object.entries(contenders)) {
      // Garbage left by the previous sample would otherwise be collected on this one's time.
      (globalThis as { gc?: () => void }).gc?.();
      samples[name]!.push(opsPerSecond(fn, minMs));
    }
  }
  const out: Record<string, number> = {};
  for (const [name, values] of Object.entries(samples)) {
    values.sort((a, b) => a - b);
    out[name] = values[Math.floor(values.length / 2)]!;
  }
  return out;
}

export function formatRate(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(1);
}

/** A markdown table, so the output can go into the README as it is. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
