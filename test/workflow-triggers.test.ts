import { beforeAll, describe, expect, it } from "vitest";
import { deadline, testDb } from "./support/db.ts";

// Parents that the application's own triggers end while pgpulse is settling
// another parent: a trigger reacting to a child pgpulse just failed or
// cancelled ends a job that has children of its own. Those children are
// settled as any parent's are (sql/000014), however deep the triggers go.
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

const statusOf = async (ids: string[]) => {
  const rows = await sql.unsafe(`select id::text, status::text from ${s}.jobs where id = any($1::bigint[])`, [ids]);
  const by = new Map(rows.map((r) => [r.id as string, r.status as string]));
  return ids.map((id) => by.get(id));
};
const flow = async (queueName: string, specs: Parameters<typeof queue.enqueueFlow>[0]) =>
  (await queue.enqueueFlow(specs.map((spec) => ({ ...spec, queue: queueName })))).map((j) => j.id);
/** When `job` fails or is cancelled (by anyone: pgpulse settling a graph too), the application's trigger ends `other` as `action`. */
const link = (job: string, other: string, action: "completed" | "failed" | "cancelled") =>
  sql.unsafe(`insert into ${s}.links (job, other, action) values ($1, $2, $3)`, [job, other, action]);

beforeAll(async () => {
  // An application's trigger: ends the jobs linked to one that failed or was cancelled.
  await sql.unsafe(`
    create table ${s}.links (job bigint not null, other bigint not null, action text not null);
    create function ${s}.follow_link() returns trigger language plpgsql as $$
    begin
      update ${s}.jobs j set status = l.action::${s}.job_status, finished_at = now()
        from ${s}.links l
       where l.job = new.id and j.id = l.other and j.status in ('pending', 'queued');
      return null;
    end $$;
    create trigger zz_follow_link after update of status on ${s}.jobs for each row
      when (new.status in ('failed', 'cancelled') and old.status is distinct from new.status)
      execute function ${s}.follow_link();`).simple();
});

describe("a parent ended by the application's trigger while pgpulse settles another", () => {
  it("settles its children by their modes: failed, cancelled, run anyway, and a child of two parents counts both", async () => {
    // p -> c: cancelling p fails c (pgpulse settling), and the trigger cancels x in reaction
    const [p, c] = (await flow("trig-one", [
      { name: "p", task: "t", delayMs: 3_600_000 }, { name: "c", task: "t", parents: ["p"] },
    ])) as [string, string];
    const [z, x, fails, runs, below, both] = (await flow("trig-one", [
      { name: "z", task: "t", delayMs: 3_600_000 },
      { name: "x", task: "t", delayMs: 3_600_000 },
      { name: "fails", task: "t", parents: ["x"] },
      { name: "runs", task: "t", parents: ["x"], onParentFailure: "run", delayMs: 3_600_000 },
      { name: "below", task: "t", parents: [{ name: "fails", onFailure: "cancel" }] },
      { name: "both", task: "t", parents: ["z", "x"], onParentFailure: "run", delayMs: 3_600_000 },
    ])) as [string, string, string, string, string, string];
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where id = $1`, [z]);
    await link(c, x, "cancelled");

    await queue.cancel(p);

    expect(await statusOf([p, c, x])).toEqual(["cancelled", "failed", "cancelled"]);
    expect(await statusOf([fails, runs, below, both])).toEqual(["failed", "queued", "cancelled", "queued"]);
    expect((await queue.getJob(fails))!.errors.at(-1)).toMatchObject({ name: "ParentCancelled", parent: x });
    const [left] = await sql.unsafe(`select parents_left from ${s}.jobs where id = $1`, [both]);
    expect(left!.parents_left).toBe(0);
    const waiting = await sql.unsafe(`select count(*)::int as n from ${s}.job_deps where parent_id = $1 and state = 'w'`, [x]);
    expect(waiting[0]!.n).toBe(0);
  });

  it("goes as deep as the triggers do: a job pgpulse ends while settling the trigger's end sets off the trigger again", async () => {
    const [p, c] = (await flow("trig-deep", [
      { name: "p", task: "t", delayMs: 3_600_000 }, { name: "c", task: "t", parents: ["p"] },
    ])) as [string, string];
    const [x, g] = (await flow("trig-deep", [
      { name: "x", task: "t", delayMs: 3_600_000 }, { name: "g", task: "t", parents: ["x"] },
    ])) as [string, string];
    const [y, h, hh] = (await flow("trig-deep", [
      { name: "y", task: "t", delayMs: 3_600_000 }, { name: "h", task: "t", parents: ["y"] },
      { name: "hh", task: "t", parents: ["h"], onParentFailure: "run", delayMs: 3_600_000 },
    ])) as [string, string, string];
    await link(c, x, "cancelled");
    await link(g, y, "failed");

    await sql.unsafe(`update ${s}.jobs set status = 'failed', finished_at = now() where id = $1`, [p]);

    expect(await statusOf([p, c, x, g, y, h, hh])).toEqual(["failed", "failed", "cancelled", "failed", "failed", "failed", "queued"]);
  });

  it("a parent the trigger completes releases its children to a worker, woken by the notification", async () => {
    const [p, c] = (await flow("trig-run", [
      { name: "p", task: "t", delayMs: 3_600_000 }, { name: "c", task: "t", parents: ["p"] },
    ])) as [string, string];
    const [x, g] = (await flow("trig-run", [
      { name: "x", task: "t", delayMs: 3_600_000 }, { name: "g", task: "t", parents: ["x"] },
    ])) as [string, string];
    await link(c, x, "completed");
    const w = db.worker({ queues: ["trig-run"], tasks: { t: async () => "ran" } });
    await w.start();
    const ran = w.waitFor("job:completed", (e) => e.job.id === g, deadline());

    await queue.cancel(p);

    await ran;
    expect(await statusOf([c, x, g])).toEqual(["failed", "completed", "completed"]);
  });

  it("a trigger ending hundreds of parents in one statement while pgpulse settles settles every one", async () => {
    const [p, c] = (await flow("trig-many", [
      { name: "p", task: "t", delayMs: 3_600_000 }, { name: "c", task: "t", parents: ["p"] },
    ])) as [string, string];
    // 600 pairs: more ends than one statement's notes hold, so some are settled as they are noted
    const pairs = 600;
    const ids = await flow("trig-many", Array.from({ length: pairs }, (_, i) => [
      { name: `x${i}`, task: "t", delayMs: 3_600_000 }, { name: `g${i}`, task: "t", parents: [`x${i}`] },
    ]).flat());
    const xs = ids.filter((_, i) => i % 2 === 0);
    const gs = ids.filter((_, i) => i % 2 === 1);
    await sql.unsafe(`insert into ${s}.links (job, other, action) select $1, unnest($2::text::bigint[]), 'cancelled'`, [c, `{${xs.join(",")}}`]);

    await queue.cancel(p);

    const [r] = await sql.unsafe(`select
      (select count(*)::int from ${s}.jobs where id = any($1::text::bigint[]) and status = 'cancelled') as xs,
      (select count(*)::int from ${s}.jobs where id = any($2::text::bigint[]) and status = 'failed') as gs`,
      [`{${xs.join(",")}}`, `{${gs.join(",")}}`]);
    expect(r).toEqual({ xs: pairs, gs: pairs });
  });
});
