import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createQueue } from "../../src/index.ts";
import { until } from "../support/db.ts";
import { killAllWorkers, spawnFaultWorker } from "../support/fault-procs.ts";
import { type Env, openEnv } from "../support/fault-scenarios.ts";
import { audit, loadHistory, percentile, reportFigure, summary } from "../support/history.ts";
import { type Cluster, startCluster } from "../support/pg-cluster.ts";
import { type Proxy, startProxy } from "../support/tcp-proxy.ts";

let cluster: Cluster;
let env: Env;
let proxy: Proxy;

beforeAll(async () => {
  cluster = await startCluster();
  env = await openEnv(cluster.url, "enqueue");
  proxy = await startProxy({ host: "127.0.0.1", port: cluster.port });
});
afterEach(killAllWorkers);
afterAll(async () => {
  await killAllWorkers();
  await proxy?.close();
  await env?.close();
  await cluster?.destroy();
});

/** Producers' pace: a steady stream, not a flood the drain afterwards would take long over. */
const pace = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Outcome = { ok: true; id: string; ms: number } | { ok: false; code: string; ms: number };

async function attempt(fn: () => Promise<string>): Promise<Outcome> {
  const t = performance.now();
  try {
    return { ok: true, id: await fn(), ms: performance.now() - t };
  } catch (error) {
    return { ok: false, code: String((error as { code?: string }).code ?? (error as Error).message), ms: performance.now() - t };
  }
}

