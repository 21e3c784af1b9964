import { describe, expect, it } from "vitest";
import { JobSnooze, PgPulseError, type Worker } from "../src/index.ts";
import { deadline, gate, testDb, until } from "./support/db.ts";
import { heldAhead } from "./support/held-ahead.ts";

const db = await testDb(import.meta.url);
const scenarios = heldAhead(db, {}, true);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

/** Resolves when `count` jobs have completed across the workers. */
function completions(workers: Worker[], count: number): Promise<void> {
  let done = 0;
  return new Promise((resolve) => {
    for (const w of workers) w.on("job:completed", () => ++done === count && resolve());
  });
}

async function runningIn(queueName: string, group?: string): Promise<number> {
  const [r] = await sql.unsafe(
    `select count(*)::int as n from ${s}.jobs where queue = $1 and status = 'running' and ($2::text is null or group_key = $2)`,
    [queueName, group ?? null],
  );
  return r!.n;
}

/** A handler that records how many jobs of its queue (and group) the database shows running. */
function recordingHandler(queueName: string, seen: { max: number; byGroup: Map<string, number> }) {
  return async (payload: { group?: string; ms?: number }) => {
    seen.max = Math.max(seen.max, await runningIn(queueName));
    if (payload.group) {
      const n = await runningIn(queueName, payload.group);
      seen.byGroup.set(payload.group, Math.max(seen.byGroup.get(payload.group) ?? 0, n));
    }
    await new Promise((r) => setTimeout(r, payload.ms ?? 20)); // the job's own work
    return null;
  };
}

describe("pause and resume", () => {
  it("a paused queue starts nothing new, lets running jobs finish, and resumes", async () => {
    const started = gate();
    const finish = gate();
    const w = db.worker({ queues: ["pausable"], tasks: { hold: async () => (started.open(), await finish.promise, "done"), quick: async () => "quick" } });
    await w.start();
    const running = await queue.enqueue("hold", {}, { queue: "pausable" });
    await started.promise;
    expect(await queue.pauseQueue("pausable")).toMatchObject({ queue: "pausable", paused: true });
    const waiting = await queue.enqueue("quick", {}, { queue: "pausable" });
    expect(await w.sweep()).toBe(0);
    const finished = w.waitFor("job:completed", (e) => e.job.id === running.id, deadline());
    finish.open();
    await finished;
    expect(await w.sweep()).toBe(0);
    expect((await queue.getJob(waiting.id))!.status).toBe("queued");
    const resumed = w.waitFor("job:completed", (e) => e.job.id === waiting.id, deadline());
    expect((await queue.resumeQueue("pausable")).paused).toBe(false);
    await resumed; // the resume notification wakes the worker: no sweep needed
  });
});

describe("a queue paused or limited while a worker holds jobs of it claimed ahead", () => {
  it("workers are told of a pause or a tighter limit, not of a resume or a looser limit", async () => {
    const heard: string[] = [];
    const listener = await sql.listen("pgpulse_control", (text) => {
      const msg = JSON.parse(text) as { type?: string; queue?: string; marker?: string };
      if (msg.marker) heard.push(msg.marker);
      else if (msg.type === "queue" && msg.queue === "told") heard.push("told");
    });
    /** What the change sent, up to a marker sent after it (notifications come in commit order). */
    const told = async (change: () => Promise<unknown>) => {
      heard.length = 0;
      await change();
      const marker = crypto.randomUUID();
      await sql`select pg_notify('pgpulse_control', ${JSON.stringify({ marker })})`;
      await until(() => heard.includes(marker));
      return heard.filter((m) => m === "told").length;
    };
    try {
      expect(await told(() => queue.configureQueue("told", { concurrency: 5 }))).toBe(1);
      expect(await told(() => queue.configureQueue("told", { concurrency: 10 }))).toBe(0);
      expect(await told(() => queue.configureQueue("told", { concurrency: 3 }))).toBe(1);
      expect(await told(() => queue.configureQueue("told", { concurrency: null }))).toBe(0);
      expect(await told(() => queue.pauseQueue("told"))).toBe(1);
      expect(await told(() => queue.pauseQueue("told"))).toBe(0);
      expect(await told(() => queue.resumeQueue("told"))).toBe(0);
      expect(await told(() => queue.configureQueue("told", { rateLimit: { max: 10, intervalMs: 1000 } }))).toBe(1);
      expect(await told(() => queue.configureQueue("told", { rateLimit: { max: 20, intervalMs: 1000 } }))).toBe(0);
      expect(await told(() => queue.configureQueue("told", { rateLimit: { max: 20, intervalMs: 2000 } }))).toBe(1);
      expect(await told(() => queue.configureQueue("told", { groupConcurrency: 2 }))).toBe(1);
    } finally {
      await listener.unlisten();
    }
  });

  // Only jobs started in the moments before the worker heard of the change (it hears by
  // notification): far fewer than it held. Before, it ran all it held (250 jobs, over 2.6 s).
  it("pausing gives them back unstarted, attempts not counted", () => scenarios.pause("pz"));
  it("a concurrency limit set applies to them: the worker gives them back, and from then on no more than the limit run", () =>
    scenarios.limit("later-lim"));
});

