// Test-only: the kill storm and the database restart, shared by the full fault
// suite (test/faults/) and its short version in npm test (test/faults-short.test.ts).
import postgres from "postgres";
import { createQueue, migrate, type Queue } from "../../src/index.ts";
import { until } from "./db.ts";
import { type Crash, type FaultWorker, type FaultWorkerConfig, spawnFaultWorker } from "./fault-procs.ts";
import { audit, type Audit, createHistoryTable, explainReruns, type History, loadHistory, percentile } from "./history.ts";
import type { Cluster } from "./pg-cluster.ts";

export interface Env {
  url: string;
  schema: string;
  s: string;
  sql: postgres.Sql;
  queue: Queue;
  close(): Promise<void>;
}

/** A migrated schema with a history table on the given database, and an admin pool. */
export async function openEnv(url: string, name: string): Promise<Env> {
  const schema = `f_${name}_${crypto.randomUUID().slice(0, 6)}`;
  const sql = postgres(url, { onnotice: () => {}, max: 4, connection: { application_name: "fault-test admin" } });
  await migrate({ connection: url, schema });
  await createHistoryTable(sql, schema);
  const queue = createQueue({ connection: url, schema });
  return {
    url, schema, s: `"${schema}"`, sql, queue,
    async close() {
      await queue.close().catch(() => {});
      await sql.end({ timeout: 2 }).catch(() => {});
    },
  };
}

/** Database time now, as epoch ms. */
export async function dbNow(sql: postgres.Sql): Promise<number> {
  const [r] = await sql`select (extract(epoch from clock_timestamp()) * 1000)::float8 as ms`;
  return r!.ms as number;
}

/** Waits until no backend of this worker (pool, listener, history) is left in pg_stat_activity. */
export async function backendsGone(sql: postgres.Sql, workerId: string, timeoutMs = 10_000): Promise<void> {
  await until(async () => {
    const [r] = await sql`
      select count(*)::int as n from pg_stat_activity
      where application_name in (${`pgpulse worker ${workerId}`.slice(0, 63)}, ${`pgpulse listener ${workerId}`.slice(0, 63)},
                                 ${`fault-history ${workerId}`.slice(0, 63)})`;
    return r!.n === 0;
  }, timeoutMs, 10);
}

export async function enqueueRecords(queue: Queue, queueName: string, n: number, ms: [number, number]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, n - i) }, () => ({
      task: "record", queue: queueName, payload: { ms: ms[0] + Math.floor(Math.random() * (ms[1] - ms[0] + 1)) },
    }));
    for (const job of await queue.enqueueMany(batch)) ids.push(job.id);
  }
  return ids;
}

async function countLeft(env: Env, queueName: string): Promise<number> {
  const [r] = await env.sql.unsafe(
    `select count(*)::int as n from ${env.s}.jobs where queue = $1 and status in ('pending', 'queued', 'running')`,
    [queueName],
  );
  return r!.n;
}

export interface Kill {
  victim: string;
  /** Database time of the kill (ms). */
  at: number;
  /** Jobs still marked running on the victim once its backends were gone: what the kill stranded. */
  stranded: string[];
  /** Of those, the ones claimed ahead with no start recorded: they go back unrun, no attempt counted. */
  unstarted: string[];
  /** The replacement kept the victim's id (it recovers the orphans when it registers) or took a new one (the reaper does). */
  sameId: boolean;
}

export interface StormResult {
  ids: string[];
  kills: Kill[];
  history: History;
  audit: Audit;
  durationMs: number;
  /** Per stranded job: ms from the kill to the job being put back (its WorkerLostError's time). */
  reclaimMs: { reaper: number[]; restart: number[] };
  /** Per stranded job: ms from the kill to its completion by another run. */
  rerunDoneMs: number[];
  /** Jobs run more than once that no kill stranded (must be none). */
  unexplained: string[];
  /** Stranded jobs without a WorkerLostError naming their killed worker (must be none). */
  unrecorded: string[];
  /** Stranded jobs whose WorkerLostError is marked unstarted when they had started, or the reverse (must be none). */
  mislabeled: string[];
  exitCodes: (number | string)[];
  workersLeft: number;
}

