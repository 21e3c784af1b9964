import type postgres from "postgres";
import { quoteSchema } from "../../src/db/connection.ts";
import { migrationsSql } from "../../src/db/migrations.ts";
import { renderSql } from "../../src/schema/migrate.ts";
import { migrations } from "../../src/schema/migrations.generated.ts";

/** Builds `schema` as a pgpulse of version `version` left it: the shipped migration files up to that one, recorded. */
export async function schemaAt(sql: postgres.Sql, schema: string, version: number): Promise<void> {
  const m = migrationsSql(quoteSchema(schema));
  await sql.begin(async (tx) => {
    await tx.unsafe(m.createSchema);
    await tx.unsafe(m.createTable);
    await tx.unsafe(m.addChecksum);
    for (const file of migrations.slice(0, version)) {
      await tx.unsafe(renderSql(file.sql, schema)).simple();
      await tx.unsafe(m.insert, [file.id, file.name, file.checksum]);
    }
  });
}