describe("enqueue under faults", () => {
  it("producers enqueueing through dropped, reset and black-holed connections: each call returns a durable job or an error, never a silent loss; a batch lands whole or not at all; retrying with a key never duplicates", async () => {
    const url = `postgres://postgres@127.0.0.1:${proxy.port}/test`;
    // the producer under test: a pool pgpulse opens itself, through the proxy
    const producer = createQueue({ connection: url, schema: env.schema });
    const plain: { nonce: string; out: Outcome }[] = [];
    const batches: { nonces: string[]; out: Outcome }[] = [];
    const keyed: { key: string; outs: Outcome[] }[] = [];
    const throttled: { key: string; outs: Outcome[] }[] = [];
    // a worker serves the throttled queue meanwhile: its jobs finish, and a retry must still not make a second one
    const worker = await spawnFaultWorker({ url: env.url, schema: env.schema, id: "served", queues: ["throttled"], concurrency: 4, logLevel: "error" });
    let running = true;
    const loops = [
      (async () => {
        while (running) {
          const nonce = crypto.randomUUID();
          plain.push({ nonce, out: await attempt(async () => (await producer.enqueue("record", { nonce }, { queue: "plain" })).id) });
          await pace(10);
        }
      })(),
      (async () => {
        while (running) {
          const nonces = Array.from({ length: 5 }, () => crypto.randomUUID());
          const out = await attempt(async () => {
            const jobs = await producer.enqueueMany(nonces.map((nonce) => ({ task: "record", queue: "batch", payload: { nonce } })));
            return jobs.map((j) => j.id).join(",");
          });
          batches.push({ nonces, out });
          await pace(25);
        }
      })(),
      ...[["keyed", keyed], ["throttled", throttled]].map(([queueName, list]) =>
        (async () => {
          for (let i = 0; running; i++) {
            const key = `${queueName}-${i}`;
            const outs: Outcome[] = [];
            (list as typeof keyed).push({ key, outs });
            // retry until acknowledged, as a careful producer does
            for (;;) {
              const opts = queueName === "keyed" ? { queue: "keyed", key } : { queue: "throttled", key, throttleMs: 600_000 };
              const out = await attempt(async () => (await producer.enqueue("record", { key }, opts)).id);
              outs.push(out);
              if (out.ok) break;
            }
            await pace(10);
          }
        })(),
      ),
    ];
    // the faults, in turn, until every kind has struck a few times
    const faults = { dropAll: 0, terminate: 0, blackHoleThenReset: 0 };
    const began = performance.now();
    for (let i = 0; performance.now() - began < 15_000; i++) {
      await new Promise((r) => setTimeout(r, 150 + Math.random() * 200)); // the faults' own rhythm
      const kind = i % 3;
      if (kind === 0) {
        proxy.dropAll();
        faults.dropAll++;
      } else if (kind === 1) {
        await env.sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'pgpulse' and client_port is not null`;
        faults.terminate++;
      } else {
        proxy.stallAll();
        await new Promise((r) => setTimeout(r, 300));
        proxy.resumeAll();
        proxy.dropAll();
        faults.blackHoleThenReset++;
      }
    }
    running = false;
    await Promise.all(loops);
    await producer.close();

    // what is in the database
    const rows = await env.sql.unsafe(
      `select id::text, queue, key, payload->>'nonce' as nonce from ${env.s}.jobs where queue in ('plain', 'batch', 'keyed', 'throttled')`,
    );
    const byNonce = new Map(rows.filter((r) => r.nonce).map((r) => [r.nonce as string, r.id as string]));
    const byKey = new Map<string, string[]>();
    for (const r of rows) if (r.key) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.id]);

    // 1. acknowledged means durable: the very job returned is there
    const plainAcked = plain.filter((p) => p.out.ok);
    const lostPlain = plainAcked.filter((p) => byNonce.get(p.nonce) !== (p.out as { id: string }).id);
    // 2. an error may or may not have written the job (a commit whose reply was lost): counted, not lost
    const plainFailed = plain.filter((p) => !p.out.ok);
    const landedAnyway = plainFailed.filter((p) => byNonce.has(p.nonce)).length;
    // 3. a batch is one statement: all of it or none of it
    const partial = batches.filter((b) => {
      const n = b.nonces.filter((x) => byNonce.has(x)).length;
      return n !== 0 && n !== b.nonces.length;
    });
    const lostBatches = batches.filter((b) => b.out.ok && b.out.id.split(",").some((id, i) => byNonce.get(b.nonces[i]!) !== id));
    // 4. keys: one job per key however many attempts, and every acknowledged attempt returned that job
    const dupKeys = [...byKey].filter(([, ids]) => ids.length > 1);
    const keyMismatch = [...keyed, ...throttled].filter((k) => {
      const ids = byKey.get(k.key) ?? [];
      return k.outs.some((o) => o.ok) && (ids.length !== 1 || k.outs.some((o) => o.ok && o.id !== ids[0]));
    });
    const codes: Record<string, number> = {};
    for (const o of [...plain.map((p) => p.out), ...batches.map((b) => b.out), ...keyed.flatMap((k) => k.outs), ...throttled.flatMap((k) => k.outs)]) {
      if (!o.ok) codes[o.code] = (codes[o.code] ?? 0) + 1;
    }
    const latencies = [...plain.map((p) => p.out.ms), ...batches.map((b) => b.out.ms)];
    const retriedKeys = [...keyed, ...throttled].filter((k) => k.outs.length > 1);

    // the keyed queue drains once a worker serves it; every job runs once
    const drain = await spawnFaultWorker({ url: env.url, schema: env.schema, id: "drain", queues: ["keyed", "plain", "batch"], concurrency: 8, logLevel: "error" });
    await until(async () => {
      const [r] = await env.sql.unsafe(`select count(*)::int as n from ${env.s}.jobs where status in ('queued', 'running')`);
      return r!.n === 0;
    }, 60_000, 50);
    expect(await Promise.all([worker.stop(), drain.stop()])).toEqual([0, 0]);
    const history = await loadHistory(env.sql, env.schema, ["plain", "batch", "keyed", "throttled"]);
    const a = audit(history, { ids: rows.map((r) => r.id as string), status: "completed" });

    await reportFigure("enqueue-under-faults", {
      faults,
      plain: { calls: plain.length, acked: plainAcked.length, errors: plainFailed.length, landedDespiteError: landedAnyway },
      batches: { calls: batches.length, acked: batches.filter((b) => b.out.ok).length, partial: partial.length },
      keyed: { keys: keyed.length, attempts: keyed.reduce((n, k) => n + k.outs.length, 0), duplicates: dupKeys.length },
      throttled: { keys: throttled.length, attempts: throttled.reduce((n, k) => n + k.outs.length, 0) },
      keysRetried: retriedKeys.length,
      errorCodes: codes,
      callMs: { p50: Math.round(percentile(latencies, 50)), p99: Math.round(percentile(latencies, 99)), max: Math.round(Math.max(...latencies)) },
      history: summary(a),
    });
    expect(faults.dropAll + faults.terminate + faults.blackHoleThenReset).toBeGreaterThan(30);
    expect(plainFailed.length).toBeGreaterThan(0); // the faults did reach the producer
    expect(retriedKeys.length).toBeGreaterThan(0);
    expect(lostPlain.map((p) => p.nonce)).toEqual([]);
    expect(lostBatches.map((b) => b.nonces[0])).toEqual([]);
    expect(partial.map((b) => b.nonces[0])).toEqual([]);
    expect(dupKeys).toEqual([]);
    expect(keyMismatch.map((k) => k.key)).toEqual([]);
    expect(a.wrongState).toEqual([]);
    expect(a.completedWithoutRun).toEqual([]);
    expect(a.ranMoreThanOnce.size).toBe(0);
  });
});
