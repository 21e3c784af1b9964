// Admin connection: creates the bench database, measures and drops schemas.
import postgres from "postgres";

export function admin(url) {
  return postgres(url, { max: 2, onnotice: () => {}, connection: { application_name: "pgpulse-bench admin" } });
}

/** Creates the database named in url if it does not exist (connecting to "postgres"). */
export async function ensureDatabase(url) {
  const u = new URL(url);
  const name = decodeURIComponent(u.pathname.slice(1));
  const probe = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    await probe`select 1`;
    return;
  } catch (error) {
    if (error.code !== "3D000") throw error;
  } finally {
    await probe.end({ timeout: 1 });
  }
  u.pathname = "/postgres";
  const root = postgres(u.toString(), { max: 1, onnotice: () => {} });
  try {
    await root.unsafe(`create database "${name.replaceAll('"', '""')}"`);
  } finally {
    await root.end({ timeout: 1 });
  }
}

/** Bytes of every table in the schemas, with their indexes and TOAST. */
export async function schemaBytes(sql, schemas) {
  const [row] = await sql`
    select coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint as bytes
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = any(${schemas}) and c.relkind in ('r', 'm')`;
  return Number(row.bytes);
}

/** Live and dead rows of the schemas' tables, from the statistics collector (approximate, may lag). */
export async function schemaTuples(sql, schemas) {
  const [row] = await sql`
    select coalesce(sum(n_live_tup), 0)::bigint as live, coalesce(sum(n_dead_tup), 0)::bigint as dead
    from pg_stat_user_tables where schemaname = any(${schemas})`;
  return { live: Number(row.live), dead: Number(row.dead) };
}

/** VACUUM ANALYZE every table of the schemas (a settled backlog, as autovacuum would leave it). */
export async function vacuumSchemas(sql, schemas) {
  const tables = await sql`
    select format('%I.%I', n.nspname, c.relname) as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = any(${schemas}) and c.relkind = 'r'`;
  for (const t of tables) await sql.unsafe(`vacuum (analyze) ${t.name}`);
}

export async function dropSchemas(sql, schemas) {
  for (const s of schemas) await sql.unsafe(`drop schema if exists "${s}" cascade`);
}

/** Backends of other clients doing something, to flag a busy server. */
export async function otherActivity(sql) {
  const [row] = await sql`
    select count(*)::int as n from pg_stat_activity
    where pid <> pg_backend_pid() and state = 'active' and backend_type = 'client backend'
      and coalesce(application_name, '') not like 'pgpulse-bench%'`;
  return row.n;
}

export async function serverFacts(sql) {
  const [row] = await sql`
    select version() as version, current_setting('fsync') as fsync,
      current_setting('synchronous_commit') as synchronous_commit,
      current_setting('shared_buffers') as shared_buffers,
      current_setting('max_connections') as max_connections`;
  return { ...row };
}
