import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { until } from "../support/db.ts";
import { killAllWorkers, SKEW_PRELOAD, spawnFaultWorker } from "../support/fault-procs.ts";
import { backendsGone, dbNow, type Env, openEnv } from "../support/fault-scenarios.ts";
import { audit, loadHistory, reportFigure, summary } from "../support/history.ts";
import { type Cluster, startCluster } from "../support/pg-cluster.ts";

let cluster: Cluster;
let env: Env;

beforeAll(async () => {
  cluster = await startCluster();
  env = await openEnv(cluster.url, "skew");
});
afterEach(killAllWorkers);
afterAll(async () => {
  await killAllWorkers();
  await env?.close();
  await cluster?.destroy();
});

const TEN_MINUTES = 10 * 60_000;

describe("clock skew", () => {
  it("workers whose clocks are 10 minutes ahead and 10 minutes behind: delayed jobs do not start early, retries wait their backoff, timeouts fire, heartbeats stay fresh, live workers are never reaped and a dead one is, on time", async () => {
    const queueName = "skew";
    const timing = { heartbeatIntervalMs: 500, staleAfterMs: 2000, reaperIntervalMs: 500, pollIntervalMs: 500 };
    const skewed = (id: string, skewMs: number) =>
      spawnFaultWorker(
        { url: env.url, schema: env.schema, id, queues: [queueName], concurrency: 4, logLevel: "warn", backoff: { baseMs: 1000, maxMs: 1000 }, ...timing },
        { nodeArgs: ["--import", SKEW_PRELOAD], env: { PGPULSE_SKEW_MS: String(skewMs) } },
      );
    const ahead = await skewed("ahead", TEN_MINUTES);
    const behind = await skewed("behind", -TEN_MINUTES);
    const began = performance.now();

    // the skew is real: each worker's wall clock, as its chain task records it, is 10 minutes off the database's
    const chains = await env.queue.enqueueMany(Array.from({ length: 6 }, () => ({ task: "chain", queue: queueName, payload: { delayMs: 2000 } })));
    // delayed jobs (by the database's clock, from a producer whose clock is right), at 2 s and 4 s
    const delayed = await env.queue.enqueueMany(
      Array.from({ length: 20 }, (_, i) => ({ task: "record", queue: queueName, delayMs: i < 10 ? 2000 : 4000 })),
    );
    // attempts that time out, and attempts that fail and retry after their backoff (1 s, jittered to 0.5-1 s)
    const hung = await env.queue.enqueueMany(Array.from({ length: 4 }, () => ({ task: "hang", queue: queueName, timeoutMs: 500, maxAttempts: 1 })));
    const retried = await env.queue.enqueueMany(Array.from({ length: 4 }, () => ({ task: "throw", queue: queueName, payload: { kind: "string" }, maxAttempts: 2 })));
    // heartbeats stay fresh by the database's clock, sampled while all this runs
    const ages: number[] = [];
    const childIds = async () =>
      (await env.sql.unsafe(`select result->>'child' as c from ${env.s}.jobs where id = any($1::bigint[]) and status = 'completed'`, [chains.map((j) => j.id)])).map((r) => r.c as string);
    await until(async () => {
      for (const w of await env.queue.listWorkers()) ages.push(w.heartbeatAgeMs);
      const ids = [...delayed, ...hung, ...retried, ...chains].map((j) => j.id);
      const [r] = await env.sql.unsafe(`select count(*)::int as n from ${env.s}.jobs where id = any($1::bigint[]) and status in ('queued', 'running')`, [ids]);
      const children = await childIds();
      if (children.length < chains.length) return false;
      const [c] = await env.sql.unsafe(`select count(*)::int as n from ${env.s}.jobs where id = any($1::bigint[]) and status in ('queued', 'running')`, [children]);
      return r!.n === 0 && c!.n === 0;
    }, 30_000, 100);
    // keep going past several staleAfterMs: nobody is reaped
    await until(async () => {
      for (const w of await env.queue.listWorkers()) ages.push(w.heartbeatAgeMs);
      return performance.now() - began > 4 * timing.staleAfterMs;
    }, 30_000, 100);
    const workersNow = (await env.queue.listWorkers()).map((w) => w.id).sort();

    // a dead worker is reaped on time by reapers whose clocks are off
    const victim = await skewed("victim", TEN_MINUTES);
    const long = await env.queue.enqueue("record", { ms: 60_000, announce: true }, { queue: queueName });
    await until(async () => (await env.queue.getJob(long.id))?.workerId != null, 10_000, 20);
    const holder = (await env.queue.getJob(long.id))!.workerId!;
    const holderProc = [ahead, behind, victim].find((w) => w.id === holder)!;
    const killedAt = await dbNow(env.sql);
    await holderProc.kill();
    await backendsGone(env.sql, holder);
    await until(async () => (await env.queue.getJob(long.id))!.errors.some((e) => e.name === "WorkerLostError"), 15_000, 20);
    const lost = (await env.queue.getJob(long.id))!.errors.find((e) => e.name === "WorkerLostError")!;
    const reapMs = Math.round(new Date(lost.at as unknown as string).getTime() - killedAt);
    await env.queue.cancel(long.id).catch(() => {});
    const survivors = [ahead, behind, victim].filter((w) => w !== holderProc);
    const reapedEvents = survivors.flatMap((w) => w.events.filter((e) => e.name === "reaper:reaped"));
    const leaseLost = [ahead, behind, victim].flatMap((w) => w.events.filter((e) => e.name === "worker:lease-lost"));
    expect((await Promise.all(survivors.map((w) => w.stop()))).every((c) => c === 0)).toBe(true);

    const history = await loadHistory(env.sql, env.schema, [queueName]);
    const children = await childIds();
    const ids = [...delayed, ...hung, ...retried, ...chains].map((j) => j.id).concat(children);
    const byId = (id: string) => history.jobs.get(id)!;
    const a = audit(
      { ...history, jobs: new Map([...history.jobs].filter(([id]) => ids.includes(id))) },
      { ids, status: (j) => (j.task === "hang" || j.task === "throw" ? "failed" : "completed") },
    );
    const early = delayed.concat(children.map((id) => ({ id }) as never)).filter((j) => history.runs.get(j.id)!.some((r) => r.at < byId(j.id).runAt));
    const startLagMs = [...delayed.map((j) => j.id), ...children].map((id) => history.runs.get(id)![0]!.at.getTime() - byId(id).runAt.getTime());
    const chainDelayMs = chains.map((c) => byId(String(byId(c.id).result!.child)).runAt.getTime() - history.runs.get(c.id)![0]!.at.getTime());
    const clockOffMs = chains.map((c) => {
      const run = history.runs.get(c.id)![0]!;
      return Math.round(((run.info as { localNow: number }).localNow - run.at.getTime()) / 1000) * 1000;
    });
    // from the claim (the timer starts after it) and from the handler's first write (after the timer started)
    const timeoutMs = hung.map((j) => new Date(byId(j.id).errors[0]!.at).getTime() - byId(j.id).startedAt!.getTime());
    const timeoutFromRunMs = hung.map((j) => new Date(byId(j.id).errors[0]!.at).getTime() - history.runs.get(j.id)![0]!.at.getTime());
    const backoffMs = retried.map((j) => history.runs.get(j.id)![1]!.at.getTime() - new Date(byId(j.id).errors[0]!.at).getTime());
    const maxAge = Math.max(...ages);
    await reportFigure("clock-skew", {
      skewMs: [TEN_MINUTES, -TEN_MINUTES], timing, clockOffMs, startLagMs: { min: Math.min(...startLagMs), max: Math.max(...startLagMs) },
      chainDelayMs, timeoutMs, backoffMs, maxHeartbeatAgeMs: maxAge, reapMs, reapedEvents: reapedEvents.length, leaseLost: leaseLost.length,
      history: summary(a),
    });

    expect(new Set(clockOffMs.map(Math.abs))).toEqual(new Set([TEN_MINUTES]));
    expect(a.missing).toEqual([]);
    expect(a.wrongState).toEqual([]);
    expect(a.silentAttempts).toEqual([]);
    expect(a.completedWithoutRun).toEqual([]);
    // no delayed job ran before its time, and none waited much past it
    expect(early).toEqual([]);
    expect(Math.max(...startLagMs)).toBeLessThan(timing.pollIntervalMs + 1000);
    // a delay asked for by a producer whose clock is off is counted on the database's clock
    for (const d of chainDelayMs) expect(Math.abs(d - 2000)).toBeLessThan(500);
    for (const t of timeoutMs) expect(t).toBeGreaterThanOrEqual(500);
    for (const t of timeoutFromRunMs) expect(t).toBeLessThan(1500);
    for (const b of backoffMs) expect(b).toBeGreaterThanOrEqual(490), expect(b).toBeLessThan(1000 + timing.pollIntervalMs + 1000);
    // heartbeats fresh, no live worker reaped, no lease lost, no job lost to a "dead" worker but the one killed
    expect(maxAge).toBeLessThan(timing.heartbeatIntervalMs + 1000);
    expect(workersNow).toEqual(["ahead", "behind"]);
    expect(leaseLost).toEqual([]);
    expect(reapedEvents.map((e) => e.data.workers)).toEqual([[holder]]);
    expect([...history.jobs.values()].filter((j) => j.id !== long.id && j.errors.some((e) => e.name === "WorkerLostError"))).toEqual([]);
    // and the dead one's job was taken back within staleAfterMs + one reaper interval (+1 s slack)
    expect(reapMs).toBeLessThan(timing.staleAfterMs + timing.reaperIntervalMs + 1000);
  });
});
