import pg from 'pg';

/**
 * What the database server itself saw of one client: for each backend whose
 * application_name is `applicationName`, when its last statement started. A process-side
 * counter can miss a query that bypasses the pool it watches; the server cannot.
 */
export class SqlActivity {
  private constructor(
    private readonly observer: pg.Client,
    private readonly applicationName: string,
  ) {}

  static async connect(url: string, applicationName: string): Promise<SqlActivity> {
    const observer = new pg.Client({ connectionString: url, application_name: 'walcache-test-observer' });
    await observer.connect();
    return new SqlActivity(observer, applicationName);
  }

  /** pid → query_start of every backend of the application (idle ones keep their last one). */
  async snapshot(): Promise<Map<number, string>> {
    // Outside a transaction: pg_stat_activity is read afresh by each statement.
    const { rows } = await this.observer.query<{ pid: number; started: string | null }>(
      'select pid, query_start::text as started from pg_stat_activity where application_name = $1',
      [this.applicationName],
    );
    return new Map(rows.map((r) => [r.pid, r.started ?? '']));
  }

  /**
   * Whether the application ran a statement between two snapshots: a backend that is new or
   * whose last statement started later. A backend that went away (idle timeout) ran nothing.
   */
  static ranSql(before: Map<number, string>, after: Map<number, string>): boolean {
    for (const [pid, started] of after) if (before.get(pid) !== started) return true;
    return false;
  }

  async close(): Promise<void> {
    await this.observer.end();
  }
}
