/**
 * Rejects when `promise` has not settled within `ms`. The promise itself runs on: callers
 * use this where waiting longer is worse than giving up (a readiness probe, a store that
 * must not hold the stream), and say why their bound is what it is.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
