/** Per-machine outcome of one upgrade: `releases/<app>-results/<upgrade_id>/<machine_id>.json`. */

export type ResultState = 'pending' | 'completed' | 'failed';

export interface MachineResult {
  machine_id: string;
  upgrade_id: string;
  state: ResultState;
  error?: string;
  /** Milliseconds per phase (download, extract, boot, cutover, ...). */
  timings: Record<string, number>;
  updated_at: string;
}

export function resultsPrefix(app: string, upgradeId: string): string {
  return `releases/${app}-results/${upgradeId}/`;
}

export function parseResult(bytes: Buffer): MachineResult | undefined {
  try {
    const r = JSON.parse(bytes.toString()) as Partial<MachineResult>;
    if (typeof r.machine_id !== 'string' || typeof r.upgrade_id !== 'string') return undefined;
    if (r.state !== 'pending' && r.state !== 'completed' && r.state !== 'failed') return undefined;
    return { timings: {}, updated_at: '', ...r } as MachineResult;
  } catch {
    return undefined;
  }
}
