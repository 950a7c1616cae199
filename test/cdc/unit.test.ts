import {
  type Batch,
  Batcher,
  type CommittedTx,
  parseCdcEnv,
  parseTagLimits,
  type RelationInfo,
  TagMapper,
  TxTags,
} from '@walcache/cdc';
import { describe, expect, it } from 'vitest';

// Plain unit tests: no servers. The mapper and the batcher decide which tags reach the
// invalidator; a wrong tag here is a stale value a user sees.

const watched = [
  { table: 'comments', column: 'article_id' },
  { table: 'articles', column: 'author_id' },
];
const tables = new Set(['users', 'articles', 'comments', 'article_tags']);

function mapper(): TagMapper {
  const m = new TagMapper(watched, tables);
  m.setPrimaryKeys(
    new Map([
      ['users', ['id']],
      ['articles', ['id']],
      ['comments', ['id']],
      ['article_tags', ['article_id', 'tag_id']],
    ]),
  );
  return m;
}

/** pgoutput rows are null-prototype objects; build them the same way. */
function row(values: Record<string, unknown>): Record<string, unknown> {
  return Object.assign(Object.create(null) as Record<string, unknown>, values);
}

const rel = (name: string, extra: Partial<RelationInfo> = {}): RelationInfo => ({
  schema: 'public',
  name,
  keyColumns: ['id'],
  replicaIdentity: 'full',
  ...extra,
});

describe('TagMapper', () => {
  it('a comment moved to another article tags both the old and the new article', () => {
    const tags = mapper().tagsOf(
      'update',
      rel('comments'),
      row({ id: '5', article_id: '1', body: 'x' }),
      row({ id: '5', article_id: '2', body: 'x' }),
    );
    expect(new Set(tags)).toEqual(
      new Set([
        'table:comments',
        'rows:comments',
        'row:comments:5',
        'col:comments:article_id:1',
        'col:comments:article_id:2',
      ]),
    );
  });

  it('a DELETE under the default replica identity (key only) tags the deleted row', () => {
    const tags = mapper().tagsOf(
      'delete',
      rel('users', { replicaIdentity: 'default' }),
      row({ id: '9', name: undefined }),
      null,
    );
    expect(new Set(tags)).toEqual(new Set(['table:users', 'rows:users', 'row:users:9']));
  });

  it('composite primary keys are joined in key order', () => {
    const tags = mapper().tagsOf('insert', rel('article_tags'), null, row({ article_id: '3', tag_id: '4' }));
    expect(tags).toContain('row:article_tags:3,4');
  });

  it('an unchanged TOASTed watched value (undefined) does not throw and is not tagged', () => {
    const tags = mapper().tagsOf(
      'update',
      rel('comments'),
      row({ id: '5', article_id: '1' }),
      row({ id: '5', article_id: undefined }),
    );
    expect(tags).toContain('col:comments:article_id:1');
    expect(tags.filter((t) => t.startsWith('col:'))).toHaveLength(1);
  });

  it('a table without a known key is invalidated table-wide', () => {
    const m = new TagMapper([], new Set(['logs']));
    const tags = m.tagsOf('insert', rel('logs', { keyColumns: [] }), null, row({ msg: 'x' }));
    expect(tags).toEqual(['table:logs', 'rows:logs', 'epoch:logs']);
  });

  it('ignores tables no resource reads, but follows a tracked table through a rename', () => {
    const m = mapper();
    const comments = rel('comments', { relationOid: 42, columns: [{ name: 'id', typeOid: 20 }] });
    expect(m.observeRelation(comments)).toEqual([]);
    expect(m.isTracked(rel('audit', { relationOid: 77 }))).toBe(false);
    const renamed = { ...comments, name: 'comments_old' };
    expect(m.observeRelation(renamed)).toEqual(['comments']);
    expect(m.isTracked(renamed)).toBe(true);
    expect(m.tagsOf('update', renamed, row({ id: '1' }), row({ id: '1' }))).toEqual([
      'table:comments',
      'epoch:comments',
    ]);
  });

  it('a new column on a tracked table invalidates it once; the same shape again does not', () => {
    const m = mapper();
    const v1 = rel('articles', { relationOid: 7, columns: [{ name: 'id', typeOid: 20 }] });
    const v2 = { ...v1, columns: [...(v1.columns ?? []), { name: 'summary', typeOid: 25 }] };
    m.observeRelation(v1);
    expect(m.observeRelation(v2)).toEqual(['articles']);
    expect(m.observeRelation(v2)).toEqual([]);
  });
});

