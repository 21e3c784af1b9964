import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { migrate, SCHEMA_VERSION } from "../src/index.ts";
import { DATABASE_URL } from "./support/db.ts";
import { schemaAt } from "./support/schema-at.ts";

// A parent that versions 6 to 13 retried while pgpulse was settling another
// parent kept its failure's mark on its edges (state 'b') and its children
// failed. Most such parents have run again by the time of the upgrade: one that
// completed since still holds a 'b' edge, and its child is still failed.
const sql = postgres(DATABASE_URL, { onnotice: () => {}, max: 2 });
const schema = `t_upgrade_rerun_${crypto.randomUUID().slice(0, 8)}`;
const s = `"${schema}"`;
afterAll(async () => {
  await sql.unsafe(`drop schema if exists ${s} cascade`);
  await sql.end({ timeout: 5 });
});

const statusOf = async (ids: string[]) => {
  const rows = await sql.unsafe(`select id::text, status::text from ${s}.jobs where id = any($1::bigint[])`, [ids]);
  const by = new Map(rows.map((r) => [r.id as string, r.status as string]));
  return ids.map((id) => by.get(id));
};
const flow = async (specs: { parents?: [number, string][] }[]) =>
  (await sql.unsafe(`select (f.job).id::text as id from ${s}.enqueue_flow($1::text::jsonb) f order by f.ord`, [
    JSON.stringify(specs.map((x) => ({ task: "t", queue: "stranded", delay_ms: 3_600_000, parents: x.parents ?? [] }))),
  ])).map((r) => r.id as string);
const set = (id: string, status: string) =>
  sql.unsafe(`update ${s}.jobs set status = $2::text::${s}.job_status,
    finished_at = case when $2 in ('completed', 'failed', 'cancelled') then now() end where id = $1`, [id, status]);

describe("upgrading to version 14", () => {
  it("releases the child of a parent retried while settling that has completed since", async () => {
    await schemaAt(sql, schema, 13);
    await sql.unsafe(`
      create table ${s}.links (job bigint not null, other bigint not null, action text not null);
      create function ${s}.follow_link() returns trigger language plpgsql as $$
      begin
        update ${s}.jobs j set status = l.action::${s}.job_status,
               finished_at = case when l.action in ('completed', 'failed', 'cancelled') then now() end
          from ${s}.links l
         where l.job = new.id and j.id = l.other and (l.action = 'queued') = (j.status in ('failed', 'cancelled'));
        return null;
      end $$;
      create trigger zz_follow_link after update of status on ${s}.jobs for each row
        when (new.status in ('failed', 'cancelled') and old.status is distinct from new.status)
        execute function ${s}.follow_link();`).simple();

    // y failed (h failed with it); cancelling q fails d, and the trigger retries y while pgpulse settles q.
    const [y, h] = await flow([{}, { parents: [[0, "fail"]] }]) as [string, string];
    const [q, d] = await flow([{}, { parents: [[0, "fail"]] }]) as [string, string];
    await sql.unsafe(`insert into ${s}.links values ($1, $2, 'queued')`, [d, y]);
    await set(y, "failed");
    await set(q, "cancelled");
    expect(await statusOf([y, h])).toEqual(["queued", "failed"]);
    // y runs again and completes, still at version 13: h stays failed, y's edge to it still 'b'.
    await set(y, "running");
    await set(y, "completed");
    expect(await statusOf([y, h])).toEqual(["completed", "failed"]);

    expect(await migrate({ connection: DATABASE_URL, schema })).toMatchObject({ version: SCHEMA_VERSION });
    // Every parent of h completed: h runs, as it would have had y's retry been settled.
    expect(await statusOf([h])).toEqual(["queued"]);
  });
});