export interface StormOptions {
  env: Env;
  queueName: string;
  jobs: number;
  workers: number;
  concurrency: number;
  /** Handler time per job, ms, uniform in [min, max]. */
  handlerMs: [number, number];
  /** Time between kills, ms, uniform in [min, max]. */
  killEveryMs: [number, number];
  maxKills: number;
  /** Every n-th replacement restarts under the victim's id. */
  sameIdEvery: number;
  timing: Pick<FaultWorkerConfig, "heartbeatIntervalMs" | "staleAfterMs" | "reaperIntervalMs" | "pollIntervalMs">;
  drainTimeoutMs: number;
  log?: (line: string) => void;
  /** Enqueues the work and returns the job ids. @default `jobs` independent `record` jobs */
  enqueue?: () => Promise<string[]>;
}

/**
 * Kill storm: `workers` processes drain `jobs` jobs while a random one is
 * SIGKILLed every few seconds and replaced. The history must show every job
 * completed, and every job that ran twice stranded by a kill.
 */
export async function runKillStorm(o: StormOptions): Promise<StormResult> {
  const { env } = o;
  const log = o.log ?? (() => {});
  const began = performance.now();
  const config = (id: string): FaultWorkerConfig => ({
    url: env.url, schema: env.schema, id, queues: [o.queueName], concurrency: o.concurrency, logLevel: "error", ...o.timing,
  });
  const slots: FaultWorker[] = await Promise.all(
    Array.from({ length: o.workers }, (_, i) => spawnFaultWorker(config(`storm-${i + 1}`))),
  );
  const generation = slots.map(() => 0);
  const ids = await (o.enqueue ? o.enqueue() : enqueueRecords(env.queue, o.queueName, o.jobs, o.handlerMs));
  log(`enqueued ${ids.length} jobs`);
  const kills: Kill[] = [];
  // the storm: kill a random worker every few seconds until the queue is drained
  while (kills.length < o.maxKills) {
    const wait = o.killEveryMs[0] + Math.random() * (o.killEveryMs[1] - o.killEveryMs[0]);
    const deadline = performance.now() + wait;
    let left = await countLeft(env, o.queueName);
    while (left > 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(100, deadline - performance.now())));
      left = await countLeft(env, o.queueName);
    }
    if (left === 0) break;
    const slot = Math.floor(Math.random() * slots.length);
    const victim = slots[slot]!;
    const at = await dbNow(env.sql);
    const code = await victim.kill();
    if (code !== "SIGKILL") throw new Error(`worker ${victim.id} ended with ${code} before it was killed`);
    await backendsGone(env.sql, victim.id);
    const rows = await env.sql.unsafe(
      `select id::text, started_at is null as unstarted from ${env.s}.jobs where status = 'running' and worker_id = $1`,
      [victim.id],
    );
    const stranded = rows.map((r) => r.id as string);
    const unstarted = rows.filter((r) => r.unstarted).map((r) => r.id as string);
    const sameId = (kills.length + 1) % o.sameIdEvery === 0;
    kills.push({ victim: victim.id, at, stranded, unstarted, sameId });
    log(`kill ${kills.length}: ${victim.id} stranded ${stranded.length} (${left} left); replacement ${sameId ? "keeps its id" : "gets a new id"}`);
    const nextId = sameId ? victim.id : `storm-${slot + 1}-g${++generation[slot]!}`;
    slots[slot] = await spawnFaultWorker(config(nextId));
  }
  await until(async () => (await countLeft(env, o.queueName)) === 0, o.drainTimeoutMs, 100);
  const durationMs = Math.round(performance.now() - began);
  // A worker killed just before the drain ended may hold no job, so nothing else
  // brings its row to the reaper's attention: give the live workers' reaper its
  // bound (staleAfterMs + a reaper interval, and some) to remove it before they stop.
  const live = new Set(slots.map((w) => w.id));
  await until(async () => {
    const rows = await env.sql.unsafe(`select id from ${env.s}.workers`);
    return rows.every((r) => live.has(r.id as string));
  }, 3 * ((o.timing.staleAfterMs ?? 30_000) + (o.timing.reaperIntervalMs ?? 5_000)), 100);
  const exitCodes = await Promise.all(slots.map((w) => w.stop()));
  const [w] = await env.sql.unsafe(`select count(*)::int as n from ${env.s}.workers`);

  const history = await loadHistory(env.sql, env.schema, [o.queueName]);
  const result = audit(history, { ids, status: "completed" });
  const strandedBy = new Map<string, Kill>();
  for (const k of kills) for (const id of k.stranded) strandedBy.set(id, k);
  const unexplained = [...result.ranMoreThanOnce.keys()].filter((id) => !strandedBy.has(id));
  const reclaimMs = { reaper: [] as number[], restart: [] as number[] };
  const rerunDoneMs: number[] = [];
  const unrecorded: string[] = [];
  /** Stranded jobs whose WorkerLostError says "unstarted" when they had started, or the reverse. */
  const mislabeled: string[] = [];
  for (const [id, k] of strandedBy) {
    const job = history.jobs.get(id)!;
    const lost = job.errors.find((e) => e.name === "WorkerLostError" && e.worker === k.victim);
    if (k.unstarted.includes(id) !== (lost?.unstarted === true)) mislabeled.push(id);
    if (!lost) {
      unrecorded.push(id);
      continue;
    }
    (k.sameId ? reclaimMs.restart : reclaimMs.reaper).push(new Date(lost.at).getTime() - k.at);
    if (job.finishedAt) rerunDoneMs.push(job.finishedAt.getTime() - k.at);
  }
  return {
    ids, kills, history, audit: result, durationMs, reclaimMs, rerunDoneMs, unexplained, unrecorded, mislabeled, exitCodes,
    workersLeft: w!.n,
  };
}

