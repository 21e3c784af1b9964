import type postgres from "postgres";

/** Dead rows in the jobs table above which a worker vacuums it (when autovacuum will not). */
export const VACUUM_DEAD_ROWS = 1000;

/**
 * Vacuums pgpulse's tables when nothing else will: on a server, or for a jobs
 * table, with autovacuum turned off. A queue writes every job's row two or
 * three times; without vacuum the dead versions pile up, the table and its
 * indexes grow whatever the retention, and claims slow down stepping over dead
 * index entries. With autovacuum on (the table's own settings make it eager)
 * this does nothing.
 *
 * SKIP_LOCKED: a vacuum already under way (another worker's, or an operator's)
 * is not waited for. On a table the role does not own, Postgres skips it with a
 * warning rather than an error.
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

/**
 * Vacuums the jobs table if autovacuum is off for it, dead rows have piled up,
 * and nobody vacuumed it within the last intervalMs (so workers take turns, and
 * dead rows a long transaction keeps alive do not make every worker vacuum
 * every time); returns whether it did.
 */
export async function vacuumIfNeeded(sql: postgres.Sql, text: ReturnType<typeof vacuumSql>, intervalMs: number): Promise<boolean> {
  const [row] = await sql.unsafe(text.check, [intervalMs, text.table], { prepare: true });
  if (!row || !row.off || row.recent || Number(row.dead) < VACUUM_DEAD_ROWS) return false;
  await sql.unsafe(text.vacuum);
  return true;
}