describe("earlier queues first, when the earlier one has a limit", () => {
  it("its job is not starved by a later queue's backlog that the worker claims ahead of its slots", async () => {
    await queue.configureQueue("hi-lim", { concurrency: 5 });
    const w = db.worker({ queues: ["hi-lim", "lo-free"], concurrency: 2, tasks: { lo: async () => null, hi: async () => "hi" } });
    let lo = 0;
    w.on("job:completed", (e) => void (e.job.task === "lo" && lo++));
    const warm = new Promise<void>((resolve) => w.on("job:completed", () => lo === 500 && resolve()));
    await queue.enqueueMany(Array.from({ length: 20_000 }, () => ({ task: "lo", queue: "lo-free" })));
    await w.start();
    try {
      await warm; // short jobs backed up: the worker claims ahead of its slots
      const before = lo;
      const hi = await queue.enqueue("hi", {}, { queue: "hi-lim" });
      await w.waitFor("job:completed", (e) => e.job.id === hi.id, deadline(60_000));
      // The jobs the worker held when it heard of it, and those of the claim then out (two buffers
      // of at most 500 jobs each; 750 to 1,020 in six runs): a small part of what was left. Before,
      // the whole backlog (19,225 jobs) ran first.
      expect(lo - before).toBeLessThan((20_000 - before) / 4);
      expect(await sql.unsafe(`select 1 from ${s}.jobs where queue = 'lo-free' and status = 'queued' limit 1`)).toHaveLength(1);
    } finally {
      await w.stop();
    }
  });
});

describe("a rate limit's next start wakes the worker", () => {
  it("after a claim that took the window's last starts, not only after one that found it full", async () => {
    await queue.configureQueue("rl-wake", { rateLimit: { max: 2, intervalMs: 300 } });
    // The sweep is an hour away and nothing more is enqueued: only the limit's wake-ups start the later jobs.
    const w = db.worker({ queues: ["rl-wake"], concurrency: 8, pollIntervalMs: 3_600_000, tasks: { work: async () => null } });
    const claims: { got: number; at: number }[] = [];
    w.on("worker:claimed", (e) => void (e.jobs.length > 0 && claims.push({ got: e.jobs.length, at: Date.now() })));
    const all = completions([w], 6);
    await queue.enqueueMany(Array.from({ length: 6 }, () => ({ task: "work", queue: "rl-wake" })));
    await w.start();
    try {
      await all; // (before, the later four waited for the sweep: an hour)
      expect(claims.map((c) => c.got)).toEqual([2, 2, 2]);
    } finally {
      await w.stop();
    }
  });

  it("runAvailable does not wait on a rate limit once its queue has nothing left", async () => {
    // (the window is ten minutes and the deadline two: waiting on the window would outlast the test)
    await queue.configureQueue("ra-drained", { rateLimit: { max: 2, intervalMs: 600_000 } });
    await queue.enqueueMany(Array.from({ length: 2 }, () => ({ task: "t", queue: "ra-drained" })));
    const w = db.worker({ queues: ["ra-drained"], concurrency: 4, tasks: { t: async () => null } });
    expect(await w.runAvailable({ deadlineMs: 120_000 })).toMatchObject({ claimed: 2, completed: 2 });
  });

  it("runAvailable waits for the limit's next start before its deadline, rather than end with jobs left", async () => {
    await queue.configureQueue("ra-rated", { rateLimit: { max: 2, intervalMs: 200 } });
    await queue.enqueueMany(Array.from({ length: 6 }, () => ({ task: "t", queue: "ra-rated" })));
    const w = db.worker({ queues: ["ra-rated"], concurrency: 4, tasks: { t: async () => null } });
    const summary = await w.runAvailable({ deadlineMs: 30_000 });
    expect(summary).toMatchObject({ claimed: 6, completed: 6 });
    expect(await runningIn("ra-rated")).toBe(0);
  });
});