const spread = (xs: number[]) => (xs.length === 0 ? null : { p50: Math.round(percentile(xs, 50)), max: Math.round(Math.max(...xs)) });

export function stormFigures(r: StormResult, o: StormOptions) {
  const stranded = r.kills.reduce((n, k) => n + k.stranded.length, 0);
  return {
    jobs: r.ids.length,
    workers: o.workers,
    concurrency: o.concurrency,
    timing: o.timing,
    kills: r.kills.length,
    killsReplacedUnderSameId: r.kills.filter((k) => k.sameId).length,
    strandedAtKills: stranded,
    strandedUnstarted: r.kills.reduce((n, k) => n + k.unstarted.length, 0),
    ranTwice: r.audit.ranMoreThanOnce.size,
    extraRuns: r.audit.extraRuns,
    lost: r.audit.missing.length + r.audit.wrongState.length,
    reclaimByReaperMs: spread(r.reclaimMs.reaper),
    reclaimAtRestartMs: spread(r.reclaimMs.restart),
    killToRerunDoneMs: spread(r.rerunDoneMs),
    durationMs: r.durationMs,
    jobsPerSecond: Math.round((r.ids.length / r.durationMs) * 1000),
  };
}

export type { Cluster };

export interface Producer {
  /** nonce -> job id, for every enqueue that returned. */
  acked: Map<string, string>;
  /** Enqueues that threw, with the error code. */
  failed: { nonce: string; code: string; message: string }[];
  /** Stops after the enqueue in flight and closes the pool. */
  stop(): Promise<void>;
  /** Holds off after the enqueue in flight (resolves once it is done); resume() goes on. */
  pause(): Promise<void>;
  resume(): void;
  /** Resolves once `n` more enqueues have been acknowledged. */
  acks(n: number, timeoutMs?: number): Promise<void>;
}

/**
 * A producer with its own pool that enqueues one job every `everyMs` until stopped,
 * each with a unique nonce in its payload, and records what was acknowledged and
 * what threw. Errors are expected while the database is away; the producer carries on.
 */
