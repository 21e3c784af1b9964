import postgres from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { until } from "../support/db.ts";
import { type FaultWorker, killAllWorkers, spawnFaultWorker } from "../support/fault-procs.ts";
import { type Env, enqueueRecords, openEnv } from "../support/fault-scenarios.ts";
import { audit, loadHistory, reportFigure, summary } from "../support/history.ts";
import { type Cluster, startCluster } from "../support/pg-cluster.ts";

const MAX_CONNECTIONS = 30;
let cluster: Cluster;
let env: Env;
const hogs: postgres.Sql[] = [];

beforeAll(async () => {
  cluster = await startCluster({ settings: { max_connections: MAX_CONNECTIONS } });
  env = await openEnv(cluster.url, "startup");
});
afterEach(async () => {
  await killAllWorkers();
  await Promise.all(hogs.splice(0).map((h) => h.end({ timeout: 1 })));
  if (!cluster.running()) await cluster.start();
});
afterAll(async () => {
  await killAllWorkers();
  await env?.close();
  await cluster?.destroy();
});

const RETRY_LINE = /^log warn worker (\S+) starting: database not reachable \((\w+): (.*)\); trying again in (\d+) ms$/;

/** Waits for `n` retry lines from the worker; returns the last one's code and announced wait. */
async function retries(w: FaultWorker, n: number, timeoutMs = 60_000): Promise<{ code: string; message: string; waitMs: number; lines: string[] }> {
  await until(() => w.lines.filter((l) => RETRY_LINE.test(l)).length >= n, timeoutMs, 20);
  const lines = w.lines.filter((l) => RETRY_LINE.test(l));
  const m = lines[lines.length - 1]!.match(RETRY_LINE)!;
  return { code: m[2]!, message: m[3]!, waitMs: Number(m[4]), lines };
}

function config(id: string, queueName: string) {
  return { url: env.url, schema: env.schema, id, queues: [queueName], concurrency: 4, logLevel: "warn" as const };
}

describe("the database is not there when workers start", () => {
  it("cluster stopped: workers wait with backoff, saying so, and start when it comes; the jobs waiting for them all run once", async () => {
    const queueName = "late-db";
    const ids = await enqueueRecords(env.queue, queueName, 500, [0, 5]);
    await cluster.stop("fast");
    const workers = await Promise.all(
      ["late-1", "late-2"].map((id) => spawnFaultWorker(config(id, queueName), { waitReady: false })),
    );
    // three attempts each (about 0.5 + 1 + 2 s of backoff) before the database comes
    const seen = await Promise.all(workers.map((w) => retries(w, 3)));
    await cluster.start();
    const back = performance.now();
    const readyMs = await Promise.all(workers.map(async (w) => (await w.line(/^ready /, 60_000), Math.round(performance.now() - back))));
    await until(async () => (await env.queue.listQueues()).find((q) => q.queue === queueName)?.completed === ids.length, 30_000, 50);
    expect(await Promise.all(workers.map((w) => w.stop()))).toEqual([0, 0]);

    const history = await loadHistory(env.sql, env.schema, [queueName]);
    const a = audit(history, { ids, status: "completed" });
    await reportFigure("database-down-at-start", {
      retryLines: seen.map((s) => s.lines.length),
      lastAnnouncedWaitMs: seen.map((s) => s.waitMs),
      readyAfterDatabaseBackMs: readyMs,
      example: seen[0]!.lines[0],
      history: summary(a),
    });
    for (const s of seen) {
      expect(s.code).toBe("ECONNREFUSED");
      // backoff: each wait about twice the last (jittered by a quarter either way)
      const waits = s.lines.map((l) => Number(l.match(RETRY_LINE)![4]));
      for (let i = 1; i < waits.length; i++) expect(waits[i]!).toBeGreaterThan(waits[i - 1]! * 1.1);
    }
    // it starts at its next attempt after the database is back (+ slack for postgres.js's own reconnect delay and process start)
    readyMs.forEach((ms, i) => expect(ms).toBeLessThan(seen[i]!.waitMs * 2 + 5000));
    expect(a.missing).toEqual([]);
    expect(a.wrongState).toEqual([]);
    expect(a.completedWithoutRun).toEqual([]);
    expect(a.ranMoreThanOnce.size).toBe(0);
  });

  it("max_connections exhausted by idle connections: workers wait with backoff on 53300, saying so, and start once connections free up", async () => {
    const queueName = "full-db";
    const ids = await enqueueRecords(env.queue, queueName, 500, [0, 5]);
    // a monitor connection of our own, opened before the server is full
    const monitor = postgres(cluster.url, { max: 1, onnotice: () => {} });
    await monitor`select 1`;
    try {
      // hog every connection slot left
      for (;;) {
        const hog = postgres(cluster.url, { max: 1, onnotice: () => {}, connection: { application_name: "hog" } });
        try {
          await hog`select 1`;
          hogs.push(hog);
        } catch (error) {
          await hog.end({ timeout: 0 }).catch(() => {});
          expect((error as { code?: string }).code).toBe("53300");
          break;
        }
      }
      const workers = await Promise.all(
        ["full-1", "full-2"].map((id) => spawnFaultWorker(config(id, queueName), { waitReady: false })),
      );
      const seen = await Promise.all(workers.map((w) => retries(w, 2)));
      // let it come: free enough slots for both workers (pool, listener, history)
      const freed = performance.now();
      await Promise.all(hogs.splice(0, 20).map((h) => h.end({ timeout: 1 })));
      const readyMs = await Promise.all(workers.map(async (w) => (await w.line(/^ready /, 60_000), Math.round(performance.now() - freed))));
      await until(async () => (await env.queue.listQueues()).find((q) => q.queue === queueName)?.completed === ids.length, 30_000, 50);
      expect(await Promise.all(workers.map((w) => w.stop()))).toEqual([0, 0]);

      const history = await loadHistory(env.sql, env.schema, [queueName]);
      const a = audit(history, { ids, status: "completed" });
      await reportFigure("too-many-connections-at-start", {
        maxConnections: MAX_CONNECTIONS,
        retryLines: seen.map((s) => s.lines.length),
        readyAfterSlotsFreedMs: readyMs,
        example: seen[0]!.lines[0],
        history: summary(a),
      });
      for (const s of seen) {
        expect(s.code).toBe("53300");
        expect(s.message).toMatch(/too many clients/);
      }
      readyMs.forEach((ms, i) => expect(ms).toBeLessThan(seen[i]!.waitMs * 2 + 5000));
      expect(a.missing).toEqual([]);
      expect(a.wrongState).toEqual([]);
      expect(a.completedWithoutRun).toEqual([]);
      expect(a.ranMoreThanOnce.size).toBe(0);
    } finally {
      await monitor.end({ timeout: 1 });
    }
  });
});
