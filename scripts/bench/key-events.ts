/**
 * When Redis deleted a key, as close as a client can tell: a subscriber to the `del` key
 * events (the bench enables `notify-keyspace-events Eg`; UNLINK and DEL both publish one)
 * on a bare socket, each event timed when its bytes reached the process.
 * Why not an ioredis subscriber: it times an event after parsing every event before it, and
 * a 10 000-key fan-out arrives as one burst of 650 KB. In the same fan-out runs an ioredis
 * subscriber saw the last event 95–250 ms after the commit where this one saw it at 53–101
 * ms: the difference was the bench's own parsing, counted as invalidation time
 * (docs/benchmarks.md, "Fan-out").
 */
import net from 'node:net';

export interface KeyDeletions {
  close(): void;
}

const CHANNEL = '__keyevent@0__:del';

/**
 * Calls `onDeleted(key, atMs)` for every key deleted in database 0, `atMs` being when the
 * chunk that carried the event was read. Resolves once Redis confirmed the subscription.
 */
export function watchKeyDeletions(
  redisUrl: string,
  onDeleted: (key: string, atMs: number) => void,
): Promise<KeyDeletions> {
  const url = new URL(redisUrl);
  const socket = net.connect({ host: url.hostname || '127.0.0.1', port: Number(url.port || 6379) });
  socket.setNoDelay(true);
  return new Promise((resolve, reject) => {
    let pending: Buffer = Buffer.alloc(0);
    socket.once('error', reject);
    socket.on('connect', () => {
      const auth = url.password
        ? [
            [
              'AUTH',
              ...(url.username ? [decodeURIComponent(url.username)] : []),
              decodeURIComponent(url.password),
            ],
          ]
        : [];
      for (const command of [...auth, ['SUBSCRIBE', CHANNEL]]) socket.write(encode(command));
    });
    socket.on('data', (chunk: Buffer) => {
      const at = Date.now();
      const buf = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
      let offset = 0;
      for (;;) {
        const reply = parsePush(buf, offset);
        if (reply === undefined) break;
        offset = reply.end;
        if (reply.kind === 'message') onDeleted(reply.payload, at);
        else if (reply.kind === 'subscribe') {
          socket.removeListener('error', reject);
          socket.on('error', (error) => process.stderr.write(`key-event subscriber: ${error.message}\n`));
          resolve({ close: () => socket.destroy() });
        } else if (reply.kind === 'error') reject(new Error(`key-event subscriber: ${reply.payload}`));
      }
      pending = offset < buf.length ? buf.subarray(offset) : Buffer.alloc(0);
    });
  });
}

interface Push {
  kind: string;
  /** A message's payload (the key), or an error's text. */
  payload: string;
  end: number;
}

const CRLF = Buffer.from('\r\n');

/**
 * One reply of a subscribed connection at `offset`, or undefined if it is not all there yet.
 * A subscribed RESP2 connection receives arrays of bulk strings and integers (`subscribe`,
 * `message`), or an error line; nothing else.
 */
function parsePush(buf: Buffer, offset: number): Push | undefined {
  const head = buf.indexOf(CRLF, offset);
  if (head < 0) return undefined;
  const type = buf[offset];
  if (type === 0x2d /* - */)
    return { kind: 'error', payload: buf.toString('utf8', offset + 1, head), end: head + 2 };
  if (type !== 0x2a /* * */)
    throw new Error(`key-event subscriber: unexpected reply ${buf.toString('utf8', offset, head)}`);
  const count = digits(buf, offset + 1, head);
  let kind = '';
  let payload = '';
  let at = head + 2;
  for (let i = 0; i < count; i++) {
    const line = buf.indexOf(CRLF, at);
    if (line < 0) return undefined;
    if (buf[at] === 0x3a /* : */) {
      at = line + 2;
      continue;
    }
    const start = line + 2;
    const end = start + digits(buf, at + 1, line);
    if (end + 2 > buf.length) return undefined;
    // Only the kind (item 0) and the payload (item 2) are read; the channel is the one subscribed.
    if (i === 0) kind = buf.toString('latin1', start, end);
    else if (i === 2) payload = buf.toString('utf8', start, end);
    at = end + 2;
  }
  return { kind, payload, end: at };
}

/** The decimal number in `buf[from, to)`. */
function digits(buf: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n = n * 10 + (buf[i]! - 48);
  return n;
}

/** A command as RESP (an array of bulk strings). */
function encode(args: readonly string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}
