// Workflows (jobs that wait for other jobs): pgpulse's enqueueFlow against
// BullMQ's FlowProducer on its PostgreSQL backend, no-op handlers, one worker
// process (the one that enqueues), the same concurrency for both.
//
// Shapes:
// - fanout: one root; N children, each with the root as parent; one final job
//   whose parents are all N children. BullMQ flows are trees (a job has at
//   most one parent, and a parent runs after its children), so there the
//   final job is the parent of the N children, and the fan-out from the root
//   is made the only way BullMQ allows: the root is a plain job, and when the
//   worker reports it completed, the flow (final <- N children) is added.
//   Its "root's end -> child's start" therefore includes adding that flow.
// - chain: M steps, step i+1 waits for step i. In BullMQ a nested tree M deep
//   (step 1 the deepest leaf, step M the top); if that fails, the deepest of
//   M/2, M/4, ... that works is measured instead, and the report says so.
//
// Times come from the database after the run: pgpulse's jobs.started_at and
// finished_at (microseconds, Postgres's clock; started_at is the claim's
// time, finished_at the time the end was written) and its job_deps edges;
// BullMQ's job.processed_at_ms and finished_at_ms (processedOn, finishedOn:
// whole milliseconds of the worker's Date.now(), taken just before the claim
// statement and just after the handler returned) and its parent_id column.
// One machine, so one clock.
//
//   npm --prefix bench run flows -- [--systems pgpulse,bullmq-pg] [--shapes fanout,chain]
//     [--fanout 10000] [--chain 1000] [--concurrency 16] [--rounds 2] [--pgpulse-dir DIR]
//     [--timeout-s 300] [--database-url URL] [--out DIR] [--no-write]
// Each (round, shape, system) runs in a process of its own, in a fresh schema
// dropped afterwards; a run that exceeds --timeout-s fails (and is killed 30 s
// later if it does not stop by itself). Results: results/<date>-flows.{md,json}.
import { spawn, execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { ensureDatabase, otherActivity, serverFacts } from "./db.mjs";
import { median, summarize } from "./stats.mjs";
import { loadPgpulse } from "./systems/pgpulse.mjs";

const SYSTEMS = ["pgpulse", "bullmq-pg"];
const SHAPES = ["fanout", "chain"];
const HELP = `npm --prefix bench run flows -- [options]
  --systems a,b       ${SYSTEMS.join(", ")} (both)
  --shapes a,b        ${SHAPES.join(", ")} (both)
  --fanout N          children between the root and the final job (10000)
  --chain M           steps of the chain (1000)
  --concurrency C     handlers at once, both systems (16)
  --rounds R          rounds; the order of the systems alternates (2)
  --pgpulse-dir DIR   measure the pgpulse built in DIR/dist (default: the bench's pgpulse dependency, the repository)
  --timeout-s S       a run taking longer fails (300)
  --database-url URL  (postgres://postgres@127.0.0.1:5432/pgpulse_bench, or BENCH_DATABASE_URL)
  --out DIR           where results go (bench/results/)
  --no-write          print only`;

const { values } = parseArgs({
  options: {
    systems: { type: "string", default: SYSTEMS.join(",") },
    shapes: { type: "string", default: SHAPES.join(",") },
    fanout: { type: "string", default: "10000" },
    chain: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "16" },
    rounds: { type: "string", default: "2" },
    "pgpulse-dir": { type: "string" },
    "timeout-s": { type: "string", default: "300" },
    "database-url": { type: "string", default: process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/pgpulse_bench" },
    out: { type: "string" },
    "no-write": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
    // internal: one run, in a process of its own
    "child-spec": { type: "string" },
    "child-out": { type: "string" },
  },
});

const epochNow = () => performance.timeOrigin + performance.now();
const round2 = (x) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 100) / 100);

// ---------------------------------------------------------------------------
// One run (child process)
// ---------------------------------------------------------------------------

