import { beforeAll, describe, expect, it } from "vitest";
import { deadline, testDb } from "./support/db.ts";

// Parents that the application's own triggers end while pgpulse is settling
// another parent: a trigger reacting to a child pgpulse just failed or
// cancelled ends a job that has children of its own. Those children are
// settled as any parent's are (sql/000014), however deep the triggers go.
// A job that such a trigger puts back to queued (a restart) before pgpulse
// settled its end is settled as it stands (sql/000017).
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
/**
 * When `job` fails or is cancelled (by anyone: pgpulse settling a graph too), the application's trigger ends
 * `other` as `action` (if pending or queued), or with action queued puts it back (if failed or cancelled).
 */
const link = (job: string, other: string, action: "completed" | "failed" | "cancelled" | "queued") =>
  sql.unsafe(`insert into ${s}.links (job, other, action) values ($1, $2, $3)`, [job, other, action]);

beforeAll(async () => {
  // An application's trigger: ends (or restarts) the jobs linked to one that failed or was cancelled.
  await sql.unsafe(`
    create table ${s}.links (job bigint not null, other bigint not null, action text not null);
    create function ${s}.follow_link() returns trigger language plpgsql as $$
    begin
      update ${s}.jobs j set status = l.action::${s}.job_status,
             finished_at = case when l.action = 'queued' then null else now() end
        from ${s}.links l
       where l.job = new.id and j.id = l.other
         and case when l.action = 'queued' then j.status in ('failed', 'cancelled') else j.status in ('pending', 'queued') end;
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

describe("a job pgpulse just ended, restarted by the application's trigger in the same settling", () => {
  /** The state of a job's edges to its children, by child id. */
  const edges = async (parent: string) =>
    Object.fromEntries((await sql.unsafe(`select child_id::text as child, state from ${s}.job_deps where parent_id = $1`, [parent]))
      .map((r) => [r.child as string, r.state as string]));
  const left = async (id: string) =>
    (await sql.unsafe(`select parents_left from ${s}.jobs where id = $1`, [id]))[0]!.parents_left as number;

  it("a child that the trigger restarts keeps its own children waiting for it, as a retry would", async () => {
    // p -> c -> g (fail), c -> r (run): cancelling p fails c, and the trigger puts c back at once
    const [p, c, g, r] = (await flow("restart-self", [
      { name: "p", task: "t", delayMs: 3_600_000 }, { name: "c", task: "t", parents: ["p"], delayMs: 3_600_000 },
      { name: "g", task: "t", parents: ["c"] },
      { name: "r", task: "t", parents: [{ name: "c", onFailure: "run" }], delayMs: 3_600_000 },
    ])) as [string, string, string, string];
    await link(c, c, "queued");

    await queue.cancel(p);

    expect(await statusOf([p, c, g, r])).toEqual(["cancelled", "queued", "pending", "pending"]);
    expect(await edges(c)).toEqual({ [g]: "w", [r]: "w" });
    expect([await left(g), await left(r)]).toEqual([1, 1]);
    // c runs and completes: both go on
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where id = $1`, [c]);
    expect(await statusOf([g, r])).toEqual(["queued", "queued"]);
  });

  it("a sibling that the trigger restarts, ended in the same statement, keeps its children waiting", async () => {
    // p -> c1, p -> c2 -> g2: cancelling p fails c1 and c2 together; c1's failure puts c2 back
    const [p, c1, c2, g2] = (await flow("restart-sibling", [
      { name: "p", task: "t", delayMs: 3_600_000 }, { name: "c1", task: "t", parents: ["p"] },
      { name: "c2", task: "t", parents: ["p"], delayMs: 3_600_000 }, { name: "g2", task: "t", parents: ["c2"] },
    ])) as [string, string, string, string];
    await link(c1, c2, "queued");

    await queue.cancel(p);

    expect(await statusOf([p, c1, c2, g2])).toEqual(["cancelled", "failed", "queued", "pending"]);
    expect(await edges(c2)).toEqual({ [g2]: "w" });
  });

  it("a parent that the trigger restarts while its end is being settled takes back the whole graph it ended", async () => {
    // p -> c -> g: cancelling p fails c, and c's failure puts p back: c waits again, and so does g
    const [p, c, g] = (await flow("restart-parent", [
      { name: "p", task: "t", delayMs: 3_600_000 }, { name: "c", task: "t", parents: ["p"] },
      { name: "g", task: "t", parents: ["c"] },
    ])) as [string, string, string];
    await link(c, p, "queued");

    await queue.cancel(p);

    expect(await statusOf([p, c, g])).toEqual(["queued", "pending", "pending"]);
    expect([await edges(p), await edges(c)]).toEqual([{ [c]: "w" }, { [g]: "w" }]);
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where id = $1`, [p]);
    expect(await statusOf([c, g])).toEqual(["queued", "pending"]);
  });
});
