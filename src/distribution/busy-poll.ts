import { availableParallelism } from 'node:os';

/**
 * The default window, in ms: 0.2 where there are at least two CPUs, off on one (where
 * polling would only take the CPU from the peer that is to answer). 0.2 ms covers a
 * tiny call's round trip to a local peer (60–100 µs measured) with room to spare and
 * caps what polling costs one call; in `npm run bench -- erpc` on 2 CPUs, a run with
 * 0.1 ms was worse on the 64 KiB echo and 64 callers, and one with 1 ms no better.
 */
export function defaultBusyPollMs(cpus = availableParallelism()): number {
  return cpus >= 2 ? 0.2 : 0;
}

/**
 * How long, in µs, the spinner waits in JS between two polls that brought nothing.
 * Each turn of the loop allocates (Node's `Immediate` and its bookkeeping: ~130 bytes
 * per µs when the loop only spins), and a young-generation GC pauses baton for
 * ~0.2–0.3 ms whatever little survives; spinning turn after turn made one 64 KiB erpc
 * echo allocate ~19 KB instead of ~10 KB, so ~1.4% of those calls met a scavenge and the
 * p99 was a GC pause. Waiting 5 µs in JS between idle polls cuts that allocation ~5×;
 * a reply that arrives meanwhile is picked up at most 5 µs later. Measured interleaved
 * in one process (64 KiB echo p99, µs): 0 µs 321–338, 4 µs 245, 6 µs 182–272, 8 µs 231,
 * with the tiny call's p50 rising by 1–5 µs.
 */
const PAUSE_US = 5;

/**
 * From this many replies awaited, a turn that brought nothing is followed by a sleep
 * (`SLEEP_US_PER_CALL` for each reply awaited, at most `MAX_SLEEP_US`) instead: with that
 * much work queued at the peer (~15 µs of its CPU per call), baton gives its CPU to the
 * peer and lets replies gather, so it reads, decodes and writes them in larger batches
 * (fewer syscalls per call on both sides), as network drivers moderate interrupts under
 * load. The sleep grows with the queue, a quarter or so of the time the peer needs to
 * work through it. Measured interleaved in one process: against spinning, a fixed 50 µs
 * sleep gave +3–10% calls/s with 32–64 concurrent callers (the same with 16); against
 * that, 4 µs per reply gave +4% with 32, +1% with 48 and +11% with 64 callers, and 8 µs
 * per reply 2–4% less than 4 µs; 4 µs per reply against spinning: +10% with 32 callers,
 * +15% with 64, +26% with 128, each call's median latency lower too. Below the
 * threshold it would stall the pipeline: with 8 callers a 50 µs sleep cost a third of
 * the throughput, as the peer had finished its few calls long before baton woke.
 */
const CROWD = 32;
const SLEEP_US_PER_CALL = 4;
/** A crowded idle turn never sleeps longer (a futex wait: the kernel may add its 50 µs timer slack). */
const MAX_SLEEP_US = 1000;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * A wait of about `us` on the CPU that allocates nothing while it runs: reading a clock
 * allocates (`performance.now()` a heap number, `process.hrtime()` an array), so the
 * wait is a loop whose length is re-measured after every wait and scaled toward `us`.
 */
class Pause {
  private iterations = 256;
  private sink = 0;

  /** Waits, given the time it started (performance.now()). */
  run(us: number, start: number): void {
    let k = this.sink;
    for (let i = 0; i < this.iterations; i++) k = (k + i) | 0;
    // Stored so the loop has an effect the compiler must keep.
    this.sink = k;
    const end = performance.now();
    const took = (end - start) * 1000;
    // At most halved per wait, so one preempted wait does not swing the length; grown
    // faster, so the first waits (and those right after the loop is optimized) converge.
    const scale = took > 0 ? Math.min(8, Math.max(0.5, us / took)) : 8;
    this.iterations = Math.min(1 << 22, Math.max(16, Math.round(this.iterations * scale)));
  }
}

/** Shared: the loop's speed is the process's, whichever node spins. */
const pause = new Pause();

/**
 * Busy polling while replies are awaited, as BEAM schedulers busy-wait (`+sbwt`)
 * before they sleep.
 *
 * An idle Node thread sleeps in `epoll_wait`; when the reply arrives the kernel must
 * wake it, and on a virtual machine whose vCPU halted meanwhile that wake-up (an IPI,
 * a VM exit) can cost as much as the whole round trip to a local peer. A pending
 * immediate makes libuv poll with a zero timeout instead, so for a short window after
 * a request goes out the loop keeps turning and picks the reply up at once. The window
 * closes as soon as nothing is awaited, so an idle node costs nothing. A turn that
 * brought nothing (`progress` unchanged) is followed by a short wait in JS (`PAUSE_US`)
 * so an idle spin allocates little, or, with `CROWD` replies or more awaited, by a short
 * sleep that grows with them; a turn that brought something is never followed by either.
 */
export class BusyPoll {
  private until = 0;
  private spinning = false;
  private seen = Number.NaN;

  constructor(
    /** How long after the last `arm()` to keep polling; 0 turns busy polling off. */
    readonly windowMs: number,
    /** How many replies are awaited (polling stops at once when none is). */
    private readonly inFlight: () => number,
    /** A count that changes whenever something arrived (frames received, say). */
    private readonly progress: () => number = () => 0,
    private readonly tuning: { pauseUs: number; crowd: number; sleepUsPerCall: number } = {
      pauseUs: PAUSE_US,
      crowd: CROWD,
      sleepUsPerCall: SLEEP_US_PER_CALL,
    },
    /**
     * The clock the window is measured on, in ms. Tests give their own, with `pauseUs` 0:
     * the pause is calibrated against `performance.now()`.
     */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** A request went out: poll until `windowMs` from now, or until nothing is awaited. */
  arm(): void {
    if (this.windowMs <= 0) return;
    this.until = this.now() + this.windowMs;
    if (!this.spinning) {
      this.spinning = true;
      this.seen = Number.NaN;
      // Referenced on purpose: an unreferenced immediate lets libuv block in epoll_wait again.
      setImmediate(this.spin);
    }
  }

  get active(): boolean {
    return this.spinning;
  }

  private readonly spin = (): void => {
    const now = this.now();
    const awaited = this.inFlight();
    if (awaited === 0 || now >= this.until) {
      this.spinning = false;
      return;
    }
    const seen = this.progress();
    if (seen === this.seen) {
      const { pauseUs, crowd, sleepUsPerCall } = this.tuning;
      if (awaited >= crowd) Atomics.wait(sleeper, 0, 0, Math.min(MAX_SLEEP_US, sleepUsPerCall * awaited) / 1000);
      else if (pauseUs > 0) pause.run(pauseUs, now);
    }
    this.seen = seen;
    setImmediate(this.spin);
  };
}
