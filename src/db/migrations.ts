/**
 * The statements migrate() runs around the migration files: the advisory lock,
 * the schema, and the `migrations` table that records what was applied
 * (id, name, applied_at, and the SHA-256 of the file as shipped).
 * `q` is the schema, already checked and quoted by quoteSchema().
 */
export function migrationsSql(q: string) {
  return {
    /** Serialises migrate() calls on one schema until the transaction ends; $1 is migrateLockKey(schema). */
    lock: "select pg_advisory_xact_lock(hashtext($1))",
    createSchema: `create schema if not exists ${q}`,
    createTable: `create table if not exists ${q}.migrations (
  id integer primary key,
  name text not null,
  applied_at timestamptz not null default now(),
  checksum text
)`,
    /** Upgrades a migrations table made before checksums were recorded. */
    addChecksum: `alter table ${q}.migrations add column if not exists checksum text`,
    selectApplied: `select id, name, checksum from ${q}.migrations order by id`,
    /** $1 id, $2 name, $3 checksum. */
    insert: `insert into ${q}.migrations (id, name, checksum) values ($1, $2, $3)`,
    /** $1 id, $2 checksum: fills a checksum an older pgpulse did not record. */
    fillChecksum: `update ${q}.migrations set checksum = $2 where id = $1 and checksum is null`,
  };
}

/** The key of migrate()'s advisory lock for a schema. */
export function migrateLockKey(schema: string): string {
  return `pgpulse:migrate:${schema}`;
}

/** A string as an SQL literal. */
function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/**
 * The same statements with their values written in, for SQL printed to be
 * run by hand (psql, a migration tool) rather than through a driver.
 */
export function migrationsSqlLiteral(q: string, schema: string) {
  const s = migrationsSql(q);
  return {
    lock: `select pg_advisory_xact_lock(hashtext(${literal(migrateLockKey(schema))}))`,
    createSchema: s.createSchema,
    /** Makes the table with its checksum column: no upgrade step needed. */
    createTable: s.createTable,
    insert: (id: number, name: string, checksum: string) =>
      `insert into ${q}.migrations (id, name, checksum) values (${Math.trunc(id)}, ${literal(name)}, ${literal(checksum)})`,
  };
}
