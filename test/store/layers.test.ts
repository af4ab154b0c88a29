/** The two-layer rules in every order of publishes, against an independent model. */
import { describe, expect, it } from 'vitest';
import {
  applyOp,
  type CurrentDoc,
  type CurrentOp,
  type Layer,
  layersFor,
  parseDoc,
  previousUpgrade,
  serializeDoc,
} from '../../src/store/index.js';

function layer(id: string): Layer {
  return {
    version: id,
    tarball: `releases/app/${id}.tar.gz`,
    sha256: 'a'.repeat(64),
    size: 1,
    source_image_ref: null,
    published_at: '2026-01-01T00:00:00.000Z',
    upgrade_id: id,
  };
}

type Step = { kind: 'hot' | 'blue-green'; id: string } | { kind: 'cold-deploy'; id: string; image: string };

function op(s: Step): CurrentOp {
  return s.kind === 'cold-deploy'
    ? { kind: 'cold-deploy', id: s.id, image_ref: s.image }
    : { kind: s.kind, id: s.id, layer: layer(s.id) };
}

/**
 * The model, stated from the rules rather than from the code: the blue-green layer is
 * the last blue-green publish after the last cold deploy that changed the image; the
 * hot layer is the last hot publish after both of those.
 */
function model(steps: Step[]): { bg: string | null; hot: string | null; image: string | null } {
  let image: string | null = null;
  let resetAt = -1;
  steps.forEach((s, i) => {
    if (s.kind === 'cold-deploy' && s.image !== image) {
      if (image !== null) resetAt = i;
      image = s.image;
    }
  });
  const after = (from: number, kind: Step['kind']): number => {
    let last = -1;
    steps.forEach((s, i) => {
      if (i > from && s.kind === kind) last = i;
    });
    return last;
  };
  const bgAt = after(resetAt, 'blue-green');
  const hotAt = after(Math.max(resetAt, bgAt), 'hot');
  return { bg: bgAt < 0 ? null : steps[bgAt]!.id, hot: hotAt < 0 ? null : steps[hotAt]!.id, image };
}

function run(steps: Step[]): CurrentDoc | undefined {
  let doc: CurrentDoc | undefined;
  for (const s of steps) doc = applyOp(doc, 'app', op(s)) ?? doc;
  return doc;
}

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((x, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((p) => [x, ...p]));
}

describe('layer rules', () => {
  it('hot keeps blue-green, blue-green clears hot', () => {
    let doc = applyOp(undefined, 'app', op({ kind: 'blue-green', id: 'b1' }))!;
    doc = applyOp(doc, 'app', op({ kind: 'hot', id: 'h1' }))!;
    expect([doc.blue_green_upgrade?.upgrade_id, doc.hot_upgrade?.upgrade_id]).toEqual(['b1', 'h1']);
    doc = applyOp(doc, 'app', op({ kind: 'hot', id: 'h2' }))!;
    expect([doc.blue_green_upgrade?.upgrade_id, doc.hot_upgrade?.upgrade_id]).toEqual(['b1', 'h2']);
    doc = applyOp(doc, 'app', op({ kind: 'blue-green', id: 'b2' }))!;
    expect([doc.blue_green_upgrade?.upgrade_id, doc.hot_upgrade]).toEqual(['b2', null]);
  });

  it('a cold deploy (another image_ref) resets both layers; the same image changes nothing', () => {
    let doc = applyOp(undefined, 'app', { kind: 'cold-deploy', id: 'c0', image_ref: 'img:1' })!;
    doc = applyOp(doc, 'app', op({ kind: 'blue-green', id: 'b1' }))!;
    doc = applyOp(doc, 'app', op({ kind: 'hot', id: 'h1' }))!;
    expect(applyOp(doc, 'app', { kind: 'cold-deploy', id: 'c1', image_ref: 'img:1' })).toBeUndefined();
    expect(layersFor(doc, 'img:1')).toMatchObject({
      coldDeploy: false,
      blueGreen: { upgrade_id: 'b1' },
      hot: { upgrade_id: 'h1' },
    });
    expect(layersFor(doc, 'img:2')).toEqual({ coldDeploy: true, blueGreen: null, hot: null });
    const reset = applyOp(doc, 'app', { kind: 'cold-deploy', id: 'c2', image_ref: 'img:2' })!;
    expect(reset).toMatchObject({ image_ref: 'img:2', blue_green_upgrade: null, hot_upgrade: null });
  });

  it('agrees with the model for every order of two hot, two blue-green and two cold deploys', () => {
    const steps: Step[] = [
      { kind: 'hot', id: 'h1' },
      { kind: 'hot', id: 'h2' },
      { kind: 'blue-green', id: 'b1' },
      { kind: 'blue-green', id: 'b2' },
      { kind: 'cold-deploy', id: 'c1', image: 'img:A' },
      { kind: 'cold-deploy', id: 'c2', image: 'img:B' },
    ];
    let checked = 0;
    for (const order of permutations(steps)) {
      const doc = run(order)!;
      const m = model(order);
      expect(
        {
          bg: doc.blue_green_upgrade?.upgrade_id ?? null,
          hot: doc.hot_upgrade?.upgrade_id ?? null,
          image: doc.image_ref,
        },
        order.map((s) => s.id).join(','),
      ).toEqual(m);
      checked++;
    }
    expect(checked).toBe(720);
  });

  it('re-applying an operation already in the log is a no-op (a retried write that had landed)', () => {
    const doc = run([
      { kind: 'blue-green', id: 'b1' },
      { kind: 'hot', id: 'h1' },
    ])!;
    expect(applyOp(doc, 'app', op({ kind: 'blue-green', id: 'b1' }))).toBeUndefined();
    expect(doc.generation).toBe(2);
    expect(previousUpgrade(doc, 'h1')).toBe('b1');
    expect(previousUpgrade(doc, 'b1')).toBeUndefined();
  });

  it('round-trips through JSON and refuses what is not a current.json', () => {
    const doc = run([
      { kind: 'blue-green', id: 'b1' },
      { kind: 'hot', id: 'h1' },
    ])!;
    expect(parseDoc(serializeDoc(doc), 'k')).toEqual(doc);
    expect(() => parseDoc('{"schema_version": 1, ', 'releases/app-current.json')).toThrow(
      /releases\/app-current\.json is unusable: not JSON/,
    );
    expect(() => parseDoc(JSON.stringify({ ...doc, schema_version: 7 }), 'k')).toThrow(/unknown schema version 7/);
    expect(() =>
      parseDoc(JSON.stringify({ ...doc, hot_upgrade: { ...doc.hot_upgrade, sha256: 'nope' } }), 'k'),
    ).toThrow(/hot_upgrade\.sha256 is not a sha256/);
  });
});
