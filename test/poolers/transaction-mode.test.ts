// pgpulse through a real PgBouncer in transaction mode (test/support/pgbouncer.ts).
// The schema is migrated directly against Postgres; queues and workers then run
// through the bouncer, with LISTEN over a direct `listenConnection` or without it.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createQueue, type Logger, type Worker, type WorkerEvents } from "../../src/index.ts";
import { DATABASE_URL, deadline, testDb, until } from "../support/db.ts";
import { startPgBouncer } from "../support/pgbouncer.ts";

const bouncer = await startPgBouncer();
const db = await testDb(import.meta.url);
const { sql, schema } = db;
const s = `"${schema}"`;
/** The queue the application uses, through the bouncer. */
const queue = createQueue({ connection: bouncer.url, schema, pooler: "transaction" });

afterAll(async () => {
  await queue.close();
  await bouncer.stop();
});

interface Line {
  level: keyof Logger;
  message: string;
}

/** A Logger that keeps every line, for assertions on what was (not) logged. */
function capture() {
  const lines: Line[] = [];
  const at = (level: keyof Logger) => (message: string) => void lines.push({ level, message });
  const logger: Logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  return {
    logger,
    lines,
    /** warn and error lines, as "level: message". */
    problems: () => lines.filter((l) => l.level === "warn" || l.level === "error").map((l) => `${l.level}: ${l.message}`),
  };
}

/** Records a worker's claims and errors. */
function watch(w: Worker) {
  const claims: WorkerEvents["worker:claimed"][] = [];
  const errors: WorkerEvents["worker:error"][] = [];
  w.on("worker:claimed", (e) => claims.push(e));
  w.on("worker:error", (e) => errors.push(e));
  return { claims, errors, reasons: () => new Set(claims.filter((c) => c.jobs.length > 0).map((c) => c.reason)) };
}

/** Resolves once all `ids` have completed (by the worker's events), then checks the stored rows. */
async function allComplete(w: Worker, ids: string[], timeoutMs = 60_000) {
  const want = new Set(ids);
  const done = new Set<string>();
  const off = w.on("job:completed", (e) => want.has(e.job.id) && done.add(e.job.id));
  try {
    await until(async () => {
      if (done.size === want.size) return true;
      // a job that completed before we subscribed: read the rows
      const [r] = await sql.unsafe(`select count(*)::int as n from ${s}.jobs where id = any($1::bigint[]) and status = 'completed'`, [ids]);
      return r!.n === ids.length;
    }, timeoutMs, 50);
  } finally {
    off();
  }
  const rows = await sql.unsafe(`select status, count(*)::int as n from ${s}.jobs where id = any($1::bigint[]) group by status`, [ids]);
  expect(rows.map((r) => [r.status, r.n])).toEqual([["completed", ids.length]]);
}

/** 100 jobs enqueued one by one (concurrently, over the queue's pool) and 100 in bulk (four enqueueMany of 25). */
async function enqueue200(queueName: string, task: string): Promise<string[]> {
  const single = await Promise.all(Array.from({ length: 100 }, (_, n) => queue.enqueue(task, { n }, { queue: queueName })));
  const bulk = [];
  for (let b = 0; b < 4; b++) {
    bulk.push(...(await queue.enqueueMany(Array.from({ length: 25 }, (_, i) => ({ task, payload: { n: 100 + b * 25 + i }, queue: queueName })))));
  }
  const ids = [...single, ...bulk].map((j) => j.id);
  expect(new Set(ids).size).toBe(200);
  return ids;
}

const dist = fileURLToPath(new URL("../../dist/index.js", import.meta.url));

/**
 * A worker in a process of its own, on the built package (npm run test:poolers builds it first),
 * whose task "hang" prints "started <job id>" and never ends: a worker to kill with SIGKILL.
 */