describe("global limits, enforced in the claim across workers", () => {
  it("never runs more than the queue's concurrency, however many workers claim", async () => {
    await queue.configureQueue("capped", { concurrency: 3 });
    const seen = { max: 0, byGroup: new Map<string, number>() };
    const workers = [1, 2, 3].map(() => db.worker({ queues: ["capped"], concurrency: 5, tasks: { work: recordingHandler("capped", seen) } }));
    const all = completions(workers, 40);
    await Promise.all(workers.map((w) => w.start()));
    await queue.enqueueMany(Array.from({ length: 40 }, () => ({ task: "work", queue: "capped", payload: { ms: 15 } })));
    await all;
    expect(seen.max).toBeGreaterThan(1);
    expect(seen.max).toBeLessThanOrEqual(3);
  });

  it("keeps each group within its concurrency while other groups run", async () => {
    await queue.configureQueue("tenants", { groupConcurrency: 1 });
    const seen = { max: 0, byGroup: new Map<string, number>() };
    const workers = [1, 2].map(() => db.worker({ queues: ["tenants"], concurrency: 4, tasks: { work: recordingHandler("tenants", seen) } }));
    const all = completions(workers, 24);
    // the noisy tenant enqueues first; the others must not wait behind it
    await queue.enqueueMany([
      ...Array.from({ length: 16 }, () => ({ task: "work", queue: "tenants", group: "noisy", payload: { group: "noisy", ms: 20 } })),
      ...Array.from({ length: 4 }, () => ({ task: "work", queue: "tenants", group: "a", payload: { group: "a", ms: 20 } })),
      ...Array.from({ length: 4 }, () => ({ task: "work", queue: "tenants", group: "b", payload: { group: "b", ms: 20 } })),
    ]);
    await Promise.all(workers.map((w) => w.start()));
    await all;
    expect([...seen.byGroup.values()].every((n) => n === 1)).toBe(true);
    expect(seen.max).toBeGreaterThan(1); // groups ran side by side
  });

  it("starts at most max jobs in any interval, across workers", async () => {
    await queue.configureQueue("rated", { rateLimit: { max: 4, intervalMs: 400 } });
    const workers = [1, 2].map(() => db.worker({ queues: ["rated"], concurrency: 8, tasks: { work: async () => null } }));
    const all = completions(workers, 16);
    await queue.enqueueMany(Array.from({ length: 16 }, () => ({ task: "work", queue: "rated" })));
    await Promise.all(workers.map((w) => w.start()));
    await all;
    const starts = (await sql.unsafe(`select started_at from ${s}.jobs where queue = 'rated' order by started_at`)).map(
      (r) => (r.started_at as Date).getTime(),
    );
    expect(starts).toHaveLength(16);
    // sliding window: the (i+4)-th start comes at least one interval after the i-th
    for (let i = 0; i + 4 < starts.length; i++) expect(starts[i + 4]! - starts[i]!).toBeGreaterThanOrEqual(400);
  });

  it("a limit can be lifted, and bad limits are refused", async () => {
    expect(await queue.configureQueue("cfg", { concurrency: 2, rateLimit: { max: 1, intervalMs: 1000 } })).toMatchObject({
      concurrency: 2, rateLimit: { max: 1, intervalMs: 1000 }, groupConcurrency: null, paused: false,
    });
    expect(await queue.configureQueue("cfg", { rateLimit: null })).toMatchObject({ concurrency: 2, rateLimit: null });
    expect(await queue.getQueueConfig("never-configured")).toMatchObject({ paused: false, concurrency: null });
    for (const bad of [{ concurrency: 0 }, { concurrency: 1.5 }, { rateLimit: { max: 1 } }, { speed: 3 }]) {
      await expect(queue.configureQueue("cfg", bad as never), JSON.stringify(bad)).rejects.toMatchObject({ code: "INVALID_INPUT" });
    }
    await expect(queue.pauseQueue("")).rejects.toMatchObject({ code: "INVALID_INPUT" });
  });
});

