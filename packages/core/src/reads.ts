import type { RedisClient } from './connect.ts';
import { isCluster } from './connect.ts';

interface Waiting {
  key: string;
  resolve: (value: Buffer | null) => void;
  reject: (error: unknown) => void;
}

/**
 * Value reads of concurrent requests as one MGET: the GETs issued while one turn of the event
 * loop handles its ready sockets go out together at its end (setImmediate), one command and
 * one reply for all of them. Why not ioredis' auto-pipelining: it builds a Pipeline and a
 * promise chain per batch and a callback tick per command, which cost a hit more than the
 * socket writes it saves (docs/benchmarks.md, "The hit lane"); an MGET is one command. On a
 * Redis Cluster the keys lie in many slots, so each read is its own GET there.
 */
export class ValueReads {
  private waiting: Waiting[] = [];
  private readonly single: boolean;

  constructor(private readonly redis: RedisClient) {
    this.single = isCluster(redis);
  }

  get(key: string): Promise<Buffer | null> {
    if (this.single) return this.redis.getBuffer(key);
    return new Promise((resolve, reject) => {
      if (this.waiting.push({ key, resolve, reject }) === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.waiting;
    this.waiting = [];
    const only = batch.length === 1 ? batch[0] : undefined;
    if (only) {
      this.redis.getBuffer(only.key).then(only.resolve, only.reject);
      return;
    }
    this.redis.mgetBuffer(batch.map((w) => w.key)).then(
      (values) => {
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve(values[i] ?? null);
      },
      (error: unknown) => {
        for (const w of batch) w.reject(error);
      },
    );
  }
}
