import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { BusyPoll, defaultBusyPollMs } from '../../src/distribution/busy-poll.js';

/** Loop iterations that pass while the loop waits `ms` on a timer (each turn runs the immediates due). */
async function turnsDuring(ms: number, counter: () => number): Promise<number> {
  const before = counter();
  await sleep(ms);
  return counter() - before;
}

const nextLoopTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * How many times `counter` moved over `n` turns of the event loop. A spinner runs once a
 * turn (each run schedules the next), however loaded the machine: n for one spinner, 2n
 * for two, 0 for none.
 */
async function countOverLoopTurns(n: number, counter: () => number): Promise<number> {
  await nextLoopTurn();
  const before = counter();
  for (let i = 0; i < n; i++) await nextLoopTurn();
  return counter() - before;
}

/** No pause or sleep between turns: what is measured is the loop's turns, not time. */
const PLAIN = { pauseUs: 0, crowd: 1_000_000, sleepUsPerCall: 0 };

describe('BusyPoll', () => {
  it('keeps the loop turning while something is awaited, within its window', async () => {
    let awaited = true;
    let turns = 0;
    const poll = new BusyPoll(
      60_000,
      () => {
        turns++;
        return awaited ? 1 : 0;
      },
      () => 0,
      PLAIN,
    );
    poll.arm();
    expect(poll.active).toBe(true);
    expect(await countOverLoopTurns(10, () => turns)).toBe(10);
    awaited = false;
    await nextLoopTurn();
    await nextLoopTurn();
    expect(poll.active).toBe(false);
    expect(await countOverLoopTurns(10, () => turns)).toBe(0);
  });

  it('stops when its window has passed even if replies are still awaited', async () => {
    const poll = new BusyPoll(5, () => 1);
    const t0 = performance.now();
    poll.arm();
    // Polled rather than slept: on a loaded machine a timer can fire before the spinner's next turn.
    await expect.poll(() => poll.active, { timeout: 2000, interval: 1 }).toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(5);
  });

  it('polls for 0.2 ms by default with two CPUs or more, not at all on one', () => {
    expect(defaultBusyPollMs(1)).toBe(0);
    expect(defaultBusyPollMs(2)).toBe(0.2);
    expect(defaultBusyPollMs(16)).toBe(0.2);
  });

  it('does nothing with a window of 0', () => {
    const poll = new BusyPoll(0, () => 1);
    poll.arm();
    expect(poll.active).toBe(false);
  });

  it('re-arming extends the window without starting a second spinner', async () => {
    // The window is judged on a clock of the test's own, so how slowly a loaded machine
    // turns the loop cannot move the moments checked.
    let clock = 1000;
    let turns = 0;
    const poll = new BusyPoll(
      300,
      () => {
        turns++;
        return 1;
      },
      () => 0,
      PLAIN,
      () => clock,
    );
    poll.arm();
    poll.arm();
    expect(await countOverLoopTurns(5, () => turns)).toBe(5);
    clock = 1150;
    poll.arm();
    expect(await countOverLoopTurns(5, () => turns)).toBe(5);
    // Past the first window (1300), inside the second (1450): still turning.
    clock = 1400;
    expect(await countOverLoopTurns(5, () => turns)).toBe(5);
    expect(poll.active).toBe(true);
    // The second window has passed: the spinner stops at its next turn.
    clock = 1450;
    await nextLoopTurn();
    await nextLoopTurn();
    expect(poll.active).toBe(false);
    expect(await countOverLoopTurns(5, () => turns)).toBe(0);
  });
});

