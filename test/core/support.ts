import {
  type CacheEvents,
  type CacheStatus,
  type FillHooks,
  ReadThroughCache,
  type Resource,
} from '@walcache/core';

/**
 * A one-shot barrier: the code under test calls `wait()` and parks there; the test awaits
 * `arrived`, does its interleaved work, then `release()`s it. No sleeps, no timing.
 */
export interface Barrier {
  wait(): Promise<void>;
  arrived: Promise<void>;
  release(): void;
}

export function barrier(): Barrier {
  let open!: () => void;
  let arrive!: () => void;
  const opened = new Promise<void>((r) => {
    open = r;
  });
  const arrived = new Promise<void>((r) => {
    arrive = r;
  });
  return {
    async wait() {
      arrive();
      await opened;
    },
    arrived,
    release: () => open(),
  };
}

/**
 * Hooks whose handlers a test sets per key: `park(stage, key)` makes the next fill of that
 * key stop at that stage until released. Fills of other keys pass through.
 */
export class Parking {
  private readonly parked = new Map<string, Barrier>();

  park(stage: keyof FillHooks, key: string): Barrier {
    const b = barrier();
    this.parked.set(`${stage} ${key}`, b);
    return b;
  }

  readonly hooks: Required<FillHooks> = {
    withinStep1: (key) => this.pass('withinStep1', key),
    joined: (key) => this.pass('joined', key),
    afterLease: (key) => this.pass('afterLease', key),
    afterLoad: (key) => this.pass('afterLoad', key),
    beforeCas: (key) => this.pass('beforeCas', key),
  };

  private async pass(stage: keyof FillHooks, key: string): Promise<void> {
    const b = this.parked.get(`${stage} ${key}`);
    if (!b) return;
    this.parked.delete(`${stage} ${key}`);
    await b.wait();
  }
}

/** CacheEvents that count, for assertions on loads, outcomes and refusals. */
export class EventCounter implements CacheEvents {
  loads = 0;
  fills = 0;
  leaseWaits = 0;
  redisErrors = 0;
  generationFlushes = 0;
  readonly outcomes: Record<CacheStatus, number> = { HIT: 0, MISS: 0, BYPASS: 0 };
  readonly refusals = new Map<string, number>();

  outcome = (_: string, status: CacheStatus) => {
    this.outcomes[status] += 1;
  };
  load = () => {
    this.loads += 1;
  };
  filled = () => {
    this.fills += 1;
  };
  leaseWait = () => {
    this.leaseWaits += 1;
  };
  fillRefused = (_: string, reason: string) => {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
  };
  redisError = () => {
    this.redisErrors += 1;
  };
  generationFlushed = () => {
    this.generationFlushes += 1;
  };
}

/** A resource whose load counts its calls (and can be made to fail) around the real one. */
export function counting<Db, P, V>(
  resource: Resource<Db, P, V>,
  options: { failTimes?: number } = {},
): Resource<Db, P, V> & { calls: number; failuresLeft: number } {
  const wrapped = {
    ...resource,
    calls: 0,
    failuresLeft: options.failTimes ?? 0,
    async load(db: Db, params: P) {
      wrapped.calls += 1;
      if (wrapped.failuresLeft > 0) {
        wrapped.failuresLeft -= 1;
        throw new Error('injected load failure');
      }
      return resource.load(db, params);
    },
  };
  return wrapped;
}

export { ReadThroughCache };
