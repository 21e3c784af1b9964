import { type Connection, openSql, quoteSchema, SCHEMA_DEFAULT } from "../db/connection.ts";
import { begin } from "../db/context.ts";
import { migrateLockKey, migrationsSql, migrationsSqlLiteral } from "../db/migrations.ts";
import { PgPulseError } from "../shared/errors.ts";
import { type Migration, migrations } from "./migrations.generated.ts";

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
 * race, and records each with the checksum of its file. A no-op when the
 * schema is current.
 *
 * Refuses, changing nothing, a schema newer than this pgpulse knows
 * (`SCHEMA_TOO_NEW`) and one where an applied migration's recorded checksum
 * differs from the file this pgpulse ships (`MIGRATION_CHANGED`).
 */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const schema = options.schema ?? SCHEMA_DEFAULT;
  const q = quoteSchema(schema);
  const s = migrationsSql(q);
  const { sql, owned } = openSql(options.connection, { max: 1 });
  try {
    return await begin(sql, async (tx) => {
      await tx.unsafe(s.lock, [migrateLockKey(schema)]);
      await tx.unsafe(s.createSchema);
      await tx.unsafe(s.createTable);
      await tx.unsafe(s.addChecksum);
      const rows = (await tx.unsafe(s.selectApplied)) as unknown as { id: number; name: string; checksum: string | null }[];
      const newest = Math.max(0, ...rows.map((r) => r.id));
      if (newest > SCHEMA_VERSION) {
        throw new PgPulseError(
          "SCHEMA_TOO_NEW",
          `schema ${schema} is at version ${newest}, newer than this pgpulse knows (${SCHEMA_VERSION}); upgrade pgpulse`,
          { details: { version: newest, known: SCHEMA_VERSION } },
        );
      }
      for (const row of rows) {
        const shipped = migrations[row.id - 1];
        if (!shipped) continue;
        if (row.checksum === null) {
          // Recorded by a pgpulse from before checksums: trust on first sight.
          // We cannot know which text was applied, so the shipped one is
          // recorded and checked from now on.
          await tx.unsafe(s.fillChecksum, [row.id, shipped.checksum]);
        } else if (row.checksum !== shipped.checksum) {
          throw migrationChanged(schema, shipped, row.checksum);
        }
      }
      const done = new Set(rows.map((r) => r.id));
      const applied: number[] = [];
      for (const m of migrations) {
        if (done.has(m.id)) continue;
        await tx.unsafe(renderSql(m.sql, schema)).simple();
        await tx.unsafe(s.insert, [m.id, m.name, m.checksum]);
        applied.push(m.id);
      }
      return { applied, version: Math.max(newest, ...applied) };
    });
  } finally {
    if (owned) await sql.end({ timeout: 5 });
  }
}

function migrationChanged(schema: string, m: Migration, found: string): PgPulseError {
  const file = `${String(m.id).padStart(6, "0")}_${m.name}`;
  return new PgPulseError(
    "MIGRATION_CHANGED",
    `schema ${schema}: migration ${file} was applied from another version of its file than the one this pgpulse ships ` +
      `(recorded checksum ${found}, shipped ${m.checksum}), so the schema may not be what this pgpulse expects; ` +
      `nothing was changed. Make the schema match sql/${file}.sql (for a schema whose jobs can go: drop schema ${schema} cascade, ` +
      `then migrate), then record the shipped checksum: update "${schema}".migrations set checksum = '${m.checksum}' where id = ${m.id}`,
    { details: { schema, id: m.id, name: m.name, expected: m.checksum, found } },
  );
}

export interface MigrationSqlOptions {
  /** @default "pgpulse" */
  schema?: string;
}

/**
 * The SQL migrate() would run on an empty database, as one text, for those who
 * apply migrations with their own tool: the schema, the migrations table,
 * every migration file (placeholders filled) and the row recording it with its
 * checksum. Run it in one transaction (`psql -1 -f`); migrate() then finds the
 * schema current. Needs no database.
 */
export function migrationSql(options: MigrationSqlOptions = {}): string {
  const schema = options.schema ?? SCHEMA_DEFAULT;
  const q = quoteSchema(schema);
  const s = migrationsSqlLiteral(q, schema);
  const parts = [
    `-- pgpulse schema ${schema}, version ${SCHEMA_VERSION}: every migration, for applying with your own tool.\n` +
      `-- For a database without this schema. Run it in one transaction, e.g. psql -1 -v ON_ERROR_STOP=1 -f this.sql\n` +
      `-- Do not edit it: pgpulse checks the recorded checksums against the files it ships.\n`,
    `${s.lock};\n${s.createSchema};\n${s.createTable};\n`,
  ];
  for (const m of migrations) {
    const body = renderSql(m.sql, schema).trimEnd();
    parts.push(
      `-- migration ${String(m.id).padStart(6, "0")}_${m.name} (sha256 ${m.checksum})\n` +
        `${body}\n\n${s.insert(m.id, m.name, m.checksum)};\n`,
    );
  }
  return parts.join("\n");
}

/** Fills the schema placeholders of a migration file. */
export function renderSql(text: string, schema: string): string {
  const q = quoteSchema(schema);
  return text.replaceAll(":PGPULSE_SCHEMA_NAME", `'${schema}'`).replaceAll(":PGPULSE_SCHEMA", q);
}
