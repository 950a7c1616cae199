import type { ColumnInfo, Queryable, TableInfo } from '@walcache/resources';

/**
 * The random writes of `walcache verify`: INSERT, UPDATE and DELETE on the tables a config
 * reads, kept inside the schema's constraints from the catalog alone (foreign keys get an
 * existing parent, unique columns a fresh value, enums and checked columns a value already
 * stored, NOT NULL columns always a value). A write the database still rejects (a multi-column
 * check, a RESTRICT foreign key) is counted and replaced by another; none of them is a finding.
 */

/** A seeded generator (xorshift32): one seed, one sequence of choices, so a run can be replayed. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

export interface Write {
  table: string;
  kind: 'insert' | 'update' | 'delete';
  sql: string;
  /** Every value as text (or null), cast in the SQL to the column's type. */
  values: (string | null)[];
  /** The columns it sets (an INSERT: those it gives a value; a DELETE: none). */
  columns: string[];
}

/** The statement with its values in place: what a report prints and a person can re-run. */
export function describeWrite(w: Write): string {
  return w.sql.replace(/\$(\d+)/g, (_, n: string) => {
    const v = w.values[Number(n) - 1];
    return v === null || v === undefined ? 'NULL' : `'${v.replaceAll("'", "''")}'`;
  });
}

/**
 * Rows are picked among the first ROW_WINDOW rows in key order at most: a count and an
 * OFFSET over a copy of a production table of millions of rows would cost seconds a write,
 * and a window of this size still spreads writes far beyond the cached rows.
 */
export const ROW_WINDOW = 10_000;

/** `select count(*)` bounded by ROW_WINDOW (it stops reading there). */
export const windowCount = (from: string, where = '') =>
  `select count(*)::text as n from (select 1 from ${from} ${where} limit ${ROW_WINDOW}) w`;

const q = (name: string) => `"${name.replaceAll('"', '""')}"`;
const qt = (t: TableInfo) => `${q(t.schema)}.${q(t.name)}`;

/**
 * Rows are picked from the first `focus` rows in key order more often than elsewhere: those
 * are the rows verify filled (it samples keys from the same start), so writes hit cached values.
 */
const FOCUS_SHARE = 0.6;

export class WriteMaker {
  private counter = 0;
  private turn = 0;
  private readonly columnTurn = new Map<string, number>();
  private readonly order: TableInfo[];

  constructor(
    private readonly db: Queryable,
    tables: TableInfo[],
    private readonly all: Map<string, TableInfo>,
    private readonly random: () => number,
    private readonly seed: number,
    private readonly focus: number,
    /** `table.column` pairs whose values are tags (watched, foreign keys): the writes that move rows between cached values. */
    private readonly linking: Set<string> = new Set(),
  ) {
    // Round robin over a seeded shuffle: every table gets its share of writes.
    this.order = [...tables].sort((a, b) => a.tagName.localeCompare(b.tagName));
    for (let i = this.order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [this.order[i], this.order[j]] = [this.order[j]!, this.order[i]!];
    }
  }

  /**
   * The next write, on the next table in turn (`again`: on the same table as the last one,
   * after the database refused it); undefined when none could be made for it.
   */
  async next(again = false): Promise<Write | undefined> {
    if (!again) this.turn += 1;
    const table = this.order[(this.turn - 1) % this.order.length]!;
    const count = await this.count(table);
    const roll = this.random();
    const keyed = table.primaryKey.length > 0;
    // Deletes are rarer and spare tiny tables, so a run does not empty what it verifies.
    if (keyed && count > 2 && roll < 0.2) return this.remove(table, count);
    if (keyed && count > 0 && roll < 0.65) {
      const update = await this.update(table, count);
      if (update) return update;
    }
    return this.insert(table);
  }

  private async count(t: TableInfo): Promise<number> {
    const { rows } = await this.db.query<{ n: string }>(windowCount(qt(t)));
    return Number(rows[0]?.n ?? 0);
  }

  private offset(count: number): number {
    const within = this.random() < FOCUS_SHARE ? Math.min(count, this.focus) : count;
    return Math.floor(this.random() * Math.max(1, within));
  }

  /** The primary key (as text) of a row, biased towards the focus rows. */
  private async pickRow(t: TableInfo, count: number): Promise<string[] | undefined> {
    const cols = t.primaryKey;
    const { rows } = await this.db.query<Record<string, string>>(
      `select ${cols.map((c, i) => `${q(c)}::text as k${i}`).join(', ')} from ${qt(t)}
        order by ${cols.map(q).join(', ')} offset $1 limit 1`,
      [this.offset(count)],
    );
    const row = rows[0];
    return row ? cols.map((_, i) => row[`k${i}`]!) : undefined;
  }

  private keyCondition(t: TableInfo, first: number): string {
    return t.primaryKey.map((c, i) => `${q(c)} = $${first + i}::${t.columns.get(c)!.sqlType}`).join(' and ');
  }