describe("snooze", () => {
  it("runs the job again later without spending an attempt", async () => {
    let runs = 0;
    const w = db.worker({
      queues: ["snooze"],
      tasks: {
        poll: async () => {
          if (++runs < 3) throw new JobSnooze(30);
          return "ready";
        },
      },
    });
    const snoozes: number[] = [];
    w.on("job:snoozed", (e) => snoozes.push(e.delayMs));
    await w.start();
    const job = await queue.enqueue("poll", {}, { queue: "snooze", maxAttempts: 1 });
    await w.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
    expect(snoozes).toEqual([30, 30]);
    expect(await queue.getJob(job.id)).toMatchObject({ status: "completed", attempts: 1, errors: [], result: "ready" });
    expect(() => new JobSnooze(-1)).toThrow(PgPulseError);
  });
});

describe("retention", () => {
  it("prune deletes finished jobs past retention in batches and keeps the rest", async () => {
    const jobs = await queue.enqueueMany(Array.from({ length: 1500 }, () => ({ task: "old", queue: "retain" })));
    const fresh = await queue.enqueue("fresh", {}, { queue: "retain" });
    const failed = await queue.enqueue("failed", {}, { queue: "retain" });
    const waiting = await queue.enqueue("waiting", {}, { queue: "retain" });
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '2 days' where id = any($1::text::bigint[])`, [
      `{${jobs.map((j) => j.id).join(",")}}`,
    ]);
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where id = $1`, [fresh.id]);
    await sql.unsafe(`update ${s}.jobs set status = 'failed', finished_at = now() - interval '2 days' where id = $1`, [failed.id]);
    expect(await queue.prune()).toBe(1500);
    expect(await queue.getJob(fresh.id)).not.toBeNull();
    expect(await queue.getJob(failed.id)).not.toBeNull(); // failed jobs are kept 14 days
    expect(await queue.getJob(waiting.id)).not.toBeNull();
    expect(await queue.prune({ failedMs: 86_400_000 })).toBe(1);
    await expect(queue.prune({ completedMs: -1 })).rejects.toMatchObject({ code: "INVALID_INPUT" });
  });

  it("workers prune on their maintenance loop", async () => {
    const w = db.worker({ queues: ["retain2"], pruneIntervalMs: 20, retention: { completedMs: 0 }, tasks: { t: async () => 1 } });
    const pruned = w.waitFor("jobs:pruned", () => true, deadline());
    await w.start();
    const job = await queue.enqueue("t", {}, { queue: "retain2" });
    await pruned;
    await until(async () => (await queue.getJob(job.id)) === null);
  });
});

