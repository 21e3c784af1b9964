import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { until } from "../support/db.ts";
import { killAllWorkers, spawnFaultWorker } from "../support/fault-procs.ts";
import { type Env, openEnv, startProducer } from "../support/fault-scenarios.ts";
import { audit, explainReruns, loadHistory, reportFigure, summary } from "../support/history.ts";
import { type Cluster, startCluster } from "../support/pg-cluster.ts";
import { type Proxy, startProxy } from "../support/tcp-proxy.ts";

let cluster: Cluster;
let env: Env;
const proxies: Proxy[] = [];
/** What the partitioned worker did while cut off: ms from the cut to its handler's abort, or null. */
let partition: { staleAfterMs: number; heartbeatIntervalMs: number; abortedAfterMs: number | null } | undefined;

beforeAll(async () => {
  cluster = await startCluster();
  env = await openEnv(cluster.url, "halfopen");
});
afterEach(async () => {
  await killAllWorkers();
  for (const p of proxies.splice(0)) await p.close();
});
afterAll(async () => {
  await killAllWorkers();
  await env?.close();
  await cluster?.destroy();
});

async function proxy(): Promise<{ proxy: Proxy; url: string }> {
  const p = await startProxy({ host: "127.0.0.1", port: cluster.port });
  proxies.push(p);
  return { proxy: p, url: `postgres://postgres@127.0.0.1:${p.port}/test` };
}

