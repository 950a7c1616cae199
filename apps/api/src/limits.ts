/**
 * Every limit and timeout of the read API, each with the reason for its value. Handlers
 * carry no numbers of their own.
 */
export const limits = {
  /**
   * Bodies smaller than this are sent as they are. Measured on the demo data
   * (apps/api/test/bench/compression.ts, table in docs/api.md): below 1 KB an answer fits in
   * one TCP segment (MSS ~1460 B) uncompressed, so gzip saves no round trip, and the smallest
   * (a user, 85 B) even grows; the tag list (1.5 KB → 0.3 KB) and list pages (3 KB for 20
   * items → 0.9 KB, 15 KB for 100 → 2.3 KB) are where it pays.
   */
  compressMinBytes: 1024,
  /**
   * zlib level 6 (zlib's default): on a 100-item page it is 2.3 KB against 3.3 KB at level 1,
   * and the CPU difference (~0.1 ms at most) was within this machine's measurement noise.
   */
  gzipLevel: 6,
  /**
   * Compressed bodies kept per process, by ETag, so hits on hot pages do not gzip again.
   * 8 MiB holds thousands of compressed list pages (1–3 KB each) and is small next to the
   * process's heap.
   */
  gzipMemoBytes: 8 * 1024 * 1024,
  /**
   * The read API takes no request bodies; the ops routes take small JSON ones. 64 KiB ends
   * an oversized upload early instead of buffering it.
   */
  maxBodyBytes: 64 * 1024,
  /**
   * Values one batch lookup may ask for. 100 answers a page of references at once; each
   * value is a key in one MGET and a row of one query, and the answer (100 entities of a
   * few hundred bytes) stays well under a megabyte.
   */
  batchMaxIds: 100,
  /** Connections the API's pool opens to Postgres (only misses and bypasses use them). */
  poolMax: 10,
  /**
   * Misses allowed to queue for a connection when all `poolMax` are busy. Beyond this the
   * API answers 503 `overloaded` at once instead of letting waiters pile up without bound
   * (each would hold a socket and memory for up to `poolWaitMs`).
   */
  poolMaxWaiting: 50,
  /**
   * Longest wait for a pooled connection. A healthy checkout is instant; waiting longer than
   * a second means the database is saturated and the client is better served by a 503 it can retry.
   */
  poolWaitMs: 1_000,
  /**
   * Per-statement timeout of the API's reads. The heaviest sample query (a 100-item page with
   * counts and tags) takes a few ms; 2 s bounds a pathological plan or a lock wait, and stays
   * far below the fill lease (core `timings.leaseMs`, 10 s).
   */
  statementTimeoutMs: 2_000,
  /** A readiness probe answers within this, whatever hangs: probes have their own short timeouts. */
  readinessCheckMs: 1_000,
  /**
   * CDC slot lag reported as `lagging` by /readyz (never failing it: the API still answers
   * correctly, invalidations are only late). 64 MiB of WAL is minutes of a busy sample workload.
   */
  cdcLagWarnBytes: 64 * 1024 * 1024,
  /**
   * Shutdown: in-flight requests get this long to finish after the listener closes, then the
   * remaining sockets are destroyed. Below onShutdown's 15 s process deadline.
   */
  drainMs: 10_000,
  /**
   * Node's server timeouts: a client that sends headers slowly (or never) must not hold a
   * socket for minutes. 10 s is far above any real client on a LAN.
   */
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  /**
   * Longer than the 60 s idle timeout of common load balancers, so the balancer (not the API)
   * closes idle keep-alive connections; otherwise a request racing the API's close gets a 502.
   */
  keepAliveTimeoutMs: 65_000,
} as const;