describe('TagMapper precision (old rows in the WAL)', () => {
  const read = { articles: ['id', 'title', 'author_id', 'published'] };
  const precise = (onSkipped?: (table: string) => void) => {
    const m = new TagMapper(watched, tables, read, onSkipped);
    m.setPrimaryKeys(new Map([['articles', ['id']]]));
    return m;
  };
  const before = { id: '1', title: 't', author_id: '3', published: true, note: 'a', created: new Date(0) };

  it('an UPDATE that changes no column a resource reads makes no tag, and is counted', () => {
    const skipped: string[] = [];
    const tags = precise((t) => skipped.push(t)).tagsOf(
      'update',
      rel('articles'),
      row(before),
      row({ ...before, note: 'b', created: new Date(1) }),
    );
    expect(tags).toEqual([]);
    expect(skipped).toEqual(['articles']);
  });

  it('an unchanged TOASTed value (absent from the new tuple) is no change', () => {
    const { title: _, ...withoutTitle } = before;
    expect(
      precise().tagsOf('update', rel('articles'), row(before), row({ ...withoutTitle, note: 'b' })),
    ).toEqual([]);
  });

  it('a change of a read column, a key-only old row, a table without read columns: tagged as before', () => {
    expect(
      precise().tagsOf('update', rel('articles'), row(before), row({ ...before, title: 'u' })),
    ).toContain('row:articles:1');
    expect(
      precise().tagsOf(
        'update',
        rel('articles', { replicaIdentity: 'default' }),
        null,
        row({ ...before, note: 'b' }),
      ),
    ).toContain('row:articles:1');
    expect(
      precise().tagsOf(
        'update',
        rel('comments'),
        row({ id: '5', article_id: '1' }),
        row({ id: '5', article_id: '1' }),
      ),
    ).toContain('table:comments');
    // Values compared as values: an equal Date, an equal jsonb object.
    expect(
      precise().tagsOf(
        'update',
        rel('articles'),
        row({ ...before, published: { a: [1] } }),
        row({ ...before, published: { a: [1] }, note: 'b' }),
      ),
    ).toEqual([]);
  });
});

describe('TagMapper set tags (old rows in the WAL)', () => {
  // What the blog derives: a global list over published articles by created_at, a count of
  // an author's published articles, and child lists asking whether their article exists.
  const membership = {
    articles: {
      rows: ['created_at', 'id', 'published'],
      byColumn: { author_id: ['author_id', 'published'], id: ['id'] },
    },
  };
  const narrowing = (onRowOnly?: (table: string) => void) => {
    const m = new TagMapper(
      [...watched, { table: 'articles', column: 'id' }],
      tables,
      {},
      undefined,
      membership,
      onRowOnly,
    );
    m.setPrimaryKeys(new Map([['articles', ['id']]]));
    return m;
  };
  const before = { id: '1', title: 't', author_id: '3', published: true, created_at: 'x' };
  const update = (m: TagMapper, after: Record<string, unknown>, identity: 'full' | 'default' = 'full') =>
    new Set(
      m.tagsOf(
        'update',
        rel('articles', { replicaIdentity: identity }),
        row(before),
        row({ ...before, ...after }),
      ),
    );

  it('an edit of a shown column emits only the row tag (and table:, for custom SQL), and is counted', () => {
    const rowOnly: string[] = [];
    expect(
      update(
        narrowing((t) => rowOnly.push(t)),
        { title: 'u' },
      ),
    ).toEqual(new Set(['table:articles', 'row:articles:1']));
    expect(rowOnly).toEqual(['articles']);
  });

  it('a change of a set column emits exactly the sets that depend on it', () => {
    expect(update(narrowing(), { published: false })).toEqual(
      new Set(['table:articles', 'rows:articles', 'row:articles:1', 'col:articles:author_id:3']),
    );
    expect(update(narrowing(), { author_id: '4' })).toEqual(
      new Set(['table:articles', 'row:articles:1', 'col:articles:author_id:3', 'col:articles:author_id:4']),
    );
  });

  it('a re-keyed row, or one without its old row in the WAL, emits every tag', () => {
    expect(update(narrowing(), { id: '2' })).toEqual(
      new Set([
        'table:articles',
        'rows:articles',
        'row:articles:1',
        'row:articles:2',
        'col:articles:author_id:3',
        'col:articles:id:1',
        'col:articles:id:2',
      ]),
    );
    const m = narrowing();
    expect(
      new Set(
        m.tagsOf(
          'update',
          rel('articles', { replicaIdentity: 'default' }),
          null,
          row({ ...before, title: 'u' }),
        ),
      ),
    ).toEqual(
      new Set([
        'table:articles',
        'rows:articles',
        'row:articles:1',
        'col:articles:author_id:3',
        'col:articles:id:1',
      ]),
    );
  });
});