async function spawnVictim(options: Record<string, unknown>) {
  if (!existsSync(dist)) throw new Error("dist/ is missing: run `npm run build` (npm run test:poolers does it first)");
  const id = `victim-${crypto.randomUUID().slice(0, 8)}`;
  const code = `
    const { createWorker } = await import(${JSON.stringify(pathToFileURL(dist).href)});
    const w = createWorker({
      ...JSON.parse(process.argv[1]),
      logger: "silent",
      tasks: { hang: (_p, ctx) => (process.stdout.write("started " + ctx.job.id + "\\n"), new Promise(() => {})) },
    });
    await w.start();
    process.stdout.write("ready " + w.id + "\\n");`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", code, JSON.stringify({ ...options, id })], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<number | string>((r) => child.once("exit", (c, sig) => r(c ?? sig ?? "unknown")));
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  const line = (pattern: RegExp) =>
    until(() => {
      if (child.exitCode !== null) throw new Error(`the victim worker exited (${child.exitCode}) before printing ${pattern}:\n${out}`);
      return out.split("\n").some((l) => pattern.test(l));
    }, 15_000);
  await line(/^ready /);
  return { id, child, exited, line };
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

describe("through PgBouncer in transaction mode", () => {
  it("without pooler: \"transaction\", a prepared statement reused in a transaction on another server connection fails", async () => {
    // One client connection; the insert statement gets prepared on the server connection it ran on
    // (the one an enqueue in a transaction sends: on the pool, an enqueue calls a procedure instead).
    const plain = createQueue({ connection: bouncer.url, schema, poolSize: 1 });
    const fixed = createQueue({ connection: bouncer.url, schema, pooler: "transaction", poolSize: 1 });
    try {
      await plain.sql.begin((tx) => plain.enqueue("noop", {}, { queue: "plain", tx }));
      // Server connections are closed as they are released: the next transaction runs on a fresh one,
      // as it would on any other server connection a busy bouncer hands out.
      await bouncer.admin(`RECONNECT ${bouncer.database}`);
      // Outside a transaction postgres.js re-prepares and retries; inside one the transaction is already aborted.
      await expect(plain.sql.begin((tx) => plain.enqueue("noop", {}, { queue: "plain", tx }))).rejects.toThrow(
        /prepared statement "\w+" does not exist/,
      );

      // The same with pooler: "transaction": nothing prepared, nothing to miss.
      await fixed.sql.begin((tx) => fixed.enqueue("noop", {}, { queue: "plain", tx }));
      await bouncer.admin(`RECONNECT ${bouncer.database}`);
      const job = await fixed.sql.begin((tx) => fixed.enqueue("noop", {}, { queue: "plain", tx }));
      expect((await fixed.getJob(job.id))!.status).toBe("queued");
    } finally {
      await plain.close();
      await fixed.close();
      await sql.unsafe(`delete from ${s}.jobs where queue = 'plain'`);
    }
  });

  it("with listenConnection: 200 jobs enqueued singly and in bulk all complete, woken by notifications, nothing logged", async () => {
    const log = capture();
    const w = db.worker({
      connection: bouncer.url,
      pooler: "transaction",
      listenConnection: DATABASE_URL,
      queues: ["listen"],
      concurrency: 20,
      // The sweep is out of the picture: jobs are claimed on notifications (and the claims they chain).
      pollIntervalMs: 600_000,
      logger: log.logger,
      tasks: { t: async (p: { n: number }) => p.n * 2 },
    });
    const seen = watch(w);
    await w.start();
    expect(w.listening).toBe(true);
    const ids = await enqueue200("listen", "t");
    await allComplete(w, ids);
    expect(seen.reasons()).toContain("notify");
    expect(seen.reasons()).not.toContain("sweep");
    expect((await queue.getJob(ids[7]!))!.result).toBe(14);
    expect(seen.errors).toEqual([]);
    expect(log.problems()).toEqual([]);
  });

  it("a workflow through the bouncer: enqueued in one statement, children released by their parents' ends, logs kept", async () => {
    const log = capture();
    const w = db.worker({
      connection: bouncer.url,
      pooler: "transaction",
      listenConnection: DATABASE_URL,
      queues: ["flow"],
      concurrency: 8,
      pollIntervalMs: 600_000,
      logIntervalMs: 5,
      logger: log.logger,
      tasks: {
        part: async (p: { n: number }, ctx) => {
          ctx.log(`part ${p.n}`);
          return p.n;
        },
        sum: async (_p, ctx) => (await ctx.parents()).reduce((t, p) => t + (p.result as number), 0),
      },
    });
    await w.start();
    {
      const parts = Array.from({ length: 20 }, (_, n) => ({ name: `p${n}`, task: "part", queue: "flow", payload: { n } }));
      const jobs = await queue.enqueueFlow([...parts, { name: "sum", task: "sum", queue: "flow", parents: parts.map((p) => p.name) }]);
      const done = await w.waitFor("job:completed", (e) => e.job.id === jobs.at(-1)!.id, AbortSignal.timeout(20_000));
      expect(done.result).toBe(190);
      expect((await queue.getJobLogs(jobs[3]!.id)).map((l) => l.message)).toEqual(["part 3"]);
      // following a job needs LISTEN, which the bouncer does not carry
      expect(() => queue.watch(jobs[0]!.id)).toThrow(expect.objectContaining({ code: "INVALID_STATE" }));
    }
    expect(log.problems()).toEqual([]);
  });

  it("without listenConnection: one warning that it polls, every job completes, no notifications, nothing else logged", async () => {
    const log = capture();
    const w = db.worker({
      connection: bouncer.url,
      pooler: "transaction",
      queues: ["poll"],
      concurrency: 20,
      pollIntervalMs: 50,
      pollIntervalMaxMs: 400,
      logger: log.logger,
      tasks: { t: async (p: { n: number }) => p.n },
    });
    const seen = watch(w);
    await w.start();
    expect(w.listening).toBe(false);
    await allComplete(w, await enqueue200("poll", "t"));
    // A second wave, after the worker went idle and its sweep backed off.
    const wave = await queue.enqueueMany(Array.from({ length: 20 }, (_, n) => ({ task: "t", payload: { n }, queue: "poll" })));
    await allComplete(w, wave.map((j) => j.id));

    const polling = log.problems().filter((p) => /polling/.test(p));
    expect(polling).toHaveLength(1);
    expect(polling[0]).toMatch(/^warn: /);
    expect(log.problems()).toEqual(polling);
    expect(seen.reasons()).not.toContain("notify");
    expect(seen.reasons()).not.toContain("listener up");
    expect(seen.reasons()).toContain("sweep");
    expect(seen.errors).toEqual([]);
  });

  it("enqueues inside the caller's transaction: commits with the caller's writes, and a rollback leaves nothing", async () => {
    await sql.unsafe(`create table if not exists ${s}.orders (id serial primary key, note text not null)`);
    const log = capture();
    const w = db.worker({
      connection: bouncer.url,
      pooler: "transaction",
      listenConnection: DATABASE_URL,
      queues: ["tx"],
      logger: log.logger,
      tasks: { ship: async (p: { order: number }) => ({ shipped: p.order }) },
    });
    await w.start();

    const { order, job, many, seenInside } = await queue.sql.begin(async (tx) => {
      const [o] = await tx.unsafe(`insert into ${s}.orders (note) values ('committed') returning id`);
      const job = await queue.enqueue("ship", { order: o!.id }, { queue: "tx", tx });
      const many = await queue.enqueueMany(
        [1, 2].map((k) => ({ task: "ship", payload: { order: o!.id * 10 + k }, queue: "tx" })),
        { tx },
      );
      // visible inside the transaction, through the same server connection
      const seenInside = await queue.getJob(job.id, { tx });
      return { order: o!.id as number, job, many, seenInside };
    });
    expect(seenInside?.status).toBe("queued");
    await allComplete(w, [job.id, ...many.map((j) => j.id)]);
    expect((await queue.getJob(job.id))!.result).toEqual({ shipped: order });

    const before = (await sql.unsafe(`select count(*)::int as n from ${s}.jobs where queue = 'tx-rollback'`))[0]!.n;
    const rolledBack = queue.sql.begin(async (tx) => {
      await tx.unsafe(`insert into ${s}.orders (note) values ('rolled back')`);
      await queue.enqueue("ship", { order: -1 }, { queue: "tx-rollback", tx });
      await queue.enqueueMany([{ task: "ship", payload: { order: -2 }, queue: "tx-rollback" }], { tx });
      throw new Error("the caller changed its mind");
    });
    await expect(rolledBack).rejects.toThrow("the caller changed its mind");
    expect(before).toBe(0);
    expect((await sql.unsafe(`select count(*)::int as n from ${s}.jobs where queue = 'tx-rollback'`))[0]!.n).toBe(0);
    expect((await sql.unsafe(`select count(*)::int as n from ${s}.orders where note = 'rolled back'`))[0]!.n).toBe(0);
    expect(log.problems()).toEqual([]);
  });

  it("runs the reaper, the scheduler and the pruner through the bouncer without an error", async () => {
    // The victim: a worker in a process of its own, through the bouncer, killed mid-job.
    const victim = await spawnVictim({
      connection: bouncer.url, schema, pooler: "transaction", queues: ["bg-victim"],
      pollIntervalMs: 50, heartbeatIntervalMs: 100, staleAfterMs: 1000,
    });
    try {
      const orphan = await queue.enqueue("hang", {}, { queue: "bg-victim" });
      await victim.line(new RegExp(`^started ${orphan.id}$`));
      victim.child.kill("SIGKILL");
      expect(await victim.exited).toBe("SIGKILL");

      const log = capture();
      const w = db.worker({
        connection: bouncer.url,
        pooler: "transaction",
        listenConnection: DATABASE_URL,
        queues: ["bg", "bg-victim"],
        heartbeatIntervalMs: 100,
        staleAfterMs: 1000,
        reaperIntervalMs: 100,
        scheduleIntervalMs: 100,
        schedules: [{ name: "every-second", cron: "* * * * * *", task: "tick", queue: "bg" }],
        retention: { completedMs: 0, failedMs: 0 },
        pruneIntervalMs: 200,
        logger: log.logger,
        tasks: { tick: async () => "tock", hang: async () => "rescued" },
      });
      const seen = watch(w);
      const reaped = w.waitFor("reaper:reaped", (e) => e.workers.includes(victim.id), deadline(30_000));
      const rescued = w.waitFor("job:completed", (e) => e.job.id === orphan.id, deadline(30_000));
      const ticks: Date[] = [];
      w.on("schedule:enqueued", (e) => e.name === "every-second" && ticks.push(...e.ticks));
      const tickJobs: string[] = [];
      w.on("job:completed", (e) => e.job.task === "tick" && tickJobs.push(e.job.id));
      const pruned = w.waitFor("jobs:pruned", (e) => e.deleted > 0, deadline(30_000));
      await w.start();

      expect((await reaped).jobs).toContainEqual({ id: orphan.id, status: "queued" });
      expect((await rescued).result).toBe("rescued");
      await until(() => tickJobs.length >= 2, 30_000);
      expect(ticks.length).toBeGreaterThanOrEqual(2);
      expect((await pruned).deleted).toBeGreaterThan(0);
      // retention 0: completed jobs go at the next prune
      await until(async () => (await queue.getJob(tickJobs[0]!)) === null, 30_000);
      await until(async () => (await queue.getJob(orphan.id)) === null, 30_000);

      expect(seen.errors).toEqual([]);
      expect(log.problems()).toEqual([]);
    } finally {
      if (victim.child.exitCode === null && victim.child.signalCode === null) victim.child.kill("SIGKILL");
      await victim.exited;
    }
  });

  it("measures enqueue-to-start p50 through the bouncer with listenConnection and direct (printed, not asserted)", async () => {
    const n = 40;
    async function measure(label: string, w: Worker, q: typeof queue, queueName: string): Promise<number> {
      let arrived: (() => void) | undefined;
      w.on("job:started", () => arrived?.());
      await w.start();
      const samples: number[] = [];
      for (let i = 0; i < n + 5; i++) {
        const at = new Promise<void>((r) => (arrived = r));
        const t0 = performance.now();
        await q.enqueue("t", { i }, { queue: queueName });
        await Promise.race([at, new Promise((_, rej) => deadline(10_000).addEventListener("abort", () => rej(new Error(`${label}: job ${i} not started`))))]);
        if (i >= 5) samples.push(performance.now() - t0); // the first five warm the pools
      }
      await w.stop();
      return median(samples);
    }
    const viaBouncer = await measure(
      "bouncer",
      db.worker({ connection: bouncer.url, pooler: "transaction", listenConnection: DATABASE_URL, queues: ["lat-bouncer"], pollIntervalMs: 600_000, tasks: { t: async () => 1 } }),
      queue,
      "lat-bouncer",
    );
    const direct = await measure(
      "direct",
      db.worker({ queues: ["lat-direct"], pollIntervalMs: 600_000, tasks: { t: async () => 1 } }),
      db.queue,
      "lat-direct",
    );
    console.log(
      `[poolers] enqueue-to-start p50 over ${n} jobs: through PgBouncer (transaction mode, listenConnection direct) ${viaBouncer.toFixed(2)} ms; direct ${direct.toFixed(2)} ms`,
    );
    expect(Number.isFinite(viaBouncer) && Number.isFinite(direct)).toBe(true);
  });
});