  private async remove(t: TableInfo, count: number): Promise<Write | undefined> {
    const key = await this.pickRow(t, count);
    if (!key) return undefined;
    return {
      table: t.tagName,
      kind: 'delete',
      sql: `delete from ${qt(t)} where ${this.keyCondition(t, 1)}`,
      values: key,
      columns: [],
    };
  }

  private async update(t: TableInfo, count: number): Promise<Write | undefined> {
    const candidates = t.columnOrder
      .map((c) => t.columns.get(c)!)
      .filter((c) => !c.generatedAlways && !t.primaryKey.includes(c.name))
      .filter((c) => !this.multiColumnForeignKey(t, c));
    if (candidates.length === 0) return undefined;
    const key = await this.pickRow(t, count);
    if (!key) return undefined;
    // Half of the updates change a column that links rows (a foreign key, a looked-up or
    // filtered column): a row moving from one cached value to another is where a missed old
    // value shows, and such columns are few among many.
    const linking = candidates.filter(
      (c) =>
        this.linking.has(`${t.tagName}.${c.name}`) || t.foreignKeys.some((fk) => fk.columns.includes(c.name)),
    );
    // The other half walks the columns in turn, so a run writes every column it can.
    const turn = this.columnTurn.get(t.tagName) ?? 0;
    this.columnTurn.set(t.tagName, turn + 1);
    const chosen =
      linking.length > 0 && this.random() < 0.5
        ? [linking[Math.floor(this.random() * linking.length)]!]
        : [candidates[turn % candidates.length]!];
    if (candidates.length > 1 && this.random() < 0.3) {
      const other = candidates[Math.floor(this.random() * candidates.length)]!;
      if (other !== chosen[0]) chosen.push(other);
    }
    const values: (string | null)[] = [];
    const sets: string[] = [];
    const columns: string[] = [];
    for (const c of chosen) {
      const v = await this.valueFor(t, c);
      if (v === undefined) continue;
      values.push(v);
      columns.push(c.name);
      sets.push(`${q(c.name)} = $${values.length}::${c.sqlType}`);
    }
    if (sets.length === 0) return undefined;
    const first = values.length + 1;
    values.push(...key);
    return {
      table: t.tagName,
      kind: 'update',
      sql: `update ${qt(t)} set ${sets.join(', ')} where ${this.keyCondition(t, first)}`,
      values,
      columns,
    };
  }

  private async insert(t: TableInfo): Promise<Write | undefined> {
    const names: string[] = [];
    const values: (string | null)[] = [];
    const casts: string[] = [];
    const done = new Set<string>();
    // A multi-column foreign key takes one existing parent row whole.
    for (const fk of t.foreignKeys.filter((f) => f.columns.length > 1)) {
      const parent = this.all.get(fk.references);
      if (!parent) return undefined;
      const tuple = await this.existingTuple(parent, fk.referencedColumns);
      if (!tuple) return undefined;
      fk.columns.forEach((c, i) => {
        names.push(c);
        values.push(tuple[i]!);
        casts.push(t.columns.get(c)!.sqlType);
        done.add(c);
      });
    }
    for (const name of t.columnOrder) {
      const c = t.columns.get(name)!;
      // A key the database numbers itself stays its business: an explicit id would leave the
      // sequence behind and break the application's next insert.
      if (done.has(name) || c.generatedAlways || (c.hasDefault && t.primaryKey.includes(name))) continue;
      const required = !c.nullable && !c.hasDefault;
      if (!required && this.random() < 0.5) continue;
      const v = await this.valueFor(t, c);
      if (v === undefined) {
        if (required) return undefined;
        continue;
      }
      names.push(name);
      values.push(v);
      casts.push(c.sqlType);
    }
    const sql =
      names.length === 0
        ? `insert into ${qt(t)} default values`
        : `insert into ${qt(t)} (${names.map(q).join(', ')}) values (${casts
            .map((type, i) => `$${i + 1}::${type}`)
            .join(', ')}) on conflict do nothing`;
    return { table: t.tagName, kind: 'insert', sql, values, columns: names };
  }

  private multiColumnForeignKey(t: TableInfo, c: ColumnInfo): boolean {
    return t.foreignKeys.some((fk) => fk.columns.length > 1 && fk.columns.includes(c.name));
  }

  private uniqueAlone(t: TableInfo, c: ColumnInfo): boolean {
    return t.uniques.some((u) => u.length === 1 && u[0] === c.name);
  }

