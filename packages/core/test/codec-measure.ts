/**
 * Measures the cache entry codec against the obvious alternative (one JSON envelope holding
 * the metadata and the value). Run: `node_modules/.bin/tsx packages/core/test/codec-measure.ts`.
 * Not a test: numbers depend on the machine; docs/cache.md quotes one run.
 */
import { decodeEntry, decodeEntryHead, encodeEntry, etagOf } from '../src/index.ts';

const article = {
  id: '1234',
  title: 'Understanding replication, part 1234',
  body: 'A deterministic paragraph about replication. '.repeat(8),
  published: true,
  author: { id: '77', name: 'Grace Hopper 77' },
  tags: ['postgres', 'replication'],
  commentCount: 3,
  updatedAt: '2025-02-01T20:34:00.000Z',
};
const list = {
  items: Array.from({ length: 20 }, (_, i) => ({
    id: String(3000 - i),
    title: `Tuning caching, part ${3000 - i}`,
    author: { id: String(i + 1), name: `Ada Lovelace ${i + 1}` },
    tags: ['caching', 'redis'],
    commentCount: 3,
  })),
  nextCursor: 'MjAyNS0wMi0wMyAwMjowMDowMC4wMDAwMDArMDB8Mjk4MQ',
};
const tagsOf = (n: number) => Array.from({ length: n }, (_, i) => `row:users:${i + 1}`);

function time(label: string, ops: number, fn: () => unknown): number {
  for (let i = 0; i < ops / 10; i++) fn(); // warm up the JIT
  const started = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) fn();
  const ns = Number(process.hrtime.bigint() - started) / ops;
  console.log(`${label.padEnd(48)} ${ns.toFixed(0).padStart(7)} ns/op`);
  return ns;
}

for (const [name, value, tagCount] of [
  ['article detail', article, 8],
  ['article list (20 items)', list, 90],
] as const) {
  const body = Buffer.from(JSON.stringify(value));
  const tags = tagsOf(tagCount);
  const etag = etagOf(body);
  const entry = encodeEntry({ version: 123456, storedAtMs: Date.now(), etag, tags, body });
  const envelope = JSON.stringify({ v: 123456, at: Date.now(), etag, tags, value });
  console.log(
    `\n${name}: body ${body.length} B, walcache entry ${entry.length} B, JSON envelope ${envelope.length} B`,
  );
  const ops = 200_000;
  time('walcache encode (header + body bytes)', ops, () =>
    encodeEntry({ version: 123456, storedAtMs: 0, etag, tags, body }),
  );
  time('walcache hit path (header, skip tags, body slice)', ops, () => decodeEntryHead(entry).body);
  time('walcache full decode (tags parsed: inspect only)', ops, () => decodeEntry(entry).tags);
  time('envelope encode (JSON.stringify)', ops, () => JSON.stringify({ v: 1, at: 0, etag, tags, value }));
  time('envelope hit path (JSON.parse + stringify body)', ops, () => {
    const parsed = JSON.parse(envelope) as { value: unknown };
    return Buffer.from(JSON.stringify(parsed.value));
  });
  time('etag (sha1 of the body), paid once per fill', ops, () => etagOf(body));
}