describe("dedupe modes", () => {
  it("throttle: a second enqueue inside the window returns the first job, whatever its state", async () => {
    const first = await queue.enqueue("t", { n: 1 }, { key: "thr", throttleMs: 60_000 });
    await queue.cancel(first.id);
    const second = await queue.enqueue("t", { n: 2 }, { key: "thr", throttleMs: 60_000 });
    expect(second).toMatchObject({ id: first.id, deduplicated: true, status: "cancelled", payload: { n: 1 } });
    await sql.unsafe(`update ${s}.jobs set created_at = now() - interval '2 minutes' where id = $1`, [first.id]);
    const third = await queue.enqueue("t", { n: 3 }, { key: "thr", throttleMs: 60_000 });
    expect(third).toMatchObject({ deduplicated: false, payload: { n: 3 } });
    expect(third.id).not.toBe(first.id);
  });

  it("debounce: a queued job takes the new payload and its run time moves back", async () => {
    const first = await queue.enqueue("t", { n: 1 }, { key: "deb", debounceMs: 5000 });
    expect(first.runAt.getTime() - first.createdAt.getTime()).toBe(5000);
    const second = await queue.enqueue("t", { n: 2 }, { key: "deb", debounceMs: 5000 });
    expect(second).toMatchObject({ id: first.id, deduplicated: true, payload: { n: 2 }, status: "queued" });
    expect(second.runAt.getTime()).toBeGreaterThanOrEqual(first.runAt.getTime());
    // while it runs, further enqueues return it unchanged
    await sql.unsafe(`update ${s}.jobs set status = 'running', worker_id = 'x', attempts = 1 where id = $1`, [first.id]);
    const third = await queue.enqueue("t", { n: 3 }, { key: "deb", debounceMs: 5000 });
    expect(third).toMatchObject({ id: first.id, deduplicated: true, payload: { n: 2 }, status: "running" });
    await sql.unsafe(`update ${s}.jobs set status = 'completed', worker_id = null where id = $1`, [first.id]);
    // in one batch, the later spec wins
    const batch = await queue.enqueueMany([
      { task: "t", payload: { n: 4 }, key: "deb2", debounceMs: 1000 },
      { task: "t", payload: { n: 5 }, key: "deb2", debounceMs: 1000 },
    ]);
    expect(batch[1]!.id).toBe(batch[0]!.id);
    expect((await queue.getJob(batch[0]!.id))!.payload).toEqual({ n: 5 });
  });

  it("debounce: the queued job also takes the queue, group and meta given, and keeps those not given", async () => {
    const first = await queue.enqueue("t", { n: 1 }, { key: "deb-opts", debounceMs: 60_000, queue: "deb-a", group: "tenant-a", meta: { trace: "1" } });
    const second = await queue.enqueue("t", { n: 2 }, { key: "deb-opts", debounceMs: 60_000, queue: "deb-b", group: "tenant-b", meta: { trace: "2" } });
    const [row] = await sql.unsafe(`select queue, group_key, meta, payload from ${s}.jobs where id = $1`, [first.id]);
    expect({ same: second.id === first.id, ...row }).toEqual({ same: true, queue: "deb-b", group_key: "tenant-b", meta: { trace: "2" }, payload: { n: 2 } });
    expect(second).toMatchObject({ queue: "deb-b", meta: { trace: "2" } });
    await queue.enqueue("t", { n: 3 }, { key: "deb-opts", debounceMs: 60_000 });
    const [kept] = await sql.unsafe(`select queue, group_key, meta, payload from ${s}.jobs where id = $1`, [first.id]);
    expect(kept).toEqual({ queue: "deb-b", group_key: "tenant-b", meta: { trace: "2" }, payload: { n: 3 } });
  });

  it("keys within one call go in input order: a plain keyed spec before a throttled one with its key makes the job", async () => {
    const [first, second, other] = await queue.enqueueMany([
      { task: "t", payload: { n: 1 }, key: "mix-thr" },
      { task: "t", payload: { n: 2 }, key: "mix-thr", throttleMs: 60_000 },
      { task: "t", payload: { n: 3 }, key: "mix-other" },
    ]);
    expect([first!.deduplicated, second!.deduplicated, second!.id === first!.id, other!.deduplicated]).toEqual([false, true, true, false]);
    expect((await queue.getJob(first!.id))!.payload).toEqual({ n: 1 });
    // and a debounced spec after a plain one with its key: the debounce takes the job the plain spec made
    const [plain, debounced] = await queue.enqueueMany([
      { task: "t", payload: { n: 1 }, key: "mix-deb" },
      { task: "t", payload: { n: 2 }, key: "mix-deb", debounceMs: 60_000 },
    ]);
    expect([plain!.deduplicated, debounced!.deduplicated, debounced!.id === plain!.id]).toEqual([false, true, true]);
    expect((await queue.getJob(plain!.id))!.payload).toEqual({ n: 2 });
  });

  it("refuses dedupe options that do not fit together", async () => {
    for (const bad of [{ throttleMs: 10 }, { key: "k", throttleMs: 10, debounceMs: 10 }, { key: "k", debounceMs: 10, delayMs: 5 }]) {
      await expect(queue.enqueue("t", {}, bad), JSON.stringify(bad)).rejects.toMatchObject({ code: "INVALID_INPUT" });
    }
  });
});

