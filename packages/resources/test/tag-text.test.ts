import { describe, expect, it } from 'vitest';
import type { ColumnInfo } from '../src/catalog.ts';
import { tagText } from '../src/types.ts';

const column = (type: string) =>
  ({ name: 'c', type, nullable: false, kind: 'b', sqlType: type }) as ColumnInfo;

describe('tagText: a parameter as Postgres prints the column (the CDC and the fills’ SQL see that form)', () => {
  it('spells a bool as Postgres does', () => {
    expect(tagText(column('bool'), 'true')).toBe('t');
    expect(tagText(column('bool'), 'false')).toBe('f');
  });
  it('keeps every other canonical parameter as it is', () => {
    expect(tagText(column('int8'), '42')).toBe('42');
    expect(tagText(column('text'), 'true')).toBe('true');
    expect(tagText(column('uuid'), '0b1f4c2e-5a6d-4e7f-8a9b-0c1d2e3f4a5b')).toBe(
      '0b1f4c2e-5a6d-4e7f-8a9b-0c1d2e3f4a5b',
    );
  });
});