describe('BusyPoll between idle turns', () => {
  /** Turns of a spinner and the CPU it used over `ms`, after a warm-up in which its wait is calibrated. */
  async function spinFor(
    ms: number,
    opts: { inFlight: number; progress: () => number; pauseUs: number; crowd?: number; sleepUsPerCall?: number },
  ): Promise<{ turns: number; cpuMs: number; wallMs: number }> {
    let turns = 0;
    let awaited = opts.inFlight;
    const poll = new BusyPoll(
      10_000,
      () => {
        turns++;
        return awaited;
      },
      opts.progress,
      {
        pauseUs: opts.pauseUs,
        crowd: opts.crowd ?? 1_000_000,
        sleepUsPerCall: opts.sleepUsPerCall ?? 0,
      },
    );
    poll.arm();
    await sleep(100);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const n = await turnsDuring(ms, () => turns);
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    awaited = 0;
    await expect.poll(() => poll.active, { timeout: 2000, interval: 1 }).toBe(false);
    return { turns: n, cpuMs: (cpu.user + cpu.system) / 1000, wallMs };
  }

  it('waits about its pause in JS after a turn that brought nothing', async () => {
    // 1 ms pauses: about one turn per ms however fast the machine (the pause is a calibrated
    // loop, so allow it to come out a third short), where without them there are thousands.
    const { turns, wallMs } = await spinFor(100, { inFlight: 1, progress: () => 0, pauseUs: 1000 });
    expect(turns).toBeLessThanOrEqual(Math.ceil(wallMs * 1.5) + 2);
  });

  it('does not wait after a turn that brought something', async () => {
    let arrived = 0;
    // Something arrives every turn: no 1 ms pauses, so far more than one turn per ms.
    const { turns } = await spinFor(100, { inFlight: 1, progress: () => arrived++, pauseUs: 1000 });
    expect(turns).toBeGreaterThan(200);
  });

  it('sleeps instead, giving up the CPU, when many replies are awaited', async () => {
    // 40 awaited (crowd 32) at 20 µs each: 0.8 ms sleeps, so the thread mostly sleeps where
    // a JS pause as long would keep it on the CPU the whole time.
    const crowded = await spinFor(200, {
      inFlight: 40,
      progress: () => 0,
      pauseUs: 800,
      crowd: 32,
      sleepUsPerCall: 20,
    });
    expect(crowded.turns).toBeLessThanOrEqual(Math.ceil(crowded.wallMs / 0.8) + 2);
    expect(crowded.cpuMs).toBeLessThan(crowded.wallMs / 2);
    // Below the crowd nothing sleeps: with no JS pause either, the loop turns far more often.
    // Counted in turns rather than CPU shares, which a loaded machine moves for both sides.
    const few = await spinFor(200, { inFlight: 31, progress: () => 0, pauseUs: 0, crowd: 32, sleepUsPerCall: 20 });
    expect(few.turns).toBeGreaterThan(crowded.turns * 3);
  });

  it('sleeps longer the more replies are awaited, up to 1 ms', async () => {
    // 40 awaited at 20 µs: 0.8 ms; 1000 at 20 µs would be 20 ms, capped at 1 ms.
    const forty = await spinFor(200, { inFlight: 40, progress: () => 0, pauseUs: 0, crowd: 32, sleepUsPerCall: 20 });
    const many = await spinFor(200, { inFlight: 1000, progress: () => 0, pauseUs: 0, crowd: 32, sleepUsPerCall: 20 });
    const few = await spinFor(200, { inFlight: 10, progress: () => 0, pauseUs: 0, crowd: 32, sleepUsPerCall: 20 });
    // Sleeps only lengthen turns, so these are upper bounds whatever the machine's load.
    expect(forty.turns).toBeLessThanOrEqual(Math.ceil(forty.wallMs / 0.8) + 2);
    expect(many.turns).toBeLessThanOrEqual(Math.ceil(many.wallMs / 1) + 2);
    // Capped: 20 ms sleeps would allow ~10 turns in 200 ms; 1 ms ones ~200 (a turn may take
    // up to 4 ms on a loaded machine and this still holds).
    expect(many.turns).toBeGreaterThan(many.wallMs / 4);
    // Below the crowd no sleep at all: far more turns.
    expect(few.turns).toBeGreaterThan(forty.turns * 4);
  });
});
