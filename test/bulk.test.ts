import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { type BulkResult, type JobFilter, PgPulseError } from "../src/index.ts";
import { DATABASE_URL, deadline, testDb, until } from "./support/db.ts";

// retryJobs, cancelJobs and deleteJobs (src/producer/bulk.ts, src/db/bulk.ts), and listJobs's filters, on real Postgres.
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

const ENDED = ["completed", "failed", "cancelled"];

interface Row {
  queue: string;
  status: string;
  task?: string;
  key?: string;
  group?: string;
  payload?: unknown;
  createdAt?: string;
  finishedAt?: string;
  parentsLeft?: number;
}

/** Inserts jobs as they would be after running (a failed one with its error); returns their ids in input order. */
async function insert(rows: Row[]): Promise<string[]> {
  const out = await sql.unsafe(
    `insert into ${s}.jobs (task, queue, status, key, group_key, payload, created_at, finished_at, attempts, max_attempts, errors, parents_left)
     select coalesce(x.task, 't'), x.queue, x.status::${s}.job_status, x.key, x."group", coalesce(x.payload, '{}'),
       coalesce(x."createdAt", now()),
       case when x.status in ('completed', 'failed', 'cancelled') then coalesce(x."finishedAt", now()) end,
       case when x.status in ('completed', 'failed', 'running') then 1 else 0 end, 1,
       case when x.status = 'failed' then jsonb_build_array(jsonb_build_object('attempt', 1, 'at', now(), 'name', 'Error', 'message', 'boom')) else '[]' end,
       x."parentsLeft"
     from jsonb_array_elements($1::text::jsonb) with ordinality as e(v, o),
       jsonb_to_record(e.v) as x(task text, queue text, status text, key text, "group" text, payload jsonb,
         "createdAt" timestamptz, "finishedAt" timestamptz, "parentsLeft" int)
     order by e.o
     returning id`,
    [JSON.stringify(rows)],
  );
  return out.map((r) => String(r.id)).sort((a, b) => Number(a) - Number(b));
}

/** Inserts n jobs of one shape with generate_series; returns nothing (ids are the table's newest). */
async function insertMany(n: number, queueName: string, status: string): Promise<void> {
  await sql.unsafe(
    `insert into ${s}.jobs (task, queue, status, payload, finished_at, attempts, max_attempts, errors)
     select 't', $1, $2::text::${s}.job_status, jsonb_build_object('i', g), case when $2 in ('completed', 'failed', 'cancelled') then now() end,
       1, 1, case when $2 = 'failed' then '[{"attempt":1,"at":"2026-01-01T00:00:00Z","name":"Error","message":"boom"}]'::jsonb else '[]' end
     from generate_series(1, $3::int) g`,
    [queueName, status, n],
  );
}

async function statuses(ids: string[]): Promise<string[]> {
  const rows = await sql.unsafe(`select id::text, status::text from ${s}.jobs where id = any($1::bigint[])`, [ids]);
  const by = new Map(rows.map((r) => [r.id as string, r.status as string]));
  return ids.map((id) => by.get(id) ?? "gone");
}

/** Every row of the schema's tables, to show that nothing changed. */
async function snapshot(): Promise<string> {
  const [r] = await sql.unsafe(`select
    (select coalesce(string_agg(md5(j::text), ',' order by j.id), '') from ${s}.jobs j) as jobs,
    (select count(*) from ${s}.job_logs) as logs, (select count(*) from ${s}.job_deps) as deps`);
  return JSON.stringify(r);
}

const counts = (r: BulkResult) => ({ matched: r.matched, changed: r.changed, skipped: r.skipped, reasons: r.reasons, stopping: r.stopping });
const reasons = (o: Partial<BulkResult["reasons"]> = {}) => ({ key: 0, parent: 0, children: 0, batch: 0, busy: 0, ...o });

