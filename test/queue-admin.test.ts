/**
 * The library side of operating queues: listQueues with each queue's
 * configuration, getSchedule and triggerSchedule, and the per-minute figures
 * (migration 7): what workers count, the once-a-minute sample, and the read.
 */
import { describe, expect, it } from "vitest";
import { PermanentError, PgPulseError } from "../src/index.ts";
import { deadline, testDb, until } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

const jobCount = async () => (await sql.unsafe(`select count(*)::int as n from ${s}.jobs`))[0]!.n as number;

describe("listQueues", () => {
  it("gives each queue's configuration, and lists a configured queue that has no jobs", async () => {
    await queue.enqueue("t", {}, { queue: "adm-plain", delayMs: 600_000 });
    await queue.enqueue("t", {}, { queue: "adm-limited", delayMs: 600_000 });
    await queue.configureQueue("adm-limited", { concurrency: 3, rateLimit: { max: 10, intervalMs: 1000 } });
    await queue.pauseQueue("adm-empty");
    const all = await queue.listQueues();
    expect(all.find((q) => q.queue === "adm-plain")).toMatchObject({
      scheduled: 1, paused: false, concurrency: null, groupConcurrency: null, rateLimit: null,
    });
    expect(all.find((q) => q.queue === "adm-limited")).toMatchObject({
      scheduled: 1, paused: false, concurrency: 3, groupConcurrency: null, rateLimit: { max: 10, intervalMs: 1000 },
    });
    expect(all.find((q) => q.queue === "adm-empty")).toEqual({
      queue: "adm-empty", pending: 0, waiting: 0, scheduled: 0, running: 0, completed: 0, failed: 0, cancelled: 0,
      oldestWaitingMs: null, finishedLastMinute: 0, paused: true, concurrency: null, groupConcurrency: null, rateLimit: null,
    });
    const names = all.map((q) => q.queue);
    expect(names).toEqual([...names].sort());
  });
});