describe('TxTags', () => {
  it('collapses a table past its limit to table + epoch and drops further row tags at once', () => {
    const tx = new TxTags((table) => (table === 'comments' ? 3 : 100));
    for (let i = 0; i < 1000; i++) tx.add(`row:comments:${i}`);
    tx.add('row:users:1');
    expect(new Set(tx.toSet())).toEqual(new Set(['table:comments', 'epoch:comments', 'row:users:1']));
    expect(tx.collapsedTables.has('comments')).toBe(true);
  });

  it('a tag longer than a job allows becomes a table-wide invalidation', () => {
    const tx = new TxTags();
    tx.add(`col:tags:name:${'x'.repeat(2000)}`);
    expect(new Set(tx.toSet())).toEqual(new Set(['table:tags', 'epoch:tags']));
  });
});

const tx = (endLsn: string, tags: string[], commitMs = 1): CommittedTx => ({
  tags: new Set(tags),
  endLsn,
  commitMs,
});

/** A store the test resolves by hand: forces "commits arrive while an enqueue is in flight". */
function gatedStore() {
  const stored: Batch[] = [];
  const gates: (() => void)[] = [];
  return {
    stored,
    gates,
    store: (batch: Batch) =>
      new Promise<void>((resolve) => {
        gates.push(() => {
          stored.push(batch);
          resolve();
        });
      }),
  };
}