describe("recurring jobs", () => {
  it("enqueues exactly one job per tick however many workers run", async () => {
    await queue.addSchedule({ name: "every-second", cron: "* * * * * *", task: "tick", payload: { from: "cron" }, queue: "cron" });
    const ticks: Date[] = [];
    const workers = [1, 2, 3].map(() => db.worker({ queues: ["cron"], scheduleIntervalMs: 25, tasks: { tick: async () => null } }));
    for (const w of workers) w.on("schedule:enqueued", (e) => e.name === "every-second" && ticks.push(...e.ticks));
    const done = completions(workers, 3);
    await Promise.all(workers.map((w) => w.start()));
    await done;
    await queue.removeSchedule("every-second");
    const rows = await sql.unsafe(`select key, run_at from ${s}.jobs where queue = 'cron' order by run_at`);
    expect(rows.length).toBe(ticks.length);
    expect(new Set(rows.map((r) => r.key)).size).toBe(rows.length);
    const seconds = rows.map((r) => (r.run_at as Date).getTime());
    for (let i = 1; i < seconds.length; i++) expect(seconds[i]! - seconds[i - 1]!).toBe(1000);
    expect(rows[0]!.key).toMatch(/^schedule:every-second:/);
  });

  it("after downtime runs at most catchUp of the missed ticks, then carries on", async () => {
    const w = db.worker({ queues: ["none"], scheduleIntervalMs: 60_000, tasks: { t: async () => null } });
    await w.start();
    for (const [name, catchUp] of [["hourly-1", 1], ["hourly-3", 3]] as const) {
      await queue.addSchedule({ name, cron: "0 * * * *", task: "report", queue: "catchup", catchUp });
      // as if nobody had looked for ten hours
      await sql.unsafe(`update ${s}.schedules set next_tick = date_trunc('hour', now()) - interval '9 hours' where name = $1`, [name]);
    }
    await w.runSchedules();
    const counts = await sql.unsafe(`select key, count(*)::int as n from ${s}.jobs where queue = 'catchup' group by key order by key`);
    expect(counts.filter((c) => c.key.startsWith("schedule:hourly-1:"))).toHaveLength(1);
    expect(counts.filter((c) => c.key.startsWith("schedule:hourly-3:"))).toHaveLength(3);
    const schedules = await queue.listSchedules();
    for (const sch of schedules.filter((x) => x.name.startsWith("hourly"))) expect(sch.nextTick!.getTime()).toBeGreaterThan(Date.now());
    await w.runSchedules(); // nothing more is due
    const [again] = await sql.unsafe(`select count(*)::int as n from ${s}.jobs where queue = 'catchup'`);
    expect(again!.n).toBe(4);
  });

  it("declared on a worker, validated, listed and removed", async () => {
    const w = db.worker({
      queues: ["none"],
      schedules: [{ name: "nightly", cron: "0 3 * * *", timezone: "Europe/Oslo", task: "cleanup", payload: { deep: true } }],
      tasks: { cleanup: async () => null },
    });
    await w.start();
    const [nightly] = (await queue.listSchedules()).filter((x) => x.name === "nightly");
    expect(nightly).toMatchObject({ cron: "0 3 * * *", timezone: "Europe/Oslo", task: "cleanup", payload: { deep: true }, catchUp: 1 });
    expect(await queue.removeSchedule("nightly")).toBe(true);
    expect(await queue.removeSchedule("nightly")).toBe(false);
    await expect(queue.addSchedule({ name: "bad", cron: "every day", task: "t" })).rejects.toMatchObject({ code: "INVALID_INPUT" });
    await expect(queue.addSchedule({ name: "bad", cron: "* * * * *", task: "t", catchUp: 0 })).rejects.toMatchObject({ code: "INVALID_INPUT" });
  });
});
