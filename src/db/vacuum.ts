import { type DbContext, run, send } from "./context.ts";

/**
 * Whether pgpulse's tables need a vacuum nobody else will do, and the vacuum.
 * SKIP_LOCKED: a vacuum already under way (another worker's, or an
 * operator's) is not waited for. On a table the role does not own, Postgres
 * skips it with a warning rather than an error.
 */
export function vacuumSql(q: string) {
  return {
    table: `${q}.jobs`,
    check: `
      select (current_setting('autovacuum') = 'off'
              or exists (select from pg_options_to_table(c.reloptions) o
                         where o.option_name = 'autovacuum_enabled' and o.option_value in ('false', 'off'))) as off,
             coalesce(s.n_dead_tup, 0)::bigint as dead,
             coalesce(greatest(s.last_vacuum, s.last_autovacuum) > now() - $1::bigint * interval '1 millisecond', false) as recent
      from pg_class c left join pg_stat_user_tables s on s.relid = c.oid
      where c.oid = to_regclass($2::text)`,
    vacuum: `vacuum (analyze, skip_locked) ${q}.jobs, ${q}.workers`,
  };
}

export interface VacuumState {
  /** Autovacuum is off for the jobs table (or the whole server). */
  autovacuumOff: boolean;
  deadRows: number;
  /** Someone vacuumed it within the interval asked about. */
  recent: boolean;
}

export function vacuumOps(c: DbContext, t: ReturnType<typeof vacuumSql>) {
  return {
    async jobsVacuumState(recentMs: number): Promise<VacuumState | null> {
      const [row] = await run(c, t.check, [recentMs, t.table]);
      return row ? { autovacuumOff: row.off as boolean, deadRows: Number(row.dead), recent: row.recent as boolean } : null;
    },
    /** VACUUM cannot run in a transaction block, nor as a prepared statement. */
    async jobsVacuum(): Promise<void> {
      await send(c, () => c.handle.unsafe(t.vacuum));
    },
  };
}
