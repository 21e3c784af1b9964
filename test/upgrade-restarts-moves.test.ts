import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { createQueue, migrate } from "../src/index.ts";
import { migrations } from "../src/schema/migrations.generated.ts";
import { DATABASE_URL, statusesOf } from "./support/db.ts";
import { schemaAt } from "./support/schema-at.ts";

// Upgrading to version 17 settles the graphs that earlier versions left wrong:
// a job that the application's trigger put back right after pgpulse ended it
// kept its children failed, and a job moved by hand from one end status to
// another (or put back from completed) left its edges as its old end had
// settled them. The schema is built at version 16 from the shipped files,
// stranded by that version's own triggers, then migrated; graphs that were not
// stranded stay as they were.
// (found by name: the migration's number may change when it is merged)
const version = migrations.find((m) => m.name === "settle_as_it_stands")!.id;
const sql = postgres(DATABASE_URL, { onnotice: () => {}, max: 2 });
const schema = `t_upgrade_restarts_moves_${crypto.randomUUID().slice(0, 8)}`;
const s = `"${schema}"`;
const queue = createQueue({ connection: DATABASE_URL, schema });
afterAll(async () => {
  await queue.close();
  await sql.unsafe(`drop schema if exists ${s} cascade`);
  await sql.end({ timeout: 5 });
});

const statusOf = (ids: string[]) => statusesOf(sql, s, ids);
/** A flow through the earlier version's enqueue_flow(): specs with parents as [index, mode]; the ids in input order. */
const flow = async (specs: { parents?: [number, string][] }[]) =>
  (await sql.unsafe(`select (f.job).id::text as id from ${s}.enqueue_flow($1::text::jsonb) f order by f.ord`, [
    JSON.stringify(specs.map((x) => ({ task: "t", queue: "moves", delay_ms: 3_600_000, parents: x.parents ?? [] }))),
  ])).map((r) => r.id as string);
const set = (id: string, status: string) =>
  sql.unsafe(`update ${s}.jobs set status = $2::text::${s}.job_status,
    finished_at = case when $2 in ('completed', 'failed', 'cancelled') then now() end where id = $1`, [id, status]);
const edge = async (parent: string, child: string) =>
  (await sql.unsafe(`select state from ${s}.job_deps where parent_id = $1 and child_id = $2`, [parent, child]))[0]!.state as string;
const left = async (id: string) => (await sql.unsafe(`select parents_left from ${s}.jobs where id = $1`, [id]))[0]!.parents_left as number;
/** Every column of the graph's jobs and edges, to show that the upgrade left them as they were. */
const snapshot = async (ids: string[]) =>
  JSON.stringify(await sql.unsafe(`select
    (select json_agg(j order by j.id) from ${s}.jobs j where j.id = any($1::text::bigint[])) as jobs,
    (select json_agg(d order by d.parent_id, d.child_id) from ${s}.job_deps d where d.child_id = any($1::text::bigint[])) as edges`,
    [`{${ids.join(",")}}`]));