describe("filters", () => {
  it("listJobs, retryJobs, cancelJobs and deleteJobs each honour every field of the filter", async () => {
    const q = "f-all";
    const [t0, t1, t2] = ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"];
    // For each field, a job it matches (first) and one it does not; all else equal.
    const cases: { filter: JobFilter; rows: [Partial<Row>, Partial<Row>] }[] = [
      { filter: { status: "cancelled" }, rows: [{ status: "cancelled" }, { status: "failed" }] },
      { filter: { task: "send" }, rows: [{ task: "send" }, { task: "other" }] },
      { filter: { group: "tenant-1" }, rows: [{ group: "tenant-1" }, { group: "tenant-2" }] },
      { filter: { key: "k-1" }, rows: [{ key: "k-1" }, { key: "k-2" }] },
      { filter: { createdFrom: t1 }, rows: [{ createdAt: t1 }, { createdAt: t0 }] },
      { filter: { createdTo: new Date(t1) }, rows: [{ createdAt: t0 }, { createdAt: t1 }] },
      { filter: { finishedFrom: "2026-01-02" }, rows: [{ finishedAt: t2 }, { finishedAt: t0 }] },
      { filter: { finishedTo: "2026-01-02 00:00" }, rows: [{ finishedAt: t0 }, { finishedAt: t1 }] },
      { filter: { payload: { user: { id: 42 } } }, rows: [{ payload: { user: { id: 42, name: "Ann" }, n: 1 } }, { payload: { user: { id: 43 } } }] },
    ];
    for (const [i, c] of cases.entries()) {
      const queueName = `${q}-${i}`;
      const filter = { ...c.filter, queue: queueName };
      const ids = await insert(c.rows.map((r) => ({ queue: queueName, status: "failed", ...r })));
      const label = JSON.stringify(c.filter);
      expect((await queue.listJobs(filter)).jobs.map((j) => j.id), label).toEqual([ids[0]]);
      expect(counts(await queue.retryJobs(filter)), label).toEqual({ matched: 1, changed: 1, skipped: 0, reasons: reasons(), stopping: 0 });
      expect(await statuses(ids), label).toEqual(["queued", c.rows[1].status ?? "failed"]);
      // the retried job is queued now, no longer finished: the same filter cancels it, then deletes it
      if (!c.filter.finishedFrom && !c.filter.finishedTo && c.filter.status === undefined) {
        expect((await queue.cancelJobs(filter)).changed, label).toBe(1);
        expect((await queue.deleteJobs(filter)).changed, label).toBe(1);
        expect(await statuses(ids), label).toEqual(["gone", c.rows[1].status ?? "failed"]);
      }
    }
    // The queue itself: another queue's job is left alone.
    const ids = await insert([{ queue: "f-queue", status: "failed" }, { queue: "f-queue-2", status: "failed" }]);
    expect((await queue.retryJobs({ queue: "f-queue" })).changed).toBe(1);
    expect(await statuses(ids)).toEqual(["queued", "failed"]);
  });

  it("listJobs pages through a filtered list with the cursor, newest first", async () => {
    const ids = await insert(Array.from({ length: 7 }, (_, i) => ({ queue: "f-page", status: i % 2 ? "completed" : "failed", group: "g" })));
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await queue.listJobs({ queue: "f-page", status: "failed", group: "g", limit: 2, ...(cursor ? { cursor } : {}) });
      seen.push(...page.jobs.map((j) => j.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual(ids.filter((_, i) => i % 2 === 0).reverse());
  });

  it("refuses bad filters and options with INVALID_INPUT, naming the field, and changes nothing", async () => {
    await insert([{ queue: "f-bad", status: "failed" }, { queue: "f-bad", status: "completed" }, { queue: "f-bad", status: "queued" }]);
    const before = await snapshot();
    const bad: [() => Promise<unknown>, string][] = [
      [() => queue.retryJobs({ queue: "f-bad", colour: "red" } as JobFilter), "filter.colour"],
      [() => queue.retryJobs({ status: "completed" }), "filter.status"],
      [() => queue.cancelJobs({ status: "failed" }), "filter.status"],
      [() => queue.deleteJobs({ status: "queued" }), "filter.status"],
      [() => queue.retryJobs({ status: "done" as never }), "filter.status"],
      [() => queue.retryJobs({ queue: "" }), "filter.queue"],
      [() => queue.retryJobs({ createdFrom: "yesterday" }), "filter.createdFrom"],
      [() => queue.retryJobs({ createdFrom: "2026-02-30" }), "filter.createdFrom"],
      [() => queue.retryJobs({ createdFrom: new Date("nope") }), "filter.createdFrom"],
      [() => queue.retryJobs({ createdFrom: "2026-01-02", createdTo: "2026-01-01" }), "filter.createdTo"],
      [() => queue.deleteJobs({ finishedFrom: "2026-01-02T00:00:00Z", finishedTo: "2026-01-02T02:00:00+02:00" }), "filter.finishedTo"],
      [() => queue.retryJobs({ payload: { bad: "a\u0000b" } }), "filter.payload"],
      [() => queue.retryJobs({ payload: { when: new Date() } }), "filter.payload"],
      [() => queue.retryJobs({ queue: "f-bad" }, { batchSize: 0 }), "options.batchSize"],
      [() => queue.retryJobs({ queue: "f-bad" }, { batchSize: 10_001 }), "options.batchSize"],
      [() => queue.retryJobs({ queue: "f-bad" }, { tx: sql } as never), "options.tx"],
      [() => queue.retryJobs({ queue: "f-bad" }, { all: true } as never), "options.all"],
      [() => queue.retryJobs(undefined as never), "filter"],
      [() => queue.retryJobs("f-bad" as never), "filter"],
      [() => queue.listJobs({ createdTo: "2026-13-01" }), "createdTo"],
      [() => queue.listJobs({ group: 7 as never }), "group"],
    ];
    for (const [call, path] of bad) {
      const error = await call().then(() => null, (e: unknown) => e);
      expect(error, `${call}`).toBeInstanceOf(PgPulseError);
      expect((error as PgPulseError).code, `${call}`).toBe("INVALID_INPUT");
      expect((error as PgPulseError).details, `${call}`).toContainEqual(expect.objectContaining({ path }));
    }
    const noTx = await queue.retryJobs({}, { tx: sql } as never).catch((e: Error) => e.message);
    expect(noTx).toMatch(/take no tx/);
    expect(await snapshot()).toBe(before);
  });
});

describe("retryJobs", () => {
  it("retries in batches of batchSize, one transaction and one job_enqueued notification per batch, keeping errors", async () => {
    await insertMany(2345, "r-batch", "failed");
    const listener = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    const notes: { queues: string[]; n: number }[] = [];
    await listener.listen("job_enqueued", (payload) => {
      const note = JSON.parse(payload);
      if (note.schema === schema) notes.push(note);
    });
    try {
      const progress: number[] = [];
      const r = await queue.retryJobs({ queue: "r-batch" }, { batchSize: 500, onProgress: (p) => progress.push(p.changed) });
      expect(counts(r)).toEqual({ matched: 2345, changed: 2345, skipped: 0, reasons: reasons(), stopping: 0 });
      expect(r.batches).toBe(5);
      expect(progress).toEqual([500, 1000, 1500, 2000, 2345]);
      await until(() => notes.length >= 5);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(notes.map((n) => [n.queues, n.n])).toEqual([500, 500, 500, 500, 345].map((n) => [["r-batch"], n]));
    } finally {
      await listener.end({ timeout: 1 });
    }
    const [row] = await sql.unsafe(`select count(*)::int as n, min(jsonb_array_length(errors))::int as errors, min(max_attempts)::int as max,
      bool_and(finished_at is null and worker_id is null and run_at <= now()) as fresh from ${s}.jobs where queue = 'r-batch' and status = 'queued'`);
    expect(row).toEqual({ n: 2345, errors: 1, max: 2, fresh: true });
    // nothing left to retry
    expect(counts(await queue.retryJobs({ queue: "r-batch" }))).toMatchObject({ matched: 0, changed: 0 });
  });

  it("skips and counts jobs whose key a live job holds, and all but the first failed job of a key", async () => {
    const ids = await insert([
      { queue: "r-key", status: "failed", key: "held" },
      { queue: "r-key", status: "queued", key: "held" },
      { queue: "r-key", status: "failed", key: "twice" },
      { queue: "r-key", status: "cancelled", key: "twice" },
      { queue: "r-key", status: "failed", key: "free" },
      { queue: "r-key", status: "failed" },
    ]);
    const dry = await queue.retryJobs({ queue: "r-key" }, { dryRun: true });
    const r = await queue.retryJobs({ queue: "r-key" }, { batchSize: 2 });
    expect(counts(r)).toEqual({ matched: 5, changed: 3, skipped: 2, reasons: reasons({ key: 2 }), stopping: 0 });
    expect(counts(dry)).toEqual(counts(r));
    expect(await statuses(ids)).toEqual(["failed", "queued", "queued", "cancelled", "queued", "queued"]);
    // as retry() says for one job
    await expect(queue.retry(ids[0]!)).rejects.toMatchObject({ code: "INVALID_TRANSITION", details: { reason: "key" } });
  });

  it("skips and counts jobs a parent's failure ended; retrying the parent resumes them, as retry() does", async () => {
    const jobs = await queue.enqueueFlow([
      { name: "p", task: "t", queue: "r-flow" },
      { name: "c", task: "t", queue: "r-flow", parents: ["p"] },
    ]);
    const [p, c] = jobs.map((j) => j.id);
    // the parent fails: its end fails the child through the edge ('b')
    await sql.unsafe(`update ${s}.jobs set status = 'failed', finished_at = now() where id = $1`, [p!]);
    expect(await statuses([p!, c!])).toEqual(["failed", "failed"]);
    const child = await queue.retryJobs({ queue: "r-flow", task: "t", createdFrom: new Date(0) , payload: {} }, { dryRun: true });
    expect(counts(child)).toEqual({ matched: 2, changed: 1, skipped: 1, reasons: reasons({ parent: 1 }), stopping: 0 });
    const r = await queue.retryJobs({ queue: "r-flow" });
    expect(counts(r)).toEqual({ matched: 2, changed: 1, skipped: 1, reasons: reasons({ parent: 1 }), stopping: 0 });
    // the parent is queued again, and its child waits for it again
    expect(await statuses([p!, c!])).toEqual(["queued", "pending"]);
  });
});

describe("retryJobs in a flow, as retry() is", () => {
  const set = (id: string, status: string) =>
    sql.unsafe(`update ${s}.jobs set status = $2::text::${s}.job_status, finished_at = now() where id = $1`, [id, status]);

  it("skips a child while its parent stands failed, and makes a child wait again for a parent that runs again", async () => {
    // cancelled by hand, then its parent fails: the edge still waits, and the parent stands failed
    const [p, c] = (await queue.enqueueFlow([
      { name: "p", task: "t", queue: "r-stand" }, { name: "c", task: "t", queue: "r-stand", parents: ["p"] },
    ])).map((j) => j.id) as [string, string];
    await queue.cancel(c);
    await set(p, "failed");
    expect(counts(await queue.retryJobs({ queue: "r-stand", status: "cancelled" }))).toEqual({
      matched: 1, changed: 0, skipped: 1, reasons: reasons({ parent: 1 }), stopping: 0,
    });
    expect(counts(await queue.retryJobs({ queue: "r-stand", status: "cancelled" }, { dryRun: true }))).toMatchObject({ matched: 1, changed: 0, reasons: { parent: 1 } });
    expect(await statuses([p, c])).toEqual(["failed", "cancelled"]);

    // mode run: the child ran after its parent failed and failed itself; the parent runs again, then the child is retried
    const [q, r] = (await queue.enqueueFlow([
      { name: "q", task: "t", queue: "r-rewait" }, { name: "r", task: "t", queue: "r-rewait", parents: [{ name: "q", onFailure: "run" }] },
    ])).map((j) => j.id) as [string, string];
    await set(q, "failed");
    await set(r, "failed");
    await queue.retry(q);
    expect(counts(await queue.retryJobs({ queue: "r-rewait" }))).toMatchObject({ matched: 1, changed: 1 });
    const [row] = await sql.unsafe(`select status::text, parents_left from ${s}.jobs where id = $1`, [r]);
    expect(row).toEqual({ status: "pending", parents_left: 1 });
    await set(q, "completed");
    expect(await statuses([r])).toEqual(["queued"]);
  });
});

describe("cancelJobs", () => {
  it("cancels pending and queued jobs at once and asks running ones to stop, as cancel() does", async () => {
    const started: string[] = [];
    const w = db.worker({
      queues: ["c-run"],
      tasks: {
        long: (_p: unknown, ctx) =>
          new Promise((_resolve, reject) => {
            started.push(ctx.job.id);
            ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
          }),
      },
    });
    await w.start();
    const running = await queue.enqueue("long", {}, { queue: "c-run" });
    await until(() => started.length === 1);
    const later = await queue.enqueue("long", {}, { queue: "c-run", delayMs: 3_600_000 });
    const flow = await queue.enqueueFlow([
      { name: "a", task: "long", queue: "c-run", delayMs: 3_600_000 },
      { name: "b", task: "long", queue: "c-run", parents: ["a"] },
    ]);
    const done = await insert([{ queue: "c-run", status: "completed" }]);
    const cancelled = w.waitFor("job:cancelled", (e) => e.job.id === running.id, deadline());
    const r = await queue.cancelJobs({ queue: "c-run" }, { batchSize: 2 });
    expect(counts(r)).toEqual({ matched: 4, changed: 4, skipped: 0, reasons: reasons(), stopping: 1 });
    expect(r.batches).toBe(2);
    expect(await statuses([later.id, flow[0]!.id, flow[1]!.id, done[0]!])).toEqual(["cancelled", "cancelled", "cancelled", "completed"]);
    await cancelled;
    expect(await queue.getJob(running.id)).toMatchObject({ status: "cancelled", errors: [{ name: "JobCancelledError" }] });
  });
});

describe("deleteJobs", () => {
  it("deletes finished jobs with their log lines and the edges to their parents; keeps a parent whose child waits", async () => {
    const ids = await insert([
      { queue: "d-one", status: "completed" },
      { queue: "d-one", status: "failed" },
      { queue: "d-one", status: "cancelled" },
      { queue: "d-one", status: "queued" },
      { queue: "d-one", status: "running" },
      { queue: "d-one", status: "pending", parentsLeft: 1 },
    ]);
    const flow = await queue.enqueueFlow([
      { name: "p", task: "t", queue: "d-one" },
      { name: "c", task: "t", queue: "d-one", parents: ["p"] },
      { name: "w", task: "t", queue: "d-one", parents: ["p"], delayMs: 3_600_000 },
    ]);
    const [p, c, waiting] = flow.map((j) => j.id) as [string, string, string];
    // p completed; c completed too (its edge from p goes with it); w still waits to run
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where id = $1`, [p]);
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where id = $1`, [c]);
    await sql.unsafe(`insert into ${s}.job_logs (job_id, seq, attempt, at, level, message) select id, 1, 1, now(), 'info', 'hi' from ${s}.jobs where queue = 'd-one'`);
    const dry = await queue.deleteJobs({ queue: "d-one" }, { dryRun: true });
    const r = await queue.deleteJobs({ queue: "d-one" });
    expect(counts(r)).toEqual({ matched: 5, changed: 4, skipped: 1, reasons: reasons({ children: 1 }), stopping: 0 });
    expect(counts(dry)).toEqual(counts(r));
    expect(await statuses([...ids, p, c, waiting])).toEqual(["gone", "gone", "gone", "queued", "running", "pending", "completed", "gone", "queued"]);
    const [left] = await sql.unsafe(`select
      (select count(*)::int from ${s}.job_logs l where not exists (select 1 from ${s}.jobs j where j.id = l.job_id)) as orphan_logs,
      (select count(*)::int from ${s}.job_deps d where d.child_id = $1) as c_edges,
      (select count(*)::int from ${s}.job_deps d where d.child_id = $2) as w_edges`, [c, waiting]);
    expect(left).toEqual({ orphan_logs: 0, c_edges: 0, w_edges: 1 });
  });

  it("keeps a parent while a child has not completed, as prune does, and takes both sides' edges and an emptied batch with the last job", async () => {
    const [p, q, c] = (await queue.enqueueFlow([
      { name: "p", task: "t", queue: "d-flow" }, { name: "q", task: "t", queue: "d-flow" },
      { name: "c", task: "t", queue: "d-flow", parents: ["p", "q"] },
    ])).map((j) => j.id) as [string, string, string];
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where id = $1`, [p]);
    await sql.unsafe(`update ${s}.jobs set status = 'failed', finished_at = now() where id = $1`, [q]);
    // c failed through q: p and q stay while c may still be retried; c itself goes, with its edges
    expect(await statuses([p, q, c])).toEqual(["completed", "failed", "failed"]);
    const first = await queue.deleteJobs({ queue: "d-flow", task: "t" }, { batchSize: 2 });
    expect(counts(first)).toEqual({ matched: 3, changed: 1, skipped: 2, reasons: reasons({ children: 2 }), stopping: 0 });
    expect(await statuses([p, q, c])).toEqual(["completed", "failed", "gone"]);
    expect(counts(await queue.deleteJobs({ queue: "d-flow" }))).toMatchObject({ matched: 2, changed: 2 });
    const [edges] = await sql.unsafe(`select count(*)::int as n from ${s}.job_deps where parent_id = any($1::text::bigint[]) or child_id = any($1::text::bigint[])`, [`{${p},${q},${c}}`]);
    expect(edges!.n).toBe(0);

    const batch = await queue.enqueueBatch([{ task: "t", queue: "d-batch" }, { task: "t", queue: "d-batch" }]);
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where batch_id = $1`, [batch.id]);
    await queue.deleteJobs({ queue: "d-batch" }, { batchSize: 1 });
    expect(await queue.getBatch(batch.id)).toBeNull();
  });

  it("refuses a filter that names no job with EMPTY_FILTER, changing nothing, unless all: true", async () => {
    await insert([{ queue: "d-all", status: "completed" }, { queue: "d-all", status: "failed" }, { queue: "d-all", status: "queued" }]);
    const before = await snapshot();
    for (const filter of [{}, { payload: {} }, { payload: [] }] as JobFilter[]) {
      const error = await queue.deleteJobs(filter).then(() => null, (e: unknown) => e as PgPulseError);
      expect(error).toBeInstanceOf(PgPulseError);
      expect(error).toMatchObject({ code: "EMPTY_FILTER", details: [{ path: "filter" }] });
      expect(error!.message).toMatch(/all: true/);
      await expect(queue.deleteJobs(filter, { all: false })).rejects.toMatchObject({ code: "EMPTY_FILTER" });
    }
    expect(await snapshot()).toBe(before);
    const [{ live }] = (await sql.unsafe(`select count(*)::int as live from ${s}.jobs where status::text <> all($1::text[])`, [ENDED])) as unknown as [{ live: number }];
    const r = await queue.deleteJobs({}, { all: true });
    expect(r.changed).toBeGreaterThanOrEqual(2);
    const [{ n }] = (await sql.unsafe(`select count(*)::int as n from ${s}.jobs`)) as unknown as [{ n: number }];
    // every finished job went but one that a waiting child still reads (the earlier test's p)
    expect(n).toBe(live + r.reasons.children);
  });
});

