import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { createQueue, migrate, SCHEMA_VERSION } from "../src/index.ts";
import { DATABASE_URL, statusesOf } from "./support/db.ts";
import { schemaAt } from "./support/schema-at.ts";

// Upgrading to version 14 settles the graphs that versions 6 to 13 left
// stranded: a parent that the application's trigger ended (or retried) while
// pgpulse was settling another parent kept its children waiting. The schema
// is built at version 13 from the shipped files, stranded by that version's
// own triggers, then migrated; graphs that were not stranded stay as they were.
const sql = postgres(DATABASE_URL, { onnotice: () => {}, max: 2 });
const schema = `t_upgrade_stranded_${crypto.randomUUID().slice(0, 8)}`;
const s = `"${schema}"`;
const queue = createQueue({ connection: DATABASE_URL, schema });
afterAll(async () => {
  await queue.close();
  await sql.unsafe(`drop schema if exists ${s} cascade`);
  await sql.end({ timeout: 5 });
});

const statusOf = (ids: string[]) => statusesOf(sql, s, ids);
/** A flow through version 13's enqueue_flow(): specs with parents as [index, mode]; the ids in input order. */
const flow = async (specs: { task?: string; parents?: [number, string][]; delay?: boolean }[]) =>
  (await sql.unsafe(`select (f.job).id::text as id from ${s}.enqueue_flow($1::text::jsonb) f order by f.ord`, [
    JSON.stringify(specs.map((x) => ({ task: "t", queue: "stranded", delay_ms: 3_600_000, parents: x.parents ?? [] }))),
  ])).map((r) => r.id as string);
const set = (id: string, status: string) =>
  sql.unsafe(`update ${s}.jobs set status = $2::text::${s}.job_status,
    finished_at = case when $2 in ('completed', 'failed', 'cancelled') then now() end where id = $1`, [id, status]);
/** Every column of the graph's jobs and edges, to show that the upgrade left them as they were. */
const snapshot = async (ids: string[]) =>
  JSON.stringify(await sql.unsafe(`select
    (select json_agg(j order by j.id) from ${s}.jobs j where j.id = any($1::text::bigint[])) as jobs,
    (select json_agg(d order by d.parent_id, d.child_id) from ${s}.job_deps d where d.child_id = any($1::text::bigint[])) as edges`,
    [`{${ids.join(",")}}`]));

describe("upgrading to version 14", () => {
  it("settles the children that a parent ended or retried during another's settling left waiting, and nothing else", async () => {
    await schemaAt(sql, schema, 13);
    // The application's trigger: when a job fails or is cancelled, set the jobs linked to it to a status.
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

    // Ended while settling: cancelling p fails c, and the trigger cancels x; x's children wait.
    const [p, c] = await flow([{}, { parents: [[0, "fail"]] }]) as [string, string];
    const [x, fails, runs] = await flow([{}, { parents: [[0, "fail"]] }, { parents: [[0, "run"]] }]) as [string, string, string];
    // Retried while settling: y failed (h failed with it), then cancelling q fails d, and the trigger retries y; h stays failed.
    const [y, h] = await flow([{}, { parents: [[0, "fail"]] }]) as [string, string];
    const [q, d] = await flow([{}, { parents: [[0, "fail"]] }]) as [string, string];
    // Retried the same way, then ran again and completed before the upgrade (the usual case): h2 stays failed.
    const [y2, h2] = await flow([{}, { parents: [[0, "fail"]] }]) as [string, string];
    const [q2, d2] = await flow([{}, { parents: [[0, "fail"]] }]) as [string, string];
    await sql.unsafe(`insert into ${s}.links values ($1, $2, 'cancelled'), ($3, $4, 'queued'), ($5, $6, 'queued')`, [c, x, d, y, d2, y2]);
    await set(y, "failed");
    await set(y2, "failed");
    expect(await statusOf([y, h])).toEqual(["failed", "failed"]);
    await set(p, "cancelled");
    await set(q, "cancelled");
    await set(q2, "cancelled");
    expect(await statusOf([p, c, x, fails, runs])).toEqual(["cancelled", "failed", "cancelled", "pending", "pending"]);
    expect(await statusOf([q, d, y, h])).toEqual(["cancelled", "failed", "queued", "failed"]);
    await set(y2, "running");
    await set(y2, "completed");
    expect(await statusOf([y2, h2])).toEqual(["completed", "failed"]);

    // Not stranded: a graph under way, and a failed parent whose child was cancelled by hand before.
    const live = await flow([{}, { parents: [[0, "fail"]] }, { parents: [[1, "run"]] }]);
    await set(live[0]!, "running");
    const [r, rc] = await flow([{}, { parents: [[0, "fail"]] }]) as [string, string];
    await set(rc, "cancelled");
    await set(r, "failed");
    const before = await snapshot([...live, r, rc]);

    const upgraded = await migrate({ connection: DATABASE_URL, schema });
    expect(upgraded).toMatchObject({ version: SCHEMA_VERSION });
    expect(upgraded.applied[0]).toBe(14);

    expect(await statusOf([x, fails, runs])).toEqual(["cancelled", "failed", "queued"]);
    expect((await queue.getJob(fails))!.errors.at(-1)).toMatchObject({ name: "ParentCancelled", parent: x });
    expect(await statusOf([y, h])).toEqual(["queued", "pending"]);
    // every parent of h2 completed: h2 runs, as it would have had y2's retry been settled
    expect(await statusOf([h2])).toEqual(["queued"]);
    expect(await snapshot([...live, r, rc])).toBe(before);
    const [waiting] = await sql.unsafe(`select count(*)::int as n from ${s}.job_deps e join ${s}.jobs p on p.id = e.parent_id
      where e.parent_id = any($1::text::bigint[]) and e.state <> 'd'`, [`{${x},${y}}`]);
    // x's fail edge is 'b' (its cancellation failed the child), run edge settled; y's edge waits for y again
    expect(waiting!.n).toBe(2);

    // From here the graphs go on as any: y completes, and h is released.
    await set(y, "completed");
    expect(await statusOf([h])).toEqual(["queued"]);
  });
});
