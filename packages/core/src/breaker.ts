/**
 * A circuit breaker around the cache Redis. While it is open, requests skip Redis entirely
 * (answering from Postgres with `X-Cache: BYPASS`) instead of each waiting for a Redis
 * timeout; after `cooldownMs` one request probes Redis again and closes it on success.
 */
export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Consecutive failures that open the breaker. 3: one dropped packet must not bypass the cache. */
  failureThreshold?: number;
  /** How long to stay open before probing. 1 s: short enough to resume caching quickly. */
  cooldownMs?: number;
  now?: () => number;
  onStateChange?: (state: BreakerState) => void;
}

export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  private current: BreakerState = 'closed';
  private readonly threshold: number;
  private readonly cooldownMs: number;
  private readonly now: () => number;

  constructor(private readonly options: BreakerOptions = {}) {
    this.threshold = options.failureThreshold ?? 3;
    this.cooldownMs = options.cooldownMs ?? 1_000;
    this.now = options.now ?? Date.now;
  }

  get state(): BreakerState {
    return this.current;
  }

  /** Whether this request may use Redis. In half-open state only one probe at a time may. */
  allow(): boolean {
    if (this.current === 'closed') return true;
    if (this.current === 'open' && this.now() - this.openedAt >= this.cooldownMs) this.set('half-open');
    if (this.current === 'half-open' && !this.probing) {
      this.probing = true;
      return true;
    }
    return false;
  }

  success(): void {
    this.failures = 0;
    this.probing = false;
    if (this.current !== 'closed') this.set('closed');
  }

  /** The probe ended without telling either way (it gave up waiting): the next request probes. */
  abandon(): void {
    this.probing = false;
  }

  failure(): void {
    this.probing = false;
    this.failures += 1;
    if (this.current === 'half-open' || this.failures >= this.threshold) {
      this.openedAt = this.now();
      if (this.current !== 'open') this.set('open');
    }
  }

  private set(state: BreakerState) {
    this.current = state;
    this.options.onStateChange?.(state);
  }
}