describe("busy rows", () => {
  it("comes back to rows another transaction held; rows held throughout are counted busy and left as they were", async () => {
    const ids = await insert([0, 1, 2, 3].map(() => ({ queue: "b-held", status: "failed" })));
    // One row held only until the first pass is over: the operation comes back to it.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holder = sql.begin(async (tx) => {
      await tx.unsafe(`select 1 from ${s}.jobs where id = $1 for update`, [ids[1]!]);
      locked();
      await released;
    });
    await isLocked;
    const r = await queue.retryJobs({ queue: "b-held" }, { batchSize: 2, onProgress: () => release() });
    await holder;
    expect(counts(r)).toEqual({ matched: 4, changed: 4, skipped: 0, reasons: reasons(), stopping: 0 });
    // two in id order, then at least one return to the held row
    expect(r.batches).toBeGreaterThanOrEqual(3);

    // One row held for the whole operation: counted busy, unchanged.
    const more = await insert([0, 1, 2].map(() => ({ queue: "b-busy", status: "failed" })));
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    let held!: () => void;
    const isHeld = new Promise<void>((resolve) => (held = resolve));
    const blocker = sql.begin(async (tx) => {
      await tx.unsafe(`select 1 from ${s}.jobs where id = $1 for update`, [more[2]!]);
      held();
      await ended;
    });
    await isHeld;
    const started = Date.now();
    const busy = await queue.retryJobs({ queue: "b-busy" });
    end();
    await blocker;
    expect(counts(busy)).toEqual({ matched: 3, changed: 2, skipped: 1, reasons: reasons({ busy: 1 }), stopping: 0 });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await statuses(more)).toEqual(["queued", "queued", "failed"]);
  });

  it("holds each batch's locks only as long as its transaction: a worker and a writer go on meanwhile", async () => {
    await insertMany(20_000, "b-big", "failed");
    const [{ min, max }] = (await sql.unsafe(`select min(id)::int8 as min, max(id)::int8 as max from ${s}.jobs where queue = 'b-big'`)) as unknown as [{ min: string; max: string }];
    const worker = db.worker({ queues: ["b-side"], tasks: { side: async () => "ok" }, concurrency: 2 });
    await worker.start();
    const probe = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    let stop = false;
    const waits: number[] = [];
    const latencies: number[] = [];
    // A writer touching rows of the set now and then, and jobs of another queue run by the worker.
    const writer = (async () => {
      while (!stop) {
        const id = Number(min) + Math.floor(Math.random() * (Number(max) - Number(min)));
        const t = performance.now();
        await probe.unsafe(`update ${s}.jobs set priority = priority where id = $1`, [id]);
        waits.push(performance.now() - t);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const side = (async () => {
      for (let n = 0; !stop; n++) {
        const t = performance.now();
        // waited for before the enqueue: the job can end before the enqueue call returns
        const done = worker.waitFor("job:completed", (e) => e.job.queue === "b-side" && (e.job.payload as { n: number }).n === n, deadline());
        await queue.enqueue("side", { n }, { queue: "b-side" });
        await done;
        latencies.push(performance.now() - t);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    await until(() => waits.length > 0 && latencies.length > 0);
    const stamps: number[] = [];
    const sideBefore = latencies.length;
    const t0 = performance.now();
    const r = await queue.retryJobs({ queue: "b-big" }, { batchSize: 500, onProgress: () => stamps.push(performance.now()) });
    const total = performance.now() - t0;
    const sideDuring = latencies.length - sideBefore;
    stop = true;
    await Promise.all([writer, side]);
    await probe.end({ timeout: 1 });
    expect(r.changed + r.reasons.busy).toBe(20_000);
    expect(r.matched).toBe(20_000);
    expect(r.batches).toBeGreaterThanOrEqual(40);
    const batchMs = stamps.map((t, i) => t - (i === 0 ? t0 : stamps[i - 1]!));
    const longestBatch = Math.max(...batchMs);
    const longestWait = Math.max(...waits);
    // A writer waits for one batch at most, not for the operation; the worker ran jobs throughout.
    expect(longestWait, `longest wait ${longestWait.toFixed(0)} ms, batches up to ${longestBatch.toFixed(0)} ms, ${total.toFixed(0)} ms in all`).toBeLessThan(total / 4);
    expect(longestBatch).toBeLessThan(total / 4);
    expect(sideDuring).toBeGreaterThan(1);
    expect(Math.max(...latencies)).toBeLessThan(total / 2);
  });
});
