/**
 * Each sample resource declares the tags that make it correct: for every kind of change
 * that alters a cached value, a real commit through the real CDC and invalidator must reach
 * it. A missing tag shows up here as a cached value that never changes (waitFor times out).
 */
import type { AnyResource } from '@walcache/core';
import type { Db } from '@walcache/resources';
import { waitFor } from '@walcache/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  ArticleDetail,
  ArticleListItem,
  CommentItem,
  Page,
  TagList,
  UserProfile,
} from '../../examples/blog/contract.ts';
import { articleComments, articleDetail, articleList, tagList, userProfile } from '../support/blog.ts';
import { type Servers, startServers } from '../support/stack.ts';
import { json, type Pipeline, startPipeline } from './pipeline.ts';

let servers: Servers;
let p: Pipeline;

beforeAll(async () => {
  servers = await startServers({ users: 30, articles: 60, tags: 8, commentsPerArticle: 2 });
  p = await startPipeline(servers);
});

afterAll(async () => {
  await p?.stop();
  await servers?.stop();
});

/** Reads until cached, so the change below must invalidate a HIT, not just meet a miss. */
async function warm<P>(resource: AnyResource<Db>, params: P): Promise<void> {
  await p.cache.get(resource, params);
  await waitFor(async () => (await p.cache.get(resource, params)).status === 'HIT', {
    what: `${resource.key(params)} cached`,
  });
}

async function eventually<T, P>(resource: AnyResource<Db>, params: P, check: (value: T) => boolean) {
  await waitFor(async () => check(json<T>(await p.cache.get(resource, params))), {
    what: `${resource.key(params)} to reflect the commit`,
  });
}

const q = (text: string, values: unknown[] = []) => p.writer.query(text, values);

describe('article detail', () => {
  const params = { id: '12' };
  it("reflects its author's rename, a tag rename, a new tag, a new comment and its own update", async () => {
    const before = json<ArticleDetail>(await p.cache.get(articleDetail, params));

    await warm(articleDetail, params);
    await q('update users set name = $1 where id = $2', ['Renamed Author', before.author.id]);
    await eventually<ArticleDetail, typeof params>(
      articleDetail,
      params,
      (a) => a.author.name === 'Renamed Author',
    );

    await warm(articleDetail, params);
    await q('update tags set name = $1 where name = $2', ['renamed-tag', before.tags[0]]);
    await eventually<ArticleDetail, typeof params>(articleDetail, params, (a) =>
      a.tags.includes('renamed-tag'),
    );

    await warm(articleDetail, params);
    await q("insert into tags (name) values ('brand-new')");
    await q("insert into article_tags (article_id, tag_id) select 12, id from tags where name = 'brand-new'");
    await eventually<ArticleDetail, typeof params>(articleDetail, params, (a) =>
      a.tags.includes('brand-new'),
    );

    await warm(articleDetail, params);
    await q("insert into comments (article_id, author_id, body) values (12, 1, 'new comment')");
    await eventually<ArticleDetail, typeof params>(
      articleDetail,
      params,
      (a) => a.commentCount === before.commentCount + 1,
    );

    await warm(articleDetail, params);
    await q("update articles set title = 'Updated title' where id = 12");
    await eventually<ArticleDetail, typeof params>(articleDetail, params, (a) => a.title === 'Updated title');
  });

  it('a cached "not found" ends when that id is inserted', async () => {
    const missing = { id: '5000' };
    await warm(articleDetail, missing);
    expect((await p.cache.get(articleDetail, missing)).found).toBe(false);
    await q(
      "insert into articles (id, author_id, title, body) overriding system value values (5000, 2, 'Late', 'x')",
    );
    await waitFor(async () => (await p.cache.get(articleDetail, missing)).found, {
      what: 'the inserted article to be found',
    });
  });
});