describe("half-open connections", () => {
  it("a LISTEN connection black-holed without a FIN, three times: noticed within the health check, replaced, and the sweep delivers meanwhile", async () => {
    const queueName = "halfopen";
    const timing = { pollIntervalMs: 1000, listenerHealthIntervalMs: 2000, listenerHealthTimeoutMs: 1000 };
    const { proxy: p, url } = await proxy();
    const w = await spawnFaultWorker({
      url, historyUrl: env.url, schema: env.schema, id: "deaf", queues: [queueName], concurrency: 4, logLevel: "warn",
      printClaims: true, ...timing,
    });
    const producer = startProducer(env.url, env.schema, queueName, 50, 0);
    const cycles: { detectMs: number; replacedMs: number; sweptDuringDeafness: number; notifyAfterMs: number }[] = [];
    try {
      await producer.acks(20);
      for (let i = 0; i < 3; i++) {
        expect(p.listeners()).toBe(1);
        const mark = w.events.length;
        const cut = performance.now();
        p.stallListeners();
        const down = await w.event("listener:down", 10_000, mark);
        const up = await w.event("listener:up", 10_000, mark);
        const claimsWhileDeaf = w.events
          .slice(mark)
          .filter((e) => e.name === "worker:claimed" && e.seenAt > cut && e.seenAt < up.seenAt && (e.data.ids as string[]).length > 0);
        expect(p.listeners()).toBe(1);
        // with the producer paused and the worker idle, a job is claimed on its notification
        await producer.pause();
        await until(async () => (await env.sql.unsafe(`select count(*)::int as n from ${env.s}.jobs where queue = $1 and status <> 'completed'`, [queueName]))[0]!.n === 0, 10_000, 20);
        const probeMark = w.events.length;
        const sent = performance.now();
        const job = await env.queue.enqueue("record", {}, { queue: queueName });
        const claimed = await w.event("worker:claimed", 5_000, probeMark, (e) => (e.data.ids as string[]).includes(job.id));
        expect(claimed.data.reason).toBe("notify");
        cycles.push({
          detectMs: Math.round(down.seenAt - cut),
          replacedMs: Math.round(up.seenAt - cut),
          sweptDuringDeafness: claimsWhileDeaf.filter((e) => e.data.reason === "sweep").reduce((n, e) => n + (e.data.ids as string[]).length, 0),
          notifyAfterMs: Math.round(claimed.seenAt - sent),
        });
        producer.resume();
        await producer.acks(20);
      }
    } finally {
      await producer.stop();
    }
    await until(async () => (await env.sql.unsafe(`select count(*)::int as n from ${env.s}.jobs where queue = $1 and status <> 'completed'`, [queueName]))[0]!.n === 0, 10_000, 20);
    expect(await w.stop()).toBe(0);
    const history = await loadHistory(env.sql, env.schema, [queueName]);
    const a = audit(history, { ids: producer.acked.values(), status: "completed" });
    await reportFigure("half-open-listener", { timing, cycles, enqueueErrors: producer.failed.length, history: summary(a) });
    expect(producer.failed).toEqual([]);
    expect(a.missing).toEqual([]);
    expect(a.wrongState).toEqual([]);
    expect(a.completedWithoutRun).toEqual([]);
    expect(a.ranMoreThanOnce.size).toBe(0);
    for (const c of cycles) {
      // noticed within one health interval plus the ping's timeout (and slack for timers)
      expect(c.detectMs).toBeLessThan(timing.listenerHealthIntervalMs + timing.listenerHealthTimeoutMs + 1000);
      // the sweep kept the jobs moving while the worker was deaf
      expect(c.sweptDuringDeafness).toBeGreaterThan(0);
    }
  });

  it("a worker cut off without a FIN (every connection black-holed): another worker's reaper rescues its job within staleAfterMs + one reaper interval; once the connections reset it gives the job up and rejoins", async () => {
    const queueName = "partition";
    const timing = { heartbeatIntervalMs: 500, staleAfterMs: 3000, reaperIntervalMs: 500, pollIntervalMs: 1000 };
    const { proxy: p, url } = await proxy();
    const cutOff = await spawnFaultWorker({
      url, historyUrl: env.url, schema: env.schema, id: "cut-off", queues: [queueName], concurrency: 2, logLevel: "warn", ...timing,
    });
    const long = await env.queue.enqueue("record", { ms: 8000, announce: true }, { queue: queueName });
    await cutOff.line(new RegExp(`^started ${long.id} 1$`));
    const rescuer = await spawnFaultWorker({
      url: env.url, schema: env.schema, id: "rescuer", queues: [queueName], concurrency: 2, logLevel: "warn", ...timing,
    });
    const cutAt = Date.now();
    const mark = cutOff.lines.length;
    p.stallAll();
    // the rescue: the reaper (in the rescuer) puts the job back, and the rescuer runs it
    await rescuer.line(new RegExp(`^started ${long.id} 2$`), timing.staleAfterMs + 10_000);
    const [lost] = (await env.sql.unsafe(`select errors from ${env.s}.jobs where id = $1`, [long.id]))[0]!.errors.filter(
      (e: { name: string }) => e.name === "WorkerLostError",
    );
    const rescueMs = new Date(lost.at).getTime() - cutAt;
    // Did the cut-off worker notice and abort its handler while cut off? Give it staleAfterMs
    // plus two heartbeats; a worker that cannot reach the database has lost its lease by then.
    const noticeBy = timing.staleAfterMs + 2 * timing.heartbeatIntervalMs + 1000;
    const aborted = await cutOff.line(new RegExp(`^aborted ${long.id} 1 `), Math.max(0, cutAt + noticeBy - Date.now()), mark).then(
      () => Date.now() - cutAt,
      () => null,
    );
    partition = { staleAfterMs: timing.staleAfterMs, heartbeatIntervalMs: timing.heartbeatIntervalMs, abortedAfterMs: aborted };
    // the partition ends as a broken path usually does: the connections are reset
    const leaseMark = cutOff.events.length;
    p.resumeAll();
    p.dropAll();
    await cutOff.event("worker:lease-lost", 20_000, leaseMark);
    await until(async () => (await env.queue.getJob(long.id))?.status === "completed", 20_000, 50);
    // it works again: with the rescuer gone, jobs only it can take
    expect(await rescuer.stop()).toBe(0);
    const more = await Promise.all([1, 2, 3, 4].map(() => env.queue.enqueue("record", {}, { queue: queueName })));
    await until(async () => (await Promise.all(more.map((j) => env.queue.getJob(j.id)))).every((j) => j?.status === "completed"), 20_000, 50);
    expect(await cutOff.stop()).toBe(0);

    const history = await loadHistory(env.sql, env.schema, [queueName]);
    const a = audit(history, { ids: [long.id, ...more.map((j) => j.id)], status: "completed" });
    const reruns = explainReruns(history);
    await reportFigure("partitioned-worker", { timing, rescueMs, cutOffWorkerAbortedAfterMs: aborted, history: summary(a) });
    expect(a.missing).toEqual([]);
    expect(a.wrongState).toEqual([]);
    expect(a.completedWithoutRun).toEqual([]);
    expect(a.silentAttempts).toEqual([]);
    expect(reruns.unexplained).toEqual([]);
    // the rescue, by the reaper's clock: within staleAfterMs + one reaper interval (+1 s slack)
    expect(rescueMs).toBeLessThan(timing.staleAfterMs + timing.reaperIntervalMs + 1000);
    // the job's result is the rescuer's: the cut-off worker's late end could not overwrite it
    expect(history.jobs.get(long.id)!.result).toMatchObject({ by: "rescuer", attempt: 2 });
  });

  it("a worker cut off from the database notices within staleAfterMs + two heartbeats and aborts its handlers, whose jobs the reaper is giving to others", () => {
    // A black-holed connection never answers and never errors (until TCP gives up, about 15 min
    // on Linux). heartbeat() has no deadline and the heartbeat loop (src/worker/worker.ts every()) awaits
    // it, so no later heartbeat runs either: the worker never learns that its lease is gone, and
    // its handler runs on while the reaper gives the job to another worker (the job runs on both
    // at once). Once the connections reset, the next heartbeat finds the lease gone and aborts it.
    expect(partition, "the scenario above did not run").toBeDefined();
    expect(partition!.abortedAfterMs, "the cut-off worker's handler was not aborted while it was cut off").not.toBeNull();
  });
});