/** Rejects once the run's deadline passes, naming what it waited for. */
function within(promise, deadline, what) {
  let timer;
  const ms = Math.max(0, deadline - Date.now());
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function poll(check, deadline, what) {
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The graph as pgpulse's enqueueFlow takes it. The job whose end is awaited has payload { last: true }. */
function pgpulseSpecs(shape, n) {
  if (shape === "fanout") {
    const names = Array.from({ length: n }, (_, i) => `c${i + 1}`);
    return [
      { name: "root", task: "noop", payload: {} },
      ...names.map((name) => ({ name, task: "noop", payload: {}, parents: ["root"] })),
      { name: "final", task: "noop", payload: { last: true }, parents: names },
    ];
  }
  return Array.from({ length: n }, (_, i) => ({
    name: `s${i + 1}`,
    task: "noop",
    payload: i === n - 1 ? { last: true } : {},
    ...(i > 0 ? { parents: [`s${i}`] } : {}),
  }));
}

async function runPgpulse({ shape, n, url, schema, concurrency, pgpulseDir, timeoutMs }) {
  const deadline = Date.now() + timeoutMs;
  const pp = await loadPgpulse(pgpulseDir);
  const admin = postgres(url, { max: 1, onnotice: () => {}, connection: { application_name: "pgpulse-bench flows" } });
  await admin.unsafe(`drop schema if exists "${schema}" cascade`);
  await pp.migrate({ connection: url, schema });
  const queue = pp.createQueue({ connection: url, schema });
  let worker;
  try {
    if (typeof queue.enqueueFlow !== "function") throw new Error(`this pgpulse build (${pgpulseDir ?? "the bench's dependency"}) has no queue.enqueueFlow`);
    let handled = 0;
    let lastRan;
    let jobFailed;
    const lastRanP = new Promise((res, rej) => ((lastRan = res), (jobFailed = rej)));
    worker = pp.createWorker({
      connection: url, schema, concurrency, logger: "warn",
      tasks: { noop: async (payload) => void (++handled, payload?.last && lastRan()) },
    });
    worker.on("job:failed", ({ job, error }) => jobFailed(new Error(`job ${job.id} failed: ${error?.message ?? JSON.stringify(error)}`)));
    worker.on("worker:error", ({ error, during }) => console.error(`[pgpulse worker error during ${during}] ${error?.message ?? error}`));
    await worker.start();

    const specs = pgpulseSpecs(shape, n);
    const t0 = epochNow();
    const jobs = await queue.enqueueFlow(specs);
    const t1 = epochNow();
    if (!Array.isArray(jobs) || jobs.length !== specs.length) throw new Error(`enqueueFlow returned ${jobs?.length} jobs for ${specs.length} specs`);
    const statusesAtEnqueue = countBy(jobs.map((j) => j.status));
    const ids = jobs.map((j) => String(j.id));
    await within(lastRanP, deadline, () => `the last job's handler (${handled} of ${specs.length} jobs handled)`);
    const lastId = ids.at(-1);
    await poll(
      async () => (await admin.unsafe(`select finished_at is not null as done from "${schema}".jobs where id = $1`, [lastId]))[0]?.done,
      deadline,
      "the last job's end to be written",
    );
    const tSeen = epochNow();
    await worker.stop();
    worker = null;

    const rows = await admin.unsafe(`
      select id::text as id, status::text as status,
             (extract(epoch from started_at) * 1000)::float8 as start,
             (extract(epoch from finished_at) * 1000)::float8 as end
        from "${schema}".jobs`);
    const deps = await admin.unsafe(`select parent_id::text as before, child_id::text as after from "${schema}".job_deps`);
    const times = new Map(rows.map((r) => [r.id, r]));
    const graph = shape === "fanout"
      ? { root: ids[0], final: ids.at(-1), children: ids.slice(1, -1) }
      : { steps: ids };
    return {
      ...measure({ shape, n, t0, t1, tSeen, times, edges: deps, graph, handled, statuses: countBy(rows.map((r) => r.status)) }),
      statusesAtEnqueue,
      enqueued: specs.length,
    };
  } finally {
    await worker?.stop().catch((e) => console.error(`[pgpulse] stop: ${e.message}`));
    await queue.close().catch((e) => console.error(`[pgpulse] close: ${e.message}`));
    await admin.unsafe(`drop schema if exists "${schema}" cascade`).catch((e) => console.error(`[pgpulse] drop: ${e.message}`));
    await admin.end({ timeout: 5 });
  }
}

const BULLMQ_QUEUE = "flows";

async function runBullmq({ shape, n, url, schema, concurrency, timeoutMs }) {
  const deadline = Date.now() + timeoutMs;
  const { createPostgresBackend, FlowProducer, Queue, Worker } = await import("bullmq");
  const admin = postgres(url, { max: 1, onnotice: () => {}, connection: { application_name: "pgpulse-bench flows" } });
  await admin.unsafe(`drop schema if exists "${schema}" cascade`);
  // migrate: true lets BullMQ create its schema (it refuses an uninitialised one otherwise)
  const connection = { connectionString: url, schema, migrate: true };
  const queue = new Queue(BULLMQ_QUEUE, { connection }, createPostgresBackend);
  const flows = new FlowProducer({ connection }, createPostgresBackend);
  let worker;
  try {
    await queue.waitUntilReady();
    await flows.waitUntilReady();
    let handled = 0;
    let lastDone;
    let failed;
    const lastDoneP = new Promise((res, rej) => ((lastDone = res), (failed = rej)));
    worker = new Worker(BULLMQ_QUEUE, async () => void ++handled, { connection, concurrency }, createPostgresBackend);
    worker.on("error", (e) => console.error(`[bullmq error] ${e.message}`));
    worker.on("failed", (job, e) => failed(new Error(`job ${job?.name} ${job?.id} failed: ${e?.message}`)));
    let fanAdd = null; // the fan-out's flow, added once the root completed
    worker.on("completed", (job) => {
      if (job.data?.last) lastDone();
      if (shape === "fanout" && job.name === "root") {
        fanAdd = (async () => {
          const start = epochNow();
          await flows.add({
            name: "final", queueName: BULLMQ_QUEUE, data: { last: true },
            children: Array.from({ length: n }, () => ({ name: "child", queueName: BULLMQ_QUEUE, data: {} })),
          });
          return { start, end: epochNow() };
        })();
        fanAdd.catch((e) => failed(new Error(`adding the fan-out's flow failed: ${e.stack ?? e}`)));
      }
    });
    await worker.waitUntilReady();

    let t0;
    let t1;
    let rootAddMs = null;
    if (shape === "fanout") {
      t0 = epochNow();
      await queue.add("root", {});
      rootAddMs = epochNow() - t0;
    } else {
      // step 1 the deepest leaf, step n the top of the tree (and the last to run)
      let node = { name: "s1", queueName: BULLMQ_QUEUE, data: n === 1 ? { last: true } : {} };
      for (let i = 2; i <= n; i++) node = { name: `s${i}`, queueName: BULLMQ_QUEUE, data: i === n ? { last: true } : {}, children: [node] };
      t0 = epochNow();
      await flows.add(node);
      t1 = epochNow();
    }
    await within(lastDoneP, deadline, () => `the last job to complete (${handled} jobs handled)`);
    const tSeen = epochNow();
    let flowAdd = null;
    if (shape === "fanout") {
      flowAdd = await fanAdd;
      t1 = flowAdd.end; // "enqueue" for BullMQ's fan-out: see below
    }
    await worker.close();
    worker = null;

    const rows = await admin.unsafe(
      `select id, name, state::text as status, processed_at_ms::float8 as start, finished_at_ms::float8 as end, parent_id
         from "${schema}".job where queue = $1`,
      [BULLMQ_QUEUE],
    );
    const times = new Map(rows.map((r) => [r.id, r]));
    // A BullMQ parent runs after its children: the edge runs child -> parent.
    const edges = rows.filter((r) => r.parent_id !== null).map((r) => ({ before: r.id, after: r.parent_id }));
    let graph;
    if (shape === "fanout") {
      const root = rows.find((r) => r.name === "root").id;
      const final = rows.find((r) => r.name === "final").id;
      const children = rows.filter((r) => r.name === "child").map((r) => r.id);
      // The root -> child edges are not in BullMQ's tables (no job has two
      // parents' worth of structure); they are what the run did.
      for (const c of children) edges.push({ before: root, after: c });
      graph = { root, final, children };
    } else {
      const byName = new Map(rows.map((r) => [r.name, r.id]));
      graph = { steps: Array.from({ length: n }, (_, i) => byName.get(`s${i + 1}`)) };
    }
    const m = measure({ shape, n, t0, t1, tSeen, times, edges, graph, handled, statuses: countBy(rows.map((r) => r.status)) });
    if (shape === "fanout") {
      // Enqueue here is the FlowProducer.add of final + n children, made after
      // the root completed; the root's own queue.add is apart.
      m.enqueueMs = round2(flowAdd.end - flowAdd.start);
      m.rootAddMs = round2(rootAddMs);
      m.rootEndToFlowAddStartMs = round2(flowAdd.start - times.get(graph.root).end);
    }
    return { ...m, enqueued: rows.length };
  } finally {
    await worker?.close().catch((e) => console.error(`[bullmq] worker close: ${e.message}`));
    await flows.close().catch((e) => console.error(`[bullmq] flow producer close: ${e.message}`));
    await queue.close().catch((e) => console.error(`[bullmq] queue close: ${e.message}`));
    await new Promise((r) => setTimeout(r, 250)); // stragglers land before the drop
    await admin.unsafe(`drop schema if exists "${schema}" cascade`).catch((e) => console.error(`[bullmq] drop: ${e.message}`));
    await admin.end({ timeout: 5 });
  }
}

function countBy(xs) {
  const out = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

/**
 * The figures of one run from the jobs' start and end times (ms since the
 * epoch) and the edges (before -> after: after waited for before).
 * t0: just before the graph's first enqueue call; t1: when the graph was in.
 */
function measure({ shape, n, t0, t1, tSeen, times, edges, graph, handled, statuses }) {
  const expected = shape === "fanout" ? n + 2 : n;
  const notDone = [...times.values()].filter((r) => r.end === null || r.start === null || r.status !== "completed");
  if (times.size !== expected || notDone.length > 0) {
    throw new Error(`expected ${expected} completed jobs, found ${times.size} rows, ${notDone.length} not completed or without times (${JSON.stringify(statuses)})`);
  }
  const t = (id, k) => {
    const r = times.get(id);
    if (!r) throw new Error(`no row for job ${id}`);
    return r[k];
  };
  const gap = (e) => t(e.after, "start") - t(e.before, "end");
  const base = { handled, statuses, enqueueMs: round2(t1 - t0), clientSeenMs: round2(tSeen - t0) };
  if (shape === "fanout") {
    const out = edges.filter((e) => e.before === graph.root);
    const into = edges.filter((e) => e.after === graph.final);
    if (out.length !== n || into.length !== n) throw new Error(`expected ${n} edges out of the root and ${n} into the final job, found ${out.length} and ${into.length}`);
    const childStarts = graph.children.map((c) => t(c, "start"));
    const childEnds = graph.children.map((c) => t(c, "end"));
    const lastChildEnd = Math.max(...childEnds);
    const firstChildStart = Math.min(...childStarts);
    return {
      ...base,
      totalMs: round2(t(graph.final, "end") - t0),
      rootEndMs: round2(t(graph.root, "end") - t0),
      rootToChildStart: summarize(out.map(gap)),
      childrenMs: round2(lastChildEnd - firstChildStart),
      childrenPerSec: Math.round((n / (lastChildEnd - firstChildStart)) * 1000),
      fanInMs: round2(t(graph.final, "start") - lastChildEnd),
      edges: edges.length,
    };
  }
  if (edges.length !== n - 1) throw new Error(`expected ${n - 1} edges in a chain of ${n}, found ${edges.length}`);
  return {
    ...base,
    depth: n,
    totalMs: round2(t(graph.steps.at(-1), "end") - t0),
    step: summarize(edges.map(gap)),
    // a step's start to the next one's: the whole hand-off, whatever each
    // system's end time stands for
    period: summarize(edges.map((e) => t(e.after, "start") - t(e.before, "start"))),
    edges: edges.length,
  };
}

// ---------------------------------------------------------------------------
// The runner (parent process)
// ---------------------------------------------------------------------------

async function main() {
  if (values.help) {
    console.log(HELP);
    return;
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const list = (s, known, what) => {
    const xs = s.split(",").map((x) => x.trim()).filter(Boolean);
    for (const x of xs) if (!known.includes(x)) throw new Error(`unknown ${what} '${x}' (known: ${known.join(", ")})`);
    return xs;
  };
  const int = (name, min = 1) => {
    const v = Number(values[name]);
    if (!Number.isInteger(v) || v < min) throw new Error(`--${name} must be an integer >= ${min}, got '${values[name]}'`);
    return v;
  };
  const config = {
    systems: list(values.systems, SYSTEMS, "system"),
    shapes: list(values.shapes, SHAPES, "shape"),
    fanout: int("fanout"),
    chain: int("chain", 2),
    concurrency: int("concurrency"),
    rounds: int("rounds"),
    timeoutS: int("timeout-s"),
    pgpulseDir: values["pgpulse-dir"] ? resolve(values["pgpulse-dir"]) : null,
    databaseUrl: values["database-url"],
    out: values.out ? resolve(values.out) : join(here, "..", "results"),
  };

  if (config.systems.includes("pgpulse")) {
    // Fail at once, not once per run, with a build that has no workflows.
    const pp = await loadPgpulse(config.pgpulseDir);
    const q = pp.createQueue({ connection: config.databaseUrl, schema: "flows_probe" });
    const has = typeof q.enqueueFlow === "function";
    await q.close();
    if (!has) {
      console.error(`the pgpulse build ${config.pgpulseDir ?? "of the bench's dependency (the repository's dist/)"} has no queue.enqueueFlow: build one with workflows, or leave pgpulse out (--systems bullmq-pg)`);
      process.exit(2);
    }
  }

  await ensureDatabase(config.databaseUrl);
  const sql = postgres(config.databaseUrl, { max: 1, onnotice: () => {}, connection: { application_name: "pgpulse-bench flows runner" } });
  const server = await serverFacts(sql);
  const pgpulseDir = config.pgpulseDir ?? join(here, "..", "..");
  const git = (...args) => {
    try {
      return execFileSync("git", ["-C", pgpulseDir, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return null;
    }
  };
  const readOr = (file, fallback) => {
    try {
      return readFileSync(file, "utf8");
    } catch {
      return fallback;
    }
  };
  const version = (name) => JSON.parse(readFileSync(join(here, "..", "node_modules", name, "package.json"), "utf8")).version;
  const meta = {
    date: new Date().toISOString(),
    command: `npm --prefix bench run flows -- ${process.argv.slice(2).join(" ")}`.trim(),
    config,
    machine: { cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, platform: process.platform },
    server,
    pgpulse: {
      dir: pgpulseDir,
      commit: git("rev-parse", "--short", "HEAD") ?? readOr(join(pgpulseDir, "COMMIT"), "unknown").trim().slice(0, 7),
      dirty: git("status", "--porcelain", "--", "src", "sql") ? true : false,
    },
    versions: Object.fromEntries(["bullmq", "pg", "postgres"].map((name) => [name, version(name)])),
    failures: [],
    busy: [],
    notes: [],
  };

  const me = fileURLToPath(import.meta.url);
  const work = mkdtempSync(join(tmpdir(), "pgpulse-flows-"));
  const runs = [];
  // BullMQ's chain depth: lowered (halved) if a tree as deep as --chain fails.
  let bullmqDepth = config.chain;
  const started = Date.now();
  const total = config.rounds * config.shapes.length * config.systems.length;
  let k = 0;
  console.log(`${total} runs: ${config.systems.join(", ")} × ${config.shapes.join(", ")} (fan-out ${config.fanout}, chain ${config.chain}), concurrency ${config.concurrency}, ${config.rounds} round(s)`);
  for (let round = 1; round <= config.rounds; round++) {
    const order = round % 2 ? config.systems : [...config.systems].reverse();
    for (const shape of config.shapes) {
      for (const system of order) {
        k++;
        let n = shape === "fanout" ? config.fanout : system === "bullmq-pg" ? bullmqDepth : config.chain;
        for (;;) {
          const run = await runOne({ round, shape, system, n });
          runs.push(run);
          const elapsed = Math.round((Date.now() - started) / 1000);
          console.log(`[${k}/${total} r${round} ${elapsed}s] ${shape} ${system}${n !== (shape === "fanout" ? config.fanout : config.chain) ? ` (${n})` : ""}: ${run.error ? `FAILED: ${run.error.split("\n")[0]}` : headline(shape, run.result)} (${run.seconds ?? "?"} s)`);
          if (run.otherBackends > 0) meta.busy.push(`round ${round} ${shape} ${system} (${run.otherBackends})`);
          // A BullMQ chain as deep as asked failed: try half as deep (a note, not
          // a failure of the command, unless no depth works).
          if (run.error && shape === "chain" && system === "bullmq-pg" && !run.timedOut && n >= 4) {
            const failedAt = n;
            n = Math.floor(n / 2);
            bullmqDepth = n;
            meta.notes.push(`BullMQ's chain failed at depth ${failedAt} (${run.error.split("\n")[0]}); trying ${n}`);
            continue;
          }
          if (run.error) meta.failures.push(`round ${round} ${shape} ${system} (${n}): ${run.error.split("\n")[0]}`);
          break;
        }
      }
    }
  }
  await sql.end({ timeout: 5 });
  rmSync(work, { recursive: true, force: true });

  const medians = {};
  for (const shape of config.shapes) {
    medians[shape] = {};
    for (const system of config.systems) {
      const ok = runs.filter((r) => r.shape === shape && r.system === system && !r.error);
      // the chain's depth may have been lowered: the median is of the deepest that worked
      const deepest = Math.max(...ok.map((r) => r.n));
      medians[shape][system] = ok.length ? { runs: ok.filter((r) => r.n === deepest).length, n: deepest, ...medianOf(ok.filter((r) => r.n === deepest).map((r) => r.result)) } : null;
    }
  }
  const loads = runs.map((r) => r.loadBefore);
  meta.loadBefore = { min: Math.min(...loads), max: Math.max(...loads) };
  meta.seconds = Math.round((Date.now() - started) / 1000);
  const md = markdown({ meta, medians, config });
  console.log(`\n${md}`);
  if (!values["no-write"]) {
    mkdirSync(config.out, { recursive: true });
    const stamp = meta.date.slice(0, 16).replace(":", "");
    const base = join(config.out, `${stamp}-flows`);
    writeFileSync(`${base}.json`, JSON.stringify({ meta, medians, runs }, null, 2));
    writeFileSync(`${base}.md`, md);
    console.log(`Wrote ${base}.json and ${base}.md`);
  }
  console.log(`${Math.round((Date.now() - started) / 1000)} s`);
  process.exitCode = meta.failures.length ? 1 : 0;

  async function runOne({ round, shape, system, n }) {
    const schema = `flows_${shape}_${system.replaceAll("-", "_")}_${process.pid}_${runs.length}`;
    const out = join(work, `${runs.length}.json`);
    const load = loadavg()[0];
    const busyBefore = await otherActivity(sql);
    const timeoutMs = config.timeoutS * 1000;
    const spec = { system, shape, n, url: config.databaseUrl, schema, concurrency: config.concurrency, pgpulseDir: config.pgpulseDir, timeoutMs };
    let timedOut = false;
    const code = await new Promise((res) => {
      const child = spawn(process.execPath, [me, "--child-spec", JSON.stringify(spec), "--child-out", out], { stdio: ["ignore", "inherit", "inherit"] });
      // The run fails by itself at its deadline; this is for one that hangs regardless.
      const timer = setTimeout(() => ((timedOut = true), child.kill("SIGKILL")), timeoutMs + 30_000);
      child.on("exit", (c, signal) => (clearTimeout(timer), res(signal ?? c)));
    });
    let run;
    try {
      run = JSON.parse(readFileSync(out, "utf8"));
    } catch {
      run = { error: timedOut ? `killed after ${config.timeoutS + 30} s` : `the run's process exited with ${code} and no result` };
    }
    if (run.error?.includes("timed out waiting")) timedOut = true;
    // whatever happened in the run, its schema goes
    await sql.unsafe(`drop schema if exists "${schema}" cascade`).catch((e) => console.error(`drop ${schema}: ${e.message}`));
    const busyAfter = await otherActivity(sql);
    return { round, shape, system, n, ...run, timedOut, loadBefore: round2(load), otherBackends: Math.max(busyBefore, busyAfter) };
  }
}

function headline(shape, r) {
  if (shape === "fanout") {
    return `total ${fmt(r.totalMs)} ms, enqueue ${fmt(r.enqueueMs)} ms, root end -> child start p50 ${fmt(r.rootToChildStart.p50)} p99 ${fmt(r.rootToChildStart.p99)} ms, fan-in ${fmt(r.fanInMs)} ms`;
  }
  return `total ${fmt(r.totalMs)} ms, enqueue ${fmt(r.enqueueMs)} ms, end -> next start p50 ${fmt(r.step.p50)} p99 ${fmt(r.step.p99)} ms, start -> next start p50 ${fmt(r.period.p50)} p99 ${fmt(r.period.p99)} ms`;
}

/** Median of every numeric leaf across results of the same shape. */
function medianOf(results) {
  const walk = (objs) => {
    const first = objs[0];
    if (typeof first === "number") return round2(median(objs));
    if (first && typeof first === "object" && !Array.isArray(first)) {
      const out = {};
      for (const key of Object.keys(first)) out[key] = walk(objs.map((o) => o?.[key]));
      return out;
    }
    return first;
  };
  return walk(results);
}

function fmt(x, digits = 1) {
  if (x === null || x === undefined) return "—";
  if (Math.abs(x) >= 100) return Math.round(x).toLocaleString("en-US");
  return x.toFixed(digits);
}

function markdown({ meta, medians, config }) {
  const { systems } = config;
  const lines = [];
  const label = { pgpulse: `pgpulse (${meta.pgpulse.commit}${meta.pgpulse.dirty ? ", dirty" : ""})`, "bullmq-pg": `BullMQ ${meta.versions.bullmq} (Postgres backend)` };
  lines.push(`# Workflows: pgpulse and BullMQ flows`, "");
  lines.push(`${meta.date.slice(0, 16).replace("T", " ")} UTC, \`${meta.command}\``, "");
  lines.push(`No-op handlers, one worker process (the one that enqueues), concurrency ${config.concurrency}; ${meta.machine.cores} cores, Node ${meta.machine.node}, ${meta.server.version.split(" on ")[0]}. Medians of ${config.rounds} round(s); each run in its own process and a fresh schema.`, "");
  const table = (m, rows) => {
    lines.push(`| | ${systems.map((s) => label[s]).join(" | ")} |`, `|---|${systems.map(() => "---:").join("|")}|`);
    for (const [name, get] of rows) lines.push(`| ${name} | ${systems.map((s) => (m[s] ? get(m[s]) : "failed")).join(" | ")} |`);
    lines.push("");
  };
  const ms = (x) => (x === null || x === undefined ? "—" : `${fmt(x)} ms`);
  if (medians.fanout) {
    lines.push(`## Fan-out and fan-in: 1 root, ${config.fanout.toLocaleString("en-US")} children, 1 final job`, "");
    table(medians.fanout, [
      ["total: enqueue to the final job's end", (r) => ms(r.totalMs)],
      ["enqueue of the graph", (r) => ms(r.enqueueMs)],
      ["root's end to a child's start, p50", (r) => ms(r.rootToChildStart.p50)],
      ["root's end to a child's start, p99", (r) => ms(r.rootToChildStart.p99)],
      ["root's end to a child's start, max", (r) => ms(r.rootToChildStart.max)],
      ["first child's start to last child's end", (r) => `${ms(r.childrenMs)} (${Math.round(r.childrenPerSec).toLocaleString("en-US")} jobs/s)`],
      ["last child's end to the final job's start", (r) => ms(r.fanInMs)],
      ["runs", (r) => String(r.runs)],
    ]);
    if (systems.includes("bullmq-pg")) {
      lines.push(
        `BullMQ: a flow is a tree (a job has one parent, and a parent runs after its children), so the fan-out from one root to ${config.fanout.toLocaleString("en-US")} children cannot be enqueued up front. What ran: the root is a plain job (\`queue.add\`); when the worker reports it completed, \`FlowProducer.add\` adds the final job with the ${config.fanout.toLocaleString("en-US")} children under it (the fan-in is that parent). So BullMQ's "enqueue of the graph" is that \`FlowProducer.add\`, made after the root ended, and its "root's end to a child's start" includes it${medians.fanout["bullmq-pg"] ? ` (the root's end to the add's start: ${ms(medians.fanout["bullmq-pg"].rootEndToFlowAddStartMs)}; the root's \`queue.add\`: ${ms(medians.fanout["bullmq-pg"].rootAddMs)})` : ""}. pgpulse enqueues all ${(config.fanout + 2).toLocaleString("en-US")} jobs in one \`enqueueFlow\` before anything runs.`,
        "",
      );
    }
  }
  if (medians.chain) {
    lines.push(`## Chain of ${config.chain.toLocaleString("en-US")} steps`, "");
    const m = medians.chain;
    table(m, [
      ["steps", (r) => r.n.toLocaleString("en-US")],
      ["total: enqueue to the last step's end", (r) => ms(r.totalMs)],
      ["enqueue of the chain", (r) => ms(r.enqueueMs)],
      ["a step's end to the next one's start, p50", (r) => ms(r.step.p50)],
      ["a step's end to the next one's start, p99", (r) => ms(r.step.p99)],
      ["a step's end to the next one's start, max", (r) => ms(r.step.max)],
      ["a step's start to the next one's start, p50", (r) => ms(r.period.p50)],
      ["a step's start to the next one's start, p99", (r) => ms(r.period.p99)],
      ["total per step", (r) => ms(r.totalMs / r.n)],
      ["runs", (r) => String(r.runs)],
    ]);
    if (systems.includes("bullmq-pg")) {
      const b = m["bullmq-pg"];
      lines.push(
        b && b.n < config.chain
          ? `BullMQ: a chain is a tree nested as deep as the chain is long; at ${config.chain.toLocaleString("en-US")} it failed (see the notes below), and ${b.n.toLocaleString("en-US")} was the deepest that worked of those tried (halving); its column is that chain.`
          : `BullMQ: the chain is one \`FlowProducer.add\` of a tree nested ${(b?.n ?? config.chain).toLocaleString("en-US")} deep (step 1 the deepest leaf, the last step at the top).`,
        "",
      );
    }
  }
  lines.push(
    "**Times.** pgpulse: `started_at` and `finished_at` of its `jobs` table, Postgres's clock, microseconds: `started_at` is the time of the claim's transaction, " +
      "`finished_at` that of the transaction that wrote the end (a worker writes ends in batches); so a parent's end to its child's start spans writing the end, the notification and the claim. Edges from `job_deps`.",
    "",
    "BullMQ: `processed_at_ms` and `finished_at_ms` of its `job` table (`processedOn`, `finishedOn`): the worker's `Date.now()`, **whole milliseconds** (its gaps are multiples of 1 ms), " +
      "`finishedOn` taken when the handler returned, `processedOn` just before the claim statement. Edges from `parent_id`. " +
      "A BullMQ worker completes a job and claims its next one in one statement (`move_to_completed_fetch`), both times read before it: when the completion releases a parent and the same statement claims it, " +
      "the parent's `processedOn` is the child's `finishedOn` to the millisecond, and the hand-off's cost does not show in \"end to start\" (the chain's and the fan-in's 0 ms). " +
      "The chain's start-to-start time and the totals include it. The fan-in: each child's completion takes an advisory lock on its parent and updates the parent's row (`pending_deps`), so the completions of one parent's children run one at a time.",
    "",
    "The totals run from the client's clock just before the first enqueue call to the last job's recorded end (one machine, one clock).",
    "",
  );
  if (meta.notes.length) lines.push("**Notes.**", "", ...meta.notes.map((n) => `- ${n}`), "");
  if (meta.failures.length) lines.push("**Failures.**", "", ...meta.failures.map((f) => `- ${f}`), "");
  lines.push(`The 1-minute load average before each run was ${meta.loadBefore.min}–${meta.loadBefore.max} (${meta.machine.cores} cores); the whole command took ${meta.seconds} s.`, "");
  if (meta.busy.length) lines.push(`Runs during which other clients of the server were active: ${meta.busy.join(", ")}.`, "");
  return lines.join("\n");
}

// (last: everything above is declared by now)
if (values["child-spec"] !== undefined) {
  const spec = JSON.parse(values["child-spec"]);
  const started = epochNow();
  let result;
  let error;
  // A library finishing a write after its stop() resolved must not take the result down.
  process.on("unhandledRejection", (e) => console.error(`[${spec.system} ${spec.shape}] after the fact: ${e?.stack ?? e}`));
  try {
    result = await (spec.system === "pgpulse" ? runPgpulse : runBullmq)(spec);
  } catch (e) {
    error = e?.stack ?? String(e);
    console.error(`[${spec.system} ${spec.shape}] ${error}`);
  }
  writeFileSync(values["child-out"], JSON.stringify({ result, error, seconds: round2((epochNow() - started) / 1000) }));
  // Libraries that leave a timer or socket behind must not hold the run up.
  setTimeout(() => process.exit(0), 200).unref();
} else {
  await main();
}
