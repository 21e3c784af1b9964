import { readFileSync } from "node:fs";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { migrate, PgPulseError, SCHEMA_VERSION } from "../src/index.ts";
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
    expect(tables.map((t) => t.table_name)).toEqual(["jobs", "migrations", "queues", "schedules", "workers"]);
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
