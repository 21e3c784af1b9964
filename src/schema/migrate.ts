import { type Connection, openSql, quoteSchema, SCHEMA_DEFAULT } from "../db/connection.ts";
import { PgPulseError } from "../shared/errors.ts";
import { migrations } from "./migrations.generated.ts";

export interface MigrateOptions {
  connection: Connection;
  /** @default "pgpulse" */
  schema?: string;
}

export interface MigrateResult {
  /** Migration numbers applied by this call (empty when the schema was current). */
  applied: number[];
  /** The schema's version afterwards. */
  version: number;
}

/** The schema version this build of pgpulse expects. */
export const SCHEMA_VERSION = migrations.length;

/**
 * Brings the schema up to date: applies the missing numbered migrations in one
 * transaction, under an advisory lock so that workers starting together do not
 * race, and records each. A no-op when the schema is current.
 */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const schema = options.schema ?? SCHEMA_DEFAULT;
  const q = quoteSchema(schema);
  const { sql, owned } = openSql(options.connection, { max: 1 });
  try {
    return await sql.begin(async (tx) => {
      await tx.unsafe("select pg_advisory_xact_lock(hashtext($1))", [`pgpulse:migrate:${schema}`]);
      await tx.unsafe(`create schema if not exists ${q}`);
      await tx.unsafe(
        `create table if not exists ${q}.migrations (
           id integer primary key,
           name text not null,
           applied_at timestamptz not null default now()
         )`,
      );
      const done = new Set((await tx.unsafe(`select id from ${q}.migrations`)).map((r) => r.id as number));
      const newest = Math.max(0, ...done);
      if (newest > SCHEMA_VERSION) {
        throw new PgPulseError(
          "SCHEMA_TOO_NEW",
          `schema ${schema} is at version ${newest}, newer than this pgpulse knows (${SCHEMA_VERSION}); upgrade pgpulse`,
          { details: { version: newest, known: SCHEMA_VERSION } },
        );
      }
      const applied: number[] = [];
      for (const m of migrations) {
        if (done.has(m.id)) continue;
        await tx.unsafe(renderSql(m.sql, schema)).simple();
        await tx.unsafe(`insert into ${q}.migrations (id, name) values ($1, $2)`, [m.id, m.name]);
        applied.push(m.id);
      }
      return { applied, version: Math.max(newest, ...applied) };
    });
  } finally {
    if (owned) await sql.end({ timeout: 5 });
  }
}

/** Fills the schema placeholders of a migration file. */
export function renderSql(text: string, schema: string): string {
  const q = quoteSchema(schema);
  return text.replaceAll(":PGPULSE_SCHEMA_NAME", `'${schema}'`).replaceAll(":PGPULSE_SCHEMA", q);
}