describe('Batcher', () => {
  it('stores an isolated commit at once, and merges commits that arrive during the enqueue', async () => {
    const s = gatedStore();
    const acked: string[] = [];
    // No coalescing interval: this is the merge of commits that arrive during a store.
    const b = new Batcher({ store: s.store, stored: (lsn) => acked.push(lsn), minStoreIntervalMs: 0 });
    await b.add(tx('0/10', ['row:a:1'], 100));
    expect(s.gates).toHaveLength(1); // the first commit went out alone, at once
    await b.add(tx('0/20', ['row:a:2'], 200));
    await b.add(tx('0/30', ['row:a:2', 'row:a:3'], 300));
    expect(acked).toEqual([]); // nothing acked before its store resolved
    s.gates[0]?.();
    await new Promise((r) => setImmediate(r));
    expect(acked).toEqual(['0/10']);
    expect(s.gates).toHaveLength(2);
    s.gates[1]?.();
    await b.flush();
    expect(acked).toEqual(['0/10', '0/30']);
    expect(s.stored[1]).toMatchObject({
      lsnFrom: '0/20',
      lsnTo: '0/30',
      firstCommitMs: 200,
      lastCommitMs: 300,
      transactions: 2,
    });
    expect(new Set(s.stored[1]?.tags)).toEqual(new Set(['row:a:2', 'row:a:3']));
  });

  it('coalesces: the next job waits out the interval since the last store, acking nothing meanwhile', async () => {
    const s = gatedStore();
    const acked: string[] = [];
    const waits: { ms: number; done: () => void }[] = [];
    const b = new Batcher({
      store: s.store,
      stored: (lsn) => acked.push(lsn),
      minStoreIntervalMs: 60_000,
      wait: (ms) => new Promise<void>((done) => waits.push({ ms, done })),
    });
    await b.add(tx('0/10', ['row:a:1']));
    expect(s.gates).toHaveLength(1); // an isolated commit still goes out at once
    s.gates[0]?.();
    await new Promise((r) => setImmediate(r));
    expect(acked).toEqual(['0/10']);
    // Commits after a store began wait for the interval, and join one job.
    await b.add(tx('0/20', ['row:a:2']));
    await new Promise((r) => setImmediate(r));
    expect(waits).toHaveLength(1);
    expect(waits[0]?.ms).toBeGreaterThan(59_000);
    await b.add(tx('0/30', ['row:a:3']));
    // An empty commit (heartbeat) waiting behind them waits too: acks stay in order.
    await b.add(tx('0/40', []));
    expect(s.gates).toHaveLength(1);
    expect(acked).toEqual(['0/10']);
    waits[0]?.done();
    await new Promise((r) => setImmediate(r));
    expect(s.gates).toHaveLength(2);
    s.gates[1]?.();
    await b.flush();
    expect(acked).toEqual(['0/10', '0/40']);
    expect(s.stored[1]).toMatchObject({ lsnFrom: '0/20', lsnTo: '0/40', transactions: 3 });
    expect(new Set(s.stored[1]?.tags)).toEqual(new Set(['row:a:2', 'row:a:3']));
  });

  it('does not delay a batch without tags (heartbeats, empty transactions)', async () => {
    const s = gatedStore();
    const waits: number[] = [];
    const b = new Batcher({
      store: s.store,
      stored: () => {},
      minStoreIntervalMs: 60_000,
      wait: async (ms) => {
        waits.push(ms);
      },
    });
    await b.add(tx('0/10', ['row:a:1']));
    s.gates[0]?.();
    await new Promise((r) => setImmediate(r));
    await b.add(tx('0/20', []));
    await new Promise((r) => setImmediate(r));
    expect(waits).toEqual([]);
    expect(s.gates).toHaveLength(2);
    s.gates[1]?.();
    await b.flush();
  });

  it('a failed store acks nothing after it and reports the failure once', async () => {
    const acked: string[] = [];
    const failures: unknown[] = [];
    let calls = 0;
    const b = new Batcher({
      store: async () => {
        calls += 1;
        if (calls === 2) throw new Error('redis down');
      },
      stored: (lsn) => acked.push(lsn),
      failed: (error) => failures.push(error),
    });
    await b.add(tx('0/10', ['row:a:1']));
    await b.flush();
    await b.add(tx('0/20', ['row:a:2']));
    await expect(b.flush()).rejects.toThrow('redis down');
    await expect(b.add(tx('0/30', ['row:a:3']))).rejects.toThrow('redis down');
    expect(acked).toEqual(['0/10']);
    expect(failures).toHaveLength(1);
  });

  it('after close a store that lands is not acknowledged', async () => {
    const s = gatedStore();
    const acked: string[] = [];
    const b = new Batcher({ store: s.store, stored: (lsn) => acked.push(lsn) });
    await b.add(tx('0/10', ['row:a:1']));
    b.close();
    s.gates[0]?.();
    await b.flush();
    expect(acked).toEqual([]);
  });

  it('merging applies the per-table threshold across transactions of one job', () => {
    const b = new Batcher({
      store: async () => {},
      stored: () => {},
      maxTagsPerTable: (table) => (table === 'comments' ? 2 : 10),
    });
    const batch = b.merge([
      tx('0/10', ['row:comments:1', 'row:users:1']),
      tx('0/20', ['row:comments:2', 'row:comments:3']),
    ]);
    expect(new Set(batch.tags)).toEqual(new Set(['table:comments', 'epoch:comments', 'row:users:1']));
  });

  it('a job over the per-job cap collapses its largest tables first', () => {
    const b = new Batcher({ store: async () => {}, stored: () => {}, maxTagsPerJob: 10 });
    const many = Array.from({ length: 8 }, (_, i) => `row:comments:${i}`);
    const batch = b.merge([tx('0/10', [...many, 'row:users:1', 'row:users:2', 'row:users:3'])]);
    expect(new Set(batch.tags)).toEqual(
      new Set(['table:comments', 'epoch:comments', 'row:users:1', 'row:users:2', 'row:users:3']),
    );
  });
});

describe('CDC_MAX_TAGS_PER_TABLE', () => {
  it('parses one number or per-table entries with a default', () => {
    expect(parseTagLimits('500').of('anything')).toBe(500);
    const limits = parseTagLimits('default=10000, comments=50000');
    expect(limits.of('comments')).toBe(50_000);
    expect(limits.of('users')).toBe(10_000);
    expect(parseCdcEnv({}).CDC_MAX_TAGS_PER_TABLE.of('users')).toBe(10_000);
  });

  it('rejects a bad entry and names it', () => {
    expect(() => parseCdcEnv({ CDC_MAX_TAGS_PER_TABLE: 'comments=lots' })).toThrow(/comments=lots/);
    expect(() => parseTagLimits('Bad-Name=5')).toThrow(/not a table name/);
  });
});
