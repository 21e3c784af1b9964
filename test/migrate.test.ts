import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { migrate, migrationSql, PgPulseError, SCHEMA_VERSION } from "../src/index.ts";
import { renderSql } from "../src/schema/migrate.ts";
import { migrations } from "../src/schema/migrations.generated.ts";
// @ts-expect-error: a plain .mjs build script without types
import { renderMigrations } from "../scripts/embed-sql.mjs";
import { DATABASE_URL } from "./support/db.ts";

const sql = postgres(DATABASE_URL, { onnotice: () => {} });
const schemas: string[] = [];
const fresh = () => {
  const name = `t_migrate_${crypto.randomUUID().slice(0, 8)}`;
  schemas.push(name);
  return name;
};

afterAll(async () => {
  for (const name of schemas) await sql.unsafe(`drop schema if exists "${name}" cascade`);
  await sql.end();
});

describe("migrate", () => {
  it("applies every migration once and is a no-op when current", async () => {
    const schema = fresh();
    expect(await migrate({ connection: DATABASE_URL, schema })).toEqual({
      applied: Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
      version: SCHEMA_VERSION,
    });
    expect(await migrate({ connection: DATABASE_URL, schema })).toEqual({ applied: [], version: SCHEMA_VERSION });
    const tables = await sql`select table_name from information_schema.tables where table_schema = ${schema} order by 1`;
    expect(tables.map((t) => t.table_name)).toEqual(["batches", "job_deps", "job_logs", "jobs", "migrations", "queue_stats", "queues", "schedules", "stats_samples", "workers"]);
  });

  it("leaves the worker's functions with the settings their plans rely on (a replaced function keeps only what it states)", async () => {
    const schema = fresh();
    await migrate({ connection: DATABASE_URL, schema });
    const rows = await sql`
      select p.proname as name, coalesce(p.proconfig, '{}') as config from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = ${schema} and p.proname in ('claim_rows', 'claim', 'finish', 'enqueue_many') order by 1`;
    const settings = Object.fromEntries(rows.map((r) => [r.name, [...(r.config as string[])].sort()]));
    // sequential scans off: a plan a connection keeps from when the table was small reads it by index
    // (versions 9, 13); JIT off: "disabled" costs would compile every call (13); plans made once per
    // connection (15), safe only with the first
    const worker = ["enable_seqscan=off", "jit=off", "plan_cache_mode=force_generic_plan"];
    expect(settings).toEqual({ claim: worker, claim_rows: worker, finish: worker, enqueue_many: ["enable_seqscan=off", "jit=off"] });
  });

  it("lets many workers start at once: the advisory lock serialises them", async () => {
    const schema = fresh();
    const results = await Promise.all(Array.from({ length: 6 }, () => migrate({ connection: DATABASE_URL, schema })));
    expect(results.filter((r) => r.applied.length > 0)).toHaveLength(1);
    expect(results.every((r) => r.version === SCHEMA_VERSION)).toBe(true);
    const [row] = await sql.unsafe(`select count(*)::int as n from "${schema}".migrations`);
    expect(row!.n).toBe(SCHEMA_VERSION);
  });

  it("accepts the caller's sql and leaves it open", async () => {
    const schema = fresh();
    await migrate({ connection: sql, schema });
    const [row] = await sql`select 1 as one`;
    expect(row!.one).toBe(1);
  });

  it("refuses a schema newer than it knows", async () => {
    const schema = fresh();
    await migrate({ connection: DATABASE_URL, schema });
    await sql.unsafe(`insert into "${schema}".migrations (id, name) values ($1, 'from the future')`, [SCHEMA_VERSION + 1]);
    const error = await migrate({ connection: DATABASE_URL, schema }).catch((e) => e);
    expect(error).toBeInstanceOf(PgPulseError);
    expect(error.code).toBe("SCHEMA_TOO_NEW");
  });

  it("rejects a schema name that is not a plain identifier, touching nothing", async () => {
    await expect(migrate({ connection: DATABASE_URL, schema: "Bad-Name" })).rejects.toMatchObject({ code: "INVALID_INPUT" });
  });

  it("embeds the current sql/ files (run `npm run build` after editing them)", () => {
    const generated = readFileSync(new URL("../src/schema/migrations.generated.ts", import.meta.url), "utf8");
    expect(generated).toBe(renderMigrations());
  });
});

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

/** What migrate() did before checksums: the table without the column, the files applied, rows of (id, name). */
async function oldMigrate(schema: string, upTo: number) {
  await sql.begin(async (tx) => {
    await tx.unsafe(`create schema "${schema}"`);
    await tx.unsafe(
      `create table "${schema}".migrations (
         id integer primary key,
         name text not null,
         applied_at timestamptz not null default now()
       )`,
    );
    for (const m of migrations.slice(0, upTo)) {
      await tx.unsafe(renderSql(m.sql, schema)).simple();
      await tx.unsafe(`insert into "${schema}".migrations (id, name) values ($1, $2)`, [m.id, m.name]);
    }
  });
}

const recorded = (schema: string) =>
  sql.unsafe(`select id, name, checksum from "${schema}".migrations order by id`).then((rows) => [...rows]);
const shipped = () => migrations.map((m) => ({ id: m.id, name: m.name, checksum: m.checksum }));