describe('article list', () => {
  const params = { limit: 5 };
  type ListPage = Page<ArticleListItem>;
  it('reflects an author rename, a new comment, a new article and an unpublished one', async () => {
    const page = json<ListPage>(await p.cache.get(articleList, params));
    const [first, second] = page.items;

    await warm(articleList, params);
    await q('update users set name = $1 where id = $2', ['List Author', first!.author.id]);
    await eventually<ListPage, typeof params>(
      articleList,
      params,
      (v) => v.items[0]!.author.name === 'List Author',
    );

    await warm(articleList, params);
    await q("insert into comments (article_id, author_id, body) values ($1, 1, 'on the list')", [second!.id]);
    await eventually<ListPage, typeof params>(
      articleList,
      params,
      (v) => v.items[1]!.commentCount === second!.commentCount + 1,
    );

    await warm(articleList, params);
    await q(
      "insert into articles (author_id, title, body, created_at) values (3, 'Newest', 'x', now() + interval '1 day')",
    );
    await eventually<ListPage, typeof params>(articleList, params, (v) => v.items[0]!.title === 'Newest');

    await warm(articleList, params);
    await q("update articles set published = false where title = 'Newest'");
    await eventually<ListPage, typeof params>(articleList, params, (v) => v.items[0]!.id === first!.id);
  });
});

describe('comments of an article', () => {
  const params = { id: '20', limit: 10 };
  type CommentPage = Page<CommentItem>;
  it("reflects a new comment, a commenter's rename and a deletion", async () => {
    const before = json<CommentPage>(await p.cache.get(articleComments, params));

    await warm(articleComments, params);
    await q(
      "insert into comments (article_id, author_id, body, created_at) values (20, 4, 'fresh', now() + interval '1 day')",
    );
    await eventually<CommentPage, typeof params>(
      articleComments,
      params,
      (v) => v.items[0]!.body === 'fresh',
    );

    await warm(articleComments, params);
    await q("update users set name = 'Commenter Renamed' where id = 4");
    await eventually<CommentPage, typeof params>(
      articleComments,
      params,
      (v) => v.items[0]!.author.name === 'Commenter Renamed',
    );

    await warm(articleComments, params);
    await q("delete from comments where article_id = 20 and body = 'fresh'");
    await eventually<CommentPage, typeof params>(
      articleComments,
      params,
      (v) => v.items.length === before.items.length && v.items.every((c) => c.body !== 'fresh'),
    );
  });
});

describe('user profile (refresh policy)', () => {
  it('is refreshed in Redis by the invalidator, without any read: rename and a new article', async () => {
    const params = { id: '7' };
    const before = json<UserProfile>(await p.cache.get(userProfile, params));
    await warm(userProfile, params);
    const readsBefore = p.events.outcomes.HIT + p.events.outcomes.MISS;

    await q("update users set name = 'Refreshed Name' where id = 7");
    await waitFor(async () => JSON.parse((await p.cached('user:7')) ?? '{}').name === 'Refreshed Name', {
      what: 'the refreshed profile in Redis',
    });
    await q("insert into articles (author_id, title, body) values (7, 'By seven', 'x')");
    await waitFor(
      async () => JSON.parse((await p.cached('user:7')) ?? '{}').articleCount === before.articleCount + 1,
      { what: 'the refreshed article count in Redis' },
    );
    // Nobody read it meanwhile: the invalidator wrote it.
    expect(p.events.outcomes.HIT + p.events.outcomes.MISS).toBe(readsBefore);
    expect((await p.cache.get(userProfile, params)).status).toBe('HIT');
  });
});

describe('tag list (refresh policy)', () => {
  it('reflects a new tag link (article_tags alone) and a new tag (tags alone)', async () => {
    const before = json<TagList>(await p.cache.get(tagList, {}));
    const target = before.items[0]!;
    const held = async () => JSON.parse((await p.cached('tags:all')) ?? '{"items":[]}') as TagList;
    await warm(tagList, {});
    // A link that does not exist yet, to a published article: the count must move by exactly
    // one, and the commit touches article_tags only, so only that dependency can invalidate it.
    const link = await q(
      `insert into article_tags (article_id, tag_id)
       select a.id, t.id from articles a, tags t
       where t.name = $1 and a.published
         and not exists (select 1 from article_tags x where x.article_id = a.id and x.tag_id = t.id)
       order by a.id limit 1`,
      [target.name],
    );
    expect(link.rowCount).toBe(1);
    await waitFor(
      async () =>
        (await held()).items.find((t) => t.name === target.name)?.articleCount === target.articleCount + 1,
      { what: 'the refreshed tag count in Redis' },
    );
    await q("insert into tags (name) values ('zz-last')");
    await waitFor(async () => (await held()).items.some((t) => t.name === 'zz-last'), {
      what: 'the new tag in the refreshed list in Redis',
    });
    const after = json<TagList>(await p.cache.get(tagList, {}));
    expect(after.items.find((t) => t.name === target.name)!.articleCount).toBe(target.articleCount + 1);
  });
});