describe("upgrading to version 17", () => {
  it("settles children left failed by a restart pgpulse had not seen, and edges a move by hand left as they were, and nothing else", async () => {
    await schemaAt(sql, schema, version - 1);
    // The application's trigger: when a job fails or is cancelled, put back the jobs linked to it.
    await sql.unsafe(`
      create table ${s}.links (job bigint not null, other bigint not null);
      create function ${s}.follow_link() returns trigger language plpgsql as $$
      begin
        update ${s}.jobs j set status = 'queued', finished_at = null
          from ${s}.links l
         where l.job = new.id and j.id = l.other and j.status in ('failed', 'cancelled');
        return null;
      end $$;
      create trigger zz_follow_link after update of status on ${s}.jobs for each row
        when (new.status in ('failed', 'cancelled') and old.status is distinct from new.status)
        execute function ${s}.follow_link();`).simple();

    // Put back in the same settling: cancelling p fails c, which the trigger puts back; g stays failed.
    const [p, c, g] = await flow([{}, { parents: [[0, "fail"]] }, { parents: [[1, "fail"]] }]) as [string, string, string];
    // The same, and c2 ran and completed before the upgrade: g2 stays failed.
    const [p2, c2, g2] = await flow([{}, { parents: [[0, "fail"]] }, { parents: [[1, "fail"]] }]) as [string, string, string];
    await sql.unsafe(`insert into ${s}.links values ($1, $1), ($2, $2)`, [c, c2]);
    await set(p, "cancelled");
    await set(p2, "cancelled");
    await set(c2, "running");
    await set(c2, "completed");
    expect(await statusOf([c, g, c2, g2])).toEqual(["queued", "failed", "completed", "failed"]);
    // Moved by hand: q failed to completed (d and e stay failed); r completed to failed (k still waits for o).
    const [q, d, e] = await flow([{}, { parents: [[0, "fail"]] }, { parents: [[1, "fail"]] }]) as [string, string, string];
    await set(q, "failed");
    await set(q, "completed");
    const [r, o, k] = await flow([{}, {}, { parents: [[0, "fail"], [1, "fail"]] }]) as [string, string, string];
    await set(r, "completed");
    await set(r, "failed");
    // Put back by hand from completed: n's edge from m stays settled.
    const [m, o2, n] = await flow([{}, {}, { parents: [[0, "fail"], [1, "fail"]] }]) as [string, string, string];
    await set(m, "completed");
    await set(m, "queued");
    expect(await statusOf([d, e, k, n])).toEqual(["failed", "failed", "pending", "pending"]);
    expect([await edge(m, n), await left(n)]).toEqual(["d", 1]);

    // Not stranded: a graph under way; a failed parent whose child was cancelled by hand before; a
    // parent retried after its child of mode run ran and failed; completed parents, one with a child
    // still waiting for another parent; a failed parent and the child it failed.
    const live = await flow([{}, { parents: [[0, "fail"]] }, { parents: [[1, "run"]] }]);
    await set(live[0]!, "running");
    const [h, hc] = await flow([{}, { parents: [[0, "fail"]] }]);
    await set(hc!, "cancelled");
    await set(h!, "failed");
    const [f, x] = await flow([{}, { parents: [[0, "run"]] }]);
    await set(f!, "failed");
    await set(x!, "running");
    await set(x!, "failed");
    await set(f!, "queued");
    const [a, b, ab, w] = await flow([{}, {}, { parents: [[0, "fail"]] }, { parents: [[1, "fail"], [2, "fail"]] }]);
    await set(a!, "completed");
    await set(ab!, "running");
    await set(ab!, "completed");
    const [y, yc] = await flow([{}, { parents: [[0, "fail"]] }]);
    await set(y!, "failed");
    const others = [...live, h!, hc!, f!, x!, a!, b!, ab!, w!, y!, yc!];
    const before = await snapshot(others);

    const upgraded = await migrate({ connection: DATABASE_URL, schema });
    expect(upgraded.applied[0]).toBe(version);

    // c stands queued: g waits for it; c2 completed: g2 runs
    expect(await statusOf([c, g, c2, g2])).toEqual(["queued", "pending", "completed", "queued"]);
    expect(await edge(c, g)).toBe("w");
    // q completed: d runs (its failure's record kept), e waits for d
    expect(await statusOf([d, e])).toEqual(["queued", "pending"]);
    expect((await queue.getJob(d))!.errors.map((err) => err.name)).toEqual(["ParentFailed"]);
    // r failed: k fails
    expect(await statusOf([k])).toEqual(["failed"]);
    expect((await queue.getJob(k))!.errors.at(-1)).toMatchObject({ name: "ParentFailed", parent: r });
    // m runs again: n waits for it
    expect([await edge(m, n), await left(n)]).toEqual(["w", 2]);
    expect(await snapshot(others)).toBe(before);

    // From here the graphs go on as any: d completes, and e is released; m and o2 complete, and n is.
    await set(d, "completed");
    await set(m, "completed");
    await set(o2, "completed");
    expect(await statusOf([e, n])).toEqual(["queued", "queued"]);
  });
});