describe("migration checksums", () => {
  it("embeds the SHA-256 of each file's text", () => {
    for (const m of migrations) {
      expect(m.checksum).toBe(sha256(m.sql));
      expect(m.checksum).toBe(sha256(readFileSync(new URL(`../sql/${String(m.id).padStart(6, "0")}_${m.name}.sql`, import.meta.url), "utf8")));
    }
  });

  it("records each applied migration's checksum", async () => {
    const schema = fresh();
    await migrate({ connection: DATABASE_URL, schema });
    expect(await recorded(schema)).toEqual(shipped());
  });

  it("refuses an applied migration whose checksum differs, changing nothing", async () => {
    const schema = fresh();
    // migration 1 applied with a text other than the shipped one; 2 not yet applied
    await oldMigrate(schema, 1);
    await sql.unsafe(`alter table "${schema}".migrations add column checksum text`);
    await sql.unsafe(`update "${schema}".migrations set checksum = 'c0ffee' where id = 1`);

    const error = await migrate({ connection: DATABASE_URL, schema }).catch((e) => e);
    expect(error).toBeInstanceOf(PgPulseError);
    expect(error.code).toBe("MIGRATION_CHANGED");
    expect(error.message).toContain(`schema ${schema}`);
    expect(error.message).toContain("000001_jobs");
    expect(error.message).toContain("nothing was changed");
    expect(error.details).toEqual({ schema, id: 1, name: "jobs", expected: migrations[0]!.checksum, found: "c0ffee" });

    // the refused call rolled back: migration 2 not applied, the row untouched
    expect(await recorded(schema)).toEqual([{ id: 1, name: "jobs", checksum: "c0ffee" }]);
    const [queues] = await sql`select to_regclass(${`"${schema}".queues`}) as t`;
    expect(queues!.t).toBeNull();
    // and it keeps refusing
    await expect(migrate({ connection: DATABASE_URL, schema })).rejects.toMatchObject({ code: "MIGRATION_CHANGED" });
  });

  it("upgrades a migrations table from before checksums: adds the column, trusts and fills the missing ones", async () => {
    const schema = fresh();
    await oldMigrate(schema, 1);
    expect(await migrate({ connection: DATABASE_URL, schema })).toEqual({
      applied: migrations.slice(1).map((m) => m.id),
      version: SCHEMA_VERSION,
    });
    expect(await recorded(schema)).toEqual(shipped());

    const current = fresh();
    await oldMigrate(current, SCHEMA_VERSION);
    expect(await migrate({ connection: DATABASE_URL, schema: current })).toEqual({ applied: [], version: SCHEMA_VERSION });
    expect(await recorded(current)).toEqual(shipped());
  });

  it("still refuses a schema newer than it knows before looking at checksums", async () => {
    const schema = fresh();
    await migrate({ connection: DATABASE_URL, schema });
    await sql.unsafe(`update "${schema}".migrations set checksum = 'c0ffee' where id = 1`);
    await sql.unsafe(`insert into "${schema}".migrations (id, name, checksum) values ($1, 'from the future', 'f')`, [SCHEMA_VERSION + 1]);
    await expect(migrate({ connection: DATABASE_URL, schema })).rejects.toMatchObject({ code: "SCHEMA_TOO_NEW" });
  });
});

describe("migrationSql (pgpulse migrate --print)", () => {
  it("gives SQL that, run by hand, leaves a schema migrate() finds current", async () => {
    const schema = fresh();
    const text = migrationSql({ schema });
    expect(text).not.toContain(":PGPULSE_SCHEMA");
    await sql.unsafe(text).simple();
    expect(await recorded(schema)).toEqual(shipped());
    expect(await migrate({ connection: DATABASE_URL, schema })).toEqual({ applied: [], version: SCHEMA_VERSION });
    const tables = await sql`select table_name from information_schema.tables where table_schema = ${schema} order by 1`;
    expect(tables.map((t) => t.table_name)).toEqual(["batches", "job_deps", "job_logs", "jobs", "migrations", "queue_stats", "queues", "schedules", "stats_samples", "workers"]);
  });

  it("gives the same schema as migrate() (same columns and functions)", async () => {
    const byHand = fresh();
    const byMigrate = fresh();
    await sql.unsafe(migrationSql({ schema: byHand })).simple();
    await migrate({ connection: DATABASE_URL, schema: byMigrate });
    const shape = async (schema: string) => ({
      columns: [...(await sql`
        select table_name, column_name, data_type, is_nullable, column_default from information_schema.columns
        where table_schema = ${schema} order by 1, 2`)].map((c) => ({ ...c, column_default: c.column_default?.replaceAll(schema, "S") })),
      functions: [...(await sql`
        select p.proname, replace(p.prosrc, ${schema}, 'S') as src from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = ${schema} order by 1, 2`)],
    });
    expect(await shape(byHand)).toEqual(await shape(byMigrate));
  });

  it("uses the default schema and refuses a bad schema name", () => {
    expect(migrationSql()).toContain(`create schema if not exists "pgpulse"`);
    let error: unknown;
    try {
      migrationSql({ schema: "Bad-Name" });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ name: "PgPulseError", code: "INVALID_INPUT" });
  });
});
