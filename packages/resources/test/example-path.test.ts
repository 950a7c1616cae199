/**
 * `--example NAME` (WALCACHE_EXAMPLE) finds examples/NAME/walcache.config in any of the
 * formats a config file may have, and names the folder list when there is none.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exampleConfigPath } from '../src/load.ts';

// A folder of its own: tests that walk examples/ must not see a scratch example.
const examples = mkdtempSync(join(tmpdir(), 'walcache-examples-'));
const scratch = 'yaml-only';

afterAll(() => rmSync(examples, { recursive: true, force: true }));

describe('an example by name', () => {
  it('is found as walcache.config.ts (the bundled ones)', () => {
    expect(exampleConfigPath('blog')).toMatch(/examples\/blog\/walcache\.config\.ts$/);
  });

  it('is found as walcache.config.yaml', () => {
    mkdirSync(join(examples, scratch), { recursive: true });
    writeFileSync(join(examples, scratch, 'walcache.config.yaml'), 'resources: {}\n');
    expect(exampleConfigPath(scratch, `${examples}/`)).toMatch(
      new RegExp(`${scratch}/walcache\\.config\\.yaml$`),
    );
  });

  it('that does not exist is an error naming it', () => {
    expect(() => exampleConfigPath('no-such-example')).toThrow(/no example named "no-such-example"/);
    expect(() => exampleConfigPath('../blog')).toThrow(/no example named/);
  });
});