export function startProducer(url: string, schema: string, queueName: string, everyMs = 10, payloadMs = 5): Producer {
  const queue = createQueue({ connection: url, schema });
  const acked = new Map<string, string>();
  const failed: Producer["failed"] = [];
  const waiters = new Set<() => void>();
  let running = true;
  let paused: { promise: Promise<void>; open: () => void } | undefined;
  let idle: () => void = () => {};
  const loop = (async () => {
    while (running) {
      if (paused) {
        idle();
        await paused.promise;
        continue;
      }
      const nonce = crypto.randomUUID();
      try {
        const job = await queue.enqueue("record", { ms: payloadMs, nonce }, { queue: queueName });
        acked.set(nonce, job.id);
        for (const w of [...waiters]) w();
      } catch (error) {
        const e = error as { code?: string; message?: string };
        failed.push({ nonce, code: String(e.code ?? "?"), message: String(e.message ?? error) });
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    acked,
    failed,
    async stop() {
      running = false;
      paused?.open();
      await loop;
      await queue.close();
    },
    pause() {
      if (paused) return Promise.resolve();
      let open!: () => void;
      const promise = new Promise<void>((r) => (open = r));
      paused = { promise, open };
      return new Promise<void>((r) => (idle = r));
    },
    resume() {
      const p = paused;
      paused = undefined;
      p?.open();
    },
    acks(n, timeoutMs = 30_000) {
      const target = acked.size + n;
      return new Promise((resolve, reject) => {
        const check = () => {
          if (acked.size < target) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => (waiters.delete(check), reject(new Error(`the producer got no ${n} acks within ${timeoutMs} ms`))), timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}

/** Jobs whose payload carries one of these nonces: what landed although its enqueue threw. */
export async function landedDespiteError(env: Env, nonces: string[]): Promise<string[]> {
  if (nonces.length === 0) return [];
  const rows = await env.sql.unsafe(
    `select id::text from ${env.s}.jobs where payload->>'nonce' in (select jsonb_array_elements_text($1::text::jsonb))`,
    [JSON.stringify(nonces)],
  );
  return rows.map((r) => r.id as string);
}

/** pg_ctl restart -m fast|immediate, or a stop -m immediate held down for downMs before the start. */
export type Outage = { mode: "fast" | "immediate" } | { mode: "down"; downMs: number };

export interface RestartRound {
  mode: string;
  /** pg_ctl restart, from the call to the server accepting connections again. */
  outageMs: number;
  /** From the server being back to each worker having run a job enqueued for it alone. */
  resumeMs: number[];
  /** From the server being back to each worker's LISTEN being re-established (its listener:up). */
  listenUpMs: number[];
  /** A job for each worker, enqueued once every LISTEN was back and the workers idle: ms to complete (only a notification can deliver it). */
  notifyProbeMs: number[];
  /** LISTEN connections replaced by the health check in this round. */
  healthReplacements: number;
  /** From the server being back to the producer's next acknowledged enqueue. */
  producerBackMs: number;
}

export interface RestartResult {
  rounds: RestartRound[];
  audit: Audit;
  history: History;
  acked: number;
  enqueueErrors: number;
  landedDespiteError: number;
  workerErrors: number;
  /** Workers declared dead by a reaper during the run, and leases found lost (a worker held up longer than staleAfterMs). */
  reaped: number;
  leasesLost: number;
  /** Worker processes that died on their own (and were restarted under the same id). */
  crashes: Crash[];
  /** Jobs that ran more than once, by cause. */
  reruns: ReturnType<typeof explainReruns>;
  exitCodes: (number | string)[];
}

/**
 * Restarts the cluster under `workers` worker processes and a producer, once per
 * outage. Workers should sweep rarely (pollIntervalMs), so that getting back to work relies on their
 * reconnecting and re-establishing LISTEN, not on polling.
 */
export async function runRestarts(o: {
  env: Env;
  cluster: Cluster;
  queueName: string;
  workers: number;
  outages: Outage[];
  timing: Pick<FaultWorkerConfig, "heartbeatIntervalMs" | "staleAfterMs" | "reaperIntervalMs" | "pollIntervalMs" | "listenerHealthIntervalMs" | "listenerHealthTimeoutMs">;
  log?: (line: string) => void;
}): Promise<RestartResult> {
  const { env, cluster } = o;
  const log = o.log ?? (() => {});
  const probeQueue = (id: string) => `probe-${id}`;
  const workers = await Promise.all(
    Array.from({ length: o.workers }, (_, i) => `restart-${i + 1}`).map((id) =>
      spawnFaultWorker({
        url: env.url, schema: env.schema, id, queues: [o.queueName, probeQueue(id)], concurrency: 8, logLevel: "warn", ...o.timing,
      }, { supervise: true }),
    ),
  );
  const producer = startProducer(env.url, env.schema, o.queueName);
  const probes: string[] = [];
  /**
   * One job per worker, in a queue only that worker serves; resolves with each one's ms to
   * completion from `from`. Enqueued and watched through a new pool, so that the measure is
   * the workers' recovery and not that of a pool of the test's that also saw the outage.
   */
  async function probeEach(from: number, timeoutMs: number): Promise<number[]> {
    const fresh = postgres(env.url, { max: 2, onnotice: () => {} });
    const q = createQueue({ connection: fresh, schema: env.schema });
    try {
      return await Promise.all(
        workers.map(async (w) => {
          const job = (await until(() => q.enqueue("record", { probe: true }, { queue: probeQueue(w.id) }).catch(() => undefined), timeoutMs, 20))!;
          probes.push(job.id);
          await until(async () => (await q.getJob(job.id).catch(() => null))?.status === "completed", timeoutMs, 10);
          return Math.round(performance.now() - from);
        }),
      );
    } finally {
      await fresh.end({ timeout: 1 });
    }
  }
  const rounds: RestartRound[] = [];
  const crashes: { from: number; to: number }[] = [];
  try {
    await producer.acks(200);
    for (const outage of o.outages) {
      const mode = outage.mode === "down" ? `down ${outage.downMs} ms` : outage.mode;
      const eventMark = workers.map((w) => w.events.length);
      const down = performance.now();
      log(`outage: ${mode}`);
      let outageMs: number;
      const crashFrom = Date.now();
      if (outage.mode === "down") {
        await cluster.stop("immediate");
        // every worker has noticed (a failed heartbeat, claim or write) before the server comes back
        await Promise.all(workers.map((w, i) => w.event("worker:error", 30_000, eventMark[i])));
        const left = outage.downMs - (performance.now() - down);
        if (left > 0) await new Promise((r) => setTimeout(r, left)); // the length of the outage is the fault itself
        await cluster.start();
        outageMs = Math.round(performance.now() - down);
      } else {
        outageMs = await cluster.restart(outage.mode);
      }
      const back = performance.now();
      if (outage.mode !== "fast") crashes.push({ from: crashFrom, to: Date.now() });
      const producerBack = producer.acks(1, 60_000).then(() => Math.round(performance.now() - back));
      const [resumeMs, listenUpMs] = await Promise.all([
        probeEach(back, 60_000),
        Promise.all(
          // clamped at 0: a listener can be back before pg_ctl's own poll notices the server is up
          workers.map(async (w, i) => Math.max(0, Math.round((await w.event("listener:up", 60_000, eventMark[i])).seenAt - back))),
        ),
      ]);
      const producerBackMs = await producerBack;
      // every worker holds a LISTEN connection on the new server
      await until(async () => {
        const rows = await env.sql`
          select application_name from pg_stat_activity where application_name like 'pgpulse listener %' and query ilike 'listen%'`;
        return workers.every((w) => rows.some((r) => r.application_name === `pgpulse listener ${w.id}`));
      }, 30_000, 50);
      // idle the workers, then one job each: with the sweep far away only a notification delivers it
      await producer.pause();
      await until(async () => (await countLeft(env, o.queueName)) === 0, 60_000, 50);
      const notifyProbeMs = await probeEach(performance.now(), 30_000);
      const healthReplacements = workers.reduce((n, w, i) => n + w.events.slice(eventMark[i]).filter((e) => e.name === "listener:down").length, 0);
      rounds.push({ mode, outageMs, resumeMs, listenUpMs, notifyProbeMs, healthReplacements, producerBackMs });
      log(`${mode}: outage ${outageMs} ms, resume ${resumeMs.join("/")} ms, LISTEN up ${listenUpMs.join("/")} ms, notify probe ${notifyProbeMs.join("/")} ms, producer back ${producerBackMs} ms (${Math.round(performance.now() - down)} ms round)`);
      producer.resume();
      await producer.acks(200);
    }
  } catch (error) {
    for (const w of workers) log(w.tail(60));
    throw error;
  } finally {
    await producer.stop();
  }
  await until(async () => (await countLeft(env, o.queueName)) === 0, 60_000, 50);
  const exitCodes = await Promise.all(workers.map((w) => w.stop()));
  const history = await loadHistory(env.sql, env.schema, [o.queueName, ...workers.map((w) => probeQueue(w.id))]);
  const ids = [...producer.acked.values(), ...probes];
  const landed = await landedDespiteError(env, producer.failed.map((f) => f.nonce));
  const reruns = explainReruns(history, {
    crashes,
    leasesLost: workers.flatMap((w) => w.events.filter((e) => e.name === "worker:lease-lost").map((e) => ({ worker: w.id, at: e.data.at as number }))),
  });
  for (const id of reruns.unexplained) {
    const job = history.jobs.get(id)!;
    log(`unexplained rerun of job ${id}: ${JSON.stringify({ ...job, payload: undefined })}; runs ${JSON.stringify(history.runs.get(id))}; crashes ${crashes.map((c) => `${new Date(c.from).toISOString()}-${new Date(c.to).toISOString()}`)}`);
  }
  return {
    rounds,
    history,
    audit: audit(history, { ids, status: "completed" }),
    acked: producer.acked.size,
    enqueueErrors: producer.failed.length,
    landedDespiteError: landed.length,
    workerErrors: workers.reduce((n, w) => n + w.events.filter((e) => e.name === "worker:error").length, 0),
    reaped: workers.reduce((n, w) => n + w.events.filter((e) => e.name === "reaper:reaped").reduce((k, e) => k + ((e.data.workers as string[] | undefined)?.length ?? 0), 0), 0),
    leasesLost: workers.reduce((n, w) => n + w.events.filter((e) => e.name === "worker:lease-lost").length, 0),
    crashes: workers.flatMap((w) => w.crashes),
    reruns,
    exitCodes,
  };
}
