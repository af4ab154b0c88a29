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
 * Busy polling while replies are awaited, as BEAM schedulers busy-wait (`+sbwt`)
 * before they sleep.
 *
 * An idle Node thread sleeps in `epoll_wait`; when the reply arrives the kernel must
 * wake it, and on a virtual machine whose vCPU halted meanwhile that wake-up (an IPI,
 * a VM exit) can cost as much as the whole round trip to a local peer. A pending
 * immediate makes libuv poll with a zero timeout instead, so for a short window after
 * a request goes out the loop keeps turning and picks the reply up at once. The window
 * closes as soon as nothing is awaited, so an idle node costs nothing.
 */
export class BusyPoll {
  private until = 0;
  private spinning = false;

  constructor(
    /** How long after the last `arm()` to keep polling; 0 turns busy polling off. */
    readonly windowMs: number,
    /** Whether anything is still awaited (polling stops at once when not). */
    private readonly awaiting: () => boolean,
  ) {}

  /** A request went out: poll until `windowMs` from now, or until nothing is awaited. */
  arm(): void {
    if (this.windowMs <= 0) return;
    this.until = performance.now() + this.windowMs;
    if (!this.spinning) {
      this.spinning = true;
      // Referenced on purpose: an unreferenced immediate lets libuv block in epoll_wait again.
      setImmediate(this.spin);
    }
  }

  get active(): boolean {
    return this.spinning;
  }

  private readonly spin = (): void => {
    if (this.awaiting() && performance.now() < this.until) setImmediate(this.spin);
    else this.spinning = false;
  };
}