describe("listQueueStates", () => {
  it("gives the live counts and configuration from the queued and running jobs only", async () => {
    await queue.enqueueMany([
      { task: "t", queue: "adm-live-a", runAt: new Date(Date.now() - 5000) },
      { task: "t", queue: "adm-live-a" },
      { task: "t", queue: "adm-live-a", delayMs: 600_000 },
    ]);
    const [finished] = await queue.enqueueMany([{ task: "t", queue: "adm-live-done" }]);
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where id = $1`, [finished!.id]);
    const [running] = await queue.enqueueMany([{ task: "t", queue: "adm-live-run" }]);
    await sql.unsafe(`update ${s}.jobs set status = 'running', started_at = now(), worker_id = 'w-none', attempts = 1 where id = $1`, [running!.id]);
    await queue.configureQueue("adm-live-conf", { groupConcurrency: 2 });
    const states = await queue.listQueueStates();
    const a = states.find((q) => q.queue === "adm-live-a")!;
    expect(a).toMatchObject({ waiting: 2, scheduled: 1, running: 0, paused: false, concurrency: null, rateLimit: null });
    expect(a.oldestWaitingMs).toBeGreaterThanOrEqual(4000);
    expect(states.find((q) => q.queue === "adm-live-run")).toMatchObject({ waiting: 0, scheduled: 0, running: 1, oldestWaitingMs: null });
    expect(states.find((q) => q.queue === "adm-live-conf")).toMatchObject({ waiting: 0, running: 0, groupConcurrency: 2 });
    expect(states.find((q) => q.queue === "adm-live-done")).toBeUndefined();
    await sql.unsafe(`update ${s}.jobs set status = 'cancelled', finished_at = now(), worker_id = null where id = $1`, [running!.id]);
  });
});

describe("triggerSchedule", () => {
  it("enqueues the schedule's job now, once, as a tick makes it, leaving the next tick where it was", async () => {
    const added = await queue.addSchedule({
      name: "adm-report", cron: "0 3 * * *", task: "report", payload: { kind: "daily" }, queue: "adm-cron", priority: 5, maxAttempts: 2, timeoutMs: 9000,
    });
    expect(await queue.getSchedule("adm-report")).toEqual(added);
    const before = Date.now();
    const job = await queue.triggerSchedule("adm-report");
    expect(job).toMatchObject({
      task: "report", payload: { kind: "daily" }, queue: "adm-cron", priority: 5, maxAttempts: 2, timeoutMs: 9000, status: "queued", deduplicated: false,
    });
    expect(job.key).toMatch(/^schedule:adm-report:manual:\d{4}-\d\d-\d\dT/);
    // built from the schedule's spec and the database's id and clock: the row as stored
    expect({ ...job, deduplicated: undefined }).toEqual(await queue.getJob(job.id));
    expect(Math.abs(job.runAt.getTime() - before)).toBeLessThan(5000);
    expect(await queue.getSchedule("adm-report")).toEqual(added); // next and last tick unchanged
    const again = await queue.triggerSchedule("adm-report");
    expect(again.id).not.toBe(job.id);
  });

  it("returns the live job instead of a new one for a key it has seen, and refuses what it cannot do without writing", async () => {
    await queue.addSchedule({ name: "adm-keyed", cron: "*/5 * * * *", task: "sync" });
    const first = await queue.triggerSchedule("adm-keyed", { key: "sync-now-1" });
    const second = await queue.triggerSchedule("adm-keyed", { key: "sync-now-1" });
    expect(second).toMatchObject({ id: first.id, deduplicated: true, key: "sync-now-1" });
    const before = await jobCount();
    await expect(queue.triggerSchedule("adm-missing")).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(queue.triggerSchedule("")).rejects.toMatchObject({ code: "INVALID_INPUT" });
    await expect(queue.triggerSchedule("adm-keyed", { key: "" })).rejects.toMatchObject({ code: "INVALID_INPUT", details: [{ path: "key" }] });
    await expect(queue.triggerSchedule("adm-keyed", { key: "a\u0000b" })).rejects.toBeInstanceOf(PgPulseError);
    await expect(queue.triggerSchedule("adm-keyed", { bogus: 1 } as never)).rejects.toMatchObject({ code: "INVALID_INPUT" });
    expect(await jobCount()).toBe(before);
    expect(await queue.getSchedule("adm-missing")).toBeNull();
  });
});

describe("per-minute figures", () => {
  it("counts what a worker ended and started, with the wait from run time to start", async () => {
    const worker = db.worker({
      queues: ["adm-stats"],
      backoff: { baseMs: 600_000 },
      tasks: {
        ok: async () => "done",
        bad: async () => {
          throw new PermanentError("no");
        },
        flaky: async () => {
          throw new Error("again later");
        },
      },
    });
    // run times in the past: each start waited at least this long
    const runAt = new Date(Date.now() - 3000);
    await queue.enqueueMany([
      { task: "ok", queue: "adm-stats", runAt },
      { task: "ok", queue: "adm-stats", runAt },
      { task: "bad", queue: "adm-stats", runAt },
      { task: "flaky", queue: "adm-stats", runAt, maxAttempts: 3 },
    ]);
    let ended = 0;
    const all = new Promise<void>((resolve) => {
      for (const e of ["job:completed", "job:failed", "job:retried"] as const) worker.on(e, () => ++ended === 4 && resolve());
    });
    await worker.start();
    await all;
    await worker.stop(); // writes what it counted
    const stats = await queue.getQueueStats({ queue: "adm-stats", minutes: 5 });
    expect(stats.queues.map((q) => q.queue)).toEqual(["adm-stats"]);
    const points = stats.queues[0]!.points;
    expect(points).toHaveLength(5);
    expect(points.map((p) => p.at.getTime())).toEqual(points.map((_, i) => stats.from.getTime() + i * 60_000));
    expect(stats.to.getTime() - stats.from.getTime()).toBe(5 * 60_000);
    const sum = (f: (p: (typeof points)[0]) => number) => points.reduce((n, p) => n + f(p), 0);
    expect([sum((p) => p.completed), sum((p) => p.failed), sum((p) => p.retried), sum((p) => p.started)]).toEqual([2, 1, 1, 4]);
    const busy = points.filter((p) => p.started > 0);
    for (const p of busy) {
      expect(p.waitMsAvg!).toBeGreaterThanOrEqual(2900);
      expect(p.waitMsAvg!).toBeLessThan(60_000);
      expect(p.waitMsMax!).toBeGreaterThanOrEqual(p.waitMsAvg! - 1);
    }
    expect(points.filter((p) => p.started === 0).every((p) => p.waitMsAvg === null && p.waitMsMax === null)).toBe(true);
  });

  it("samples the waiting and running jobs once a minute, whoever asks first; unsampled minutes are null", async () => {
    await queue.enqueueMany([
      { task: "t", queue: "adm-sample" },
      { task: "t", queue: "adm-sample" },
      { task: "t", queue: "adm-sample", delayMs: 12 * 3_600_000 },
    ]);
    const at = new Date(Date.now() + 3 * 3_600_000); // a minute of its own, later than anything else here
    const minute = new Date(Math.floor(at.getTime() / 60_000) * 60_000);
    expect(await queue.db.statsSample("sampler-1", 86_400_000, at)).toEqual(minute);
    expect(await queue.db.statsSample("sampler-2", 86_400_000, at)).toBeNull();
    const [row] = await sql.unsafe(`select waiting, running from ${s}.queue_stats where queue = 'adm-sample' and minute = $1`, [minute]);
    expect(row).toEqual({ waiting: 2, running: 0 });

    const read = await queue.db.statsRead(3, null, at);
    expect(read.nowMs).toBe(minute.getTime());
    expect(read.sampled).toEqual([minute.getTime()]);
    // through the library, with the same stand-in clock
    const { queueStats } = await import("../src/producer/stats.ts");
    const stats = await queueStats(queue.db, { minutes: 3 }, at);
    const sample = stats.queues.find((q) => q.queue === "adm-sample")!.points;
    expect(sample.map((p) => p.waiting)).toEqual([null, null, 2]);
    // a queue the sample found nothing of has 0 for that minute, not null
    const other = await queueStats(queue.db, { queue: "adm-idle", minutes: 2 }, at);
    expect(other.queues).toEqual([{ queue: "adm-idle", points: [expect.objectContaining({ waiting: null }), expect.objectContaining({ waiting: 0, running: 0, completed: 0 })] }]);
  });

  it("deletes figures older than a day when it samples", async () => {
    const at = new Date(Date.now() + 5 * 3_600_000);
    const old = new Date(at.getTime() - 86_400_000 - 120_000);
    await sql.unsafe(`insert into ${s}.queue_stats (minute, queue, completed) values (date_trunc('minute', $1::timestamptz), 'adm-old', 7)`, [old]);
    await sql.unsafe(`insert into ${s}.stats_samples (minute) values (date_trunc('minute', $1::timestamptz))`, [old]);
    await queue.db.statsSample("sampler", 86_400_000, at);
    expect((await sql.unsafe(`select count(*)::int as n from ${s}.queue_stats where queue = 'adm-old'`))[0]!.n).toBe(0);
    expect((await sql.unsafe(`select count(*)::int as n from ${s}.stats_samples where minute < $1::timestamptz - interval '1 day'`, [at]))[0]!.n).toBe(0);
  });

  it("refuses bad options", async () => {
    for (const bad of [{ minutes: 0 }, { minutes: 1441 }, { minutes: 1.5 }, { queue: "" }, { bogus: true }]) {
      await expect(queue.getQueueStats(bad as never), JSON.stringify(bad)).rejects.toMatchObject({ code: "INVALID_INPUT" });
    }
  });

  it("a worker's counts reach the table while it runs, at statsIntervalMs", async () => {
    const worker = db.worker({ queues: ["adm-live"], statsIntervalMs: 20, tasks: { ok: async () => null } });
    const done = worker.waitFor("job:completed", undefined, deadline());
    await worker.start();
    await queue.enqueue("ok", {}, { queue: "adm-live" });
    await done;
    await until(async () => (await queue.getQueueStats({ queue: "adm-live", minutes: 2 })).queues[0]!.points.some((p) => p.completed === 1));
  });
});