  /** A value for one column that the constraints the catalog knows of accept; undefined: none. */
  private async valueFor(t: TableInfo, c: ColumnInfo): Promise<string | null | undefined> {
    if (c.nullable && this.random() < 0.1) return null;
    const fk = t.foreignKeys.find((f) => f.columns.length === 1 && f.columns[0] === c.name);
    if (fk) {
      const parent = this.all.get(fk.references);
      const tuple = parent ? await this.existingTuple(parent, fk.referencedColumns) : undefined;
      return tuple ? tuple[0]! : c.nullable ? null : undefined;
    }
    if (this.uniqueAlone(t, c)) {
      // A checked unique column (a format in a domain or CHECK) gets a stored value with its
      // digits redrawn: the format survives, the value is most likely new.
      if (!c.checked) return this.freshValue(t, c);
      const existing = await this.existingValue(t, c);
      return existing === undefined ? undefined : this.redrawDigits(existing);
    }
    // A partitioned table's rows must fall in a partition, which the catalog read does not
    // describe: stored values do.
    if (t.partitioned) {
      const existing = await this.existingValue(t, c);
      if (existing !== undefined) return existing;
    }
    if (c.kind === 'e' && c.enumValues?.length && c.elementType === undefined)
      return c.enumValues[Math.floor(this.random() * c.enumValues.length)]!;
    if (c.checked || this.random() < 0.5) {
      const existing = await this.existingValue(t, c);
      if (existing !== undefined) return existing;
      if (c.checked) return c.nullable ? null : undefined;
    }
    return this.freshValue(t, c);
  }

  private redrawDigits(text: string): string {
    return /\d/.test(text)
      ? text.replace(/\d/g, () => String(Math.floor(this.random() * 10)))
      : `${text}${this.seed}${++this.counter}`;
  }

  /** A value of one column already stored in another row (any order the table has). */
  private async existingValue(t: TableInfo, c: ColumnInfo): Promise<string | undefined> {
    const { rows } = await this.db.query<{ n: string }>(windowCount(qt(t), `where ${q(c.name)} is not null`));
    const n = Number(rows[0]?.n ?? 0);
    if (n === 0) return undefined;
    const order = t.primaryKey.length ? `order by ${t.primaryKey.map(q).join(', ')}` : '';
    const { rows: found } = await this.db.query<{ v: string }>(
      `select ${q(c.name)}::text as v from ${qt(t)} where ${q(c.name)} is not null ${order} offset $1 limit 1`,
      [Math.floor(this.random() * n)],
    );
    return found[0]?.v;
  }

  /** Existing values of `columns` of one row of `t` (a parent for a foreign key), focus-biased. */
  private async existingTuple(t: TableInfo, columns: string[]): Promise<string[] | undefined> {
    const count = await this.count(t);
    if (count === 0) return undefined;
    const order = t.primaryKey.length ? `order by ${t.primaryKey.map(q).join(', ')}` : '';
    const { rows } = await this.db.query<Record<string, string>>(
      `select ${columns.map((c, i) => `${q(c)}::text as v${i}`).join(', ')} from ${qt(t)} ${order} offset $1 limit 1`,
      [this.offset(count)],
    );
    const row = rows[0];
    return row ? columns.map((_, i) => row[`v${i}`]!) : undefined;
  }

  /** A value no row holds yet, by type; undefined for a type verify cannot invent. */
  private async freshValue(t: TableInfo, c: ColumnInfo): Promise<string | undefined> {
    const n = ++this.counter;
    const tag = `v${this.seed}-${n}`;
    const element = c.elementType;
    const base = element ?? c.type;
    let one: string | undefined;
    switch (base) {
      case 'int2':
      case 'int4':
      case 'int8': {
        if (element === undefined && this.uniqueAlone(t, c)) {
          const { rows } = await this.db.query<{ m: string }>(
            `select (coalesce(max(${q(c.name)}), 0) + 1 + $1::int)::text as m from ${qt(t)}`,
            [Math.floor(this.random() * 5)],
          );
          one = rows[0]?.m;
        } else one = String(Math.floor(this.random() * (base === 'int2' ? 1000 : 100_000)));
        break;
      }
      case 'numeric':
      case 'float4':
      case 'float8':
      case 'money':
        one = (this.random() * 1000).toFixed(2);
        break;
      case 'text':
      case 'varchar':
      case 'citext':
      case 'bpchar':
      case 'name':
        one = tag;
        break;
      case 'bool':
        one = this.random() < 0.5 ? 'true' : 'false';
        break;
      case 'uuid':
        one = Array.from({ length: 32 }, () => Math.floor(this.random() * 16).toString(16))
          .join('')
          .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
        break;
      case 'timestamptz':
      case 'timestamp':
      case 'date': {
        const ms = Date.UTC(2020, 0, 1) + Math.floor(this.random() * 10 * 365 * 86_400_000);
        const iso = new Date(ms).toISOString();
        one = base === 'date' ? iso.slice(0, 10) : base === 'timestamp' ? iso.slice(0, 23) : iso;
        break;
      }
      case 'json':
      case 'jsonb':
        one = JSON.stringify({ verify: tag });
        break;
      default:
        return undefined;
    }
    if (one === undefined) return undefined;
    if (element === undefined) return one;
    if (base === 'json' || base === 'jsonb' || c.kind !== 'b') return undefined;
    return `{${JSON.stringify(one)}}`;
  }
}
