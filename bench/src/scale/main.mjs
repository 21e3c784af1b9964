// The scale benchmark: the same slots split over more or fewer worker
// processes, spread over simulated hosts (network namespaces on a bridge),
// for pgpulse (one or more builds), graphile-worker and pg-boss. Per run:
// claim statements per job (pg_stat_statements) and the share of them that
// came back empty (counted in the workers), Postgres CPU per job (/proc), and
// latency (trickle) or jobs/s (drain). Run as root:
//   npm --prefix bench run scale -- --quick
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { admin, ensureDatabase, serverFacts } from "../db.mjs";
import { fill } from "../scenarios/fill.mjs";
import { summarize } from "../stats.mjs";
import { HELP, parseConfig } from "./config.mjs";
import { CpuMeter, postmasterPid } from "./cpu.mjs";
import { createHosts, ensureBridge, inHost, removeBridge, removeHosts, serverAddress } from "./netns.mjs";
import { ensurePostgres, ensureStatements } from "./pgsetup.mjs";
import { Child, killAll } from "./procs.mjs";
import { markdown } from "./report.mjs";
import { CLAIMS, openAdapter, remainingSql } from "./systems.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const config = parseConfig();
if (config.help) {
  console.log(HELP);
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.error("npm run scale needs root: it creates network namespaces and may change Postgres's settings");
  process.exit(1);
}
if (config.teardown) {
  const removed = removeHosts();
  console.log([...removed.map((n) => `removed namespace ${n}`), ...removeBridge()].join("\n") || "nothing to remove");
  process.exit(0);
}

const wall = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (x, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10 ** d) / 10 ** d);

// ---- set-up: bridge, Postgres settings, database, namespaces ----------------
const changes = [];
let sql = null;
let currentSchema = null;
let cleaning = false;
async function cleanup(reason) {
  if (cleaning) return;
  cleaning = true;
  killAll();
  const removed = removeHosts();
  if (removed.length) console.log(`[scale] ${reason}: removed namespaces ${removed.join(", ")}`);
  if (sql && currentSchema) {
    await Promise.race([sql.unsafe(`drop schema if exists "${currentSchema}" cascade`).catch(() => {}), sleep(5000)]);
  }
  await sql?.end({ timeout: 2 }).catch(() => {});
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    console.error(`\n[scale] ${signal}: stopping the workers and removing the namespaces`);
    cleanup(signal).finally(() => process.exit(130));
  });
}
process.on("exit", () => {
  killAll();
  removeHosts();
});

changes.push(...ensureBridge(config.subnet));
changes.push(...(await ensurePostgres({ url: config.databaseUrl, subnet: config.subnet, allowRestart: config.pgRestart })));
await ensureDatabase(config.databaseUrl);
sql = admin(config.databaseUrl);
changes.push(...(await ensureStatements(sql)));
const database = new URL(config.databaseUrl).pathname.slice(1);
const [{ data_directory: dataDirectory }] = await sql`select current_setting('data_directory') as data_directory`;
const postmaster = postmasterPid(dataDirectory);
const hosts = createHosts(config.subnet, config.hosts);
console.log(`[scale] set-up: ${changes.length ? changes.join("; ") : "nothing to change"}`);
console.log(`[scale] hosts: ${hosts.map((h) => `${h.ns} ${h.address}`).join(", ")}; Postgres at ${serverAddress(config.subnet)} (postmaster ${postmaster})`);
const workerUrl = (() => {
  const u = new URL(config.databaseUrl);
  u.hostname = serverAddress(config.subnet);
  return u.toString();
})();

// ---- metadata ---------------------------------------------------------------
function buildInfo(dir) {
  const git = (...args) => {
    try {
      return execFileSync("git", ["-C", dir, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return null;
    }
  };
  let commit = git("rev-parse", "--short", "HEAD");
  if (!commit) {
    try {
      commit = readFileSync(join(dir, "COMMIT"), "utf8").trim().slice(0, 7);
    } catch {
      commit = "unknown";
    }
  }
  return { commit, dirty: Boolean(git("status", "--porcelain", "--", "src", "sql")) };
}
const version = (name) => JSON.parse(readFileSync(join(here, "..", "..", "node_modules", name, "package.json"), "utf8")).version;
const meta = {
  date: new Date().toISOString(),
  command: `npm run scale -- ${process.argv.slice(2).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(" ")}`.trim(),
  config: { ...config, layouts: config.layouts.map((l) => l.name), drainLayouts: config.drainLayouts.map((l) => l.name) },
  machine: { cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, platform: process.platform },
  server: await serverFacts(sql),
  setupChanges: changes,
  hosts: hosts.map((h) => ({ ns: h.ns, address: h.address })),
  builds: config.builds.map((b) => ({ ...b, ...buildInfo(b.dir) })),
  versions: Object.fromEntries(["graphile-worker", "pg-boss", "pg", "postgres"].map((n) => [n, version(n)])),
  failures: [],
};

// ---- the plan -----------------------------------------------------------------
const entries = config.systems.flatMap((system) =>
  system === "pgpulse"
    ? config.builds.map((b) => ({ system, build: b, label: config.builds.length > 1 ? `pgpulse@${b.label}` : "pgpulse" }))
    : [{ system, build: null, label: system }],
);
const plan = [];
for (let r = 0; r < config.rounds; r++) {
  const order = [...entries.slice(r % entries.length), ...entries.slice(0, r % entries.length)];
  for (const scenario of config.scenarios) {
    for (const layout of scenario === "trickle" ? config.layouts : config.drainLayouts) {
      for (const e of order) plan.push({ round: r + 1, scenario, layout, ...e });
    }
  }
}

// ---- measuring ----------------------------------------------------------------
async function statements(system) {
  const [row] = await sql`
    select coalesce(sum(calls) filter (where query like ${CLAIMS[system].like}), 0)::bigint as claims,
           coalesce(sum(rows) filter (where query like ${CLAIMS[system].like}), 0)::bigint as claim_rows,
           coalesce(sum(total_exec_time) filter (where query like ${CLAIMS[system].like}), 0)::float8 as claim_ms,
           coalesce(sum(calls), 0)::bigint as calls
    from pg_stat_statements
    where dbid = (select oid from pg_database where datname = current_database())
      and query not like '%pg_stat_statements%'`;
  return { claims: Number(row.claims), claimRows: Number(row.claim_rows), claimMs: row.claim_ms, calls: Number(row.calls) };
}

async function otherDatabases() {
  const [row] = await sql`
    select count(*)::int as n from pg_stat_activity
    where state = 'active' and backend_type = 'client backend' and datname is distinct from current_database()`;
  return row.n;
}

async function until(check, timeoutMs, what, every = 20) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(every);
  }
}

const sub = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, a[k] - (b?.[k] ?? 0)]));

async function runOne(step, index) {
  const { system, build, layout, scenario } = step;
  const schema = `scale_${system.replaceAll("-", "_")}_${process.pid}_${index}`;
  currentSchema = schema;
  const pgpulseDir = build?.dir;
  const loadBefore = round(loadavg()[0]);
  const busyBefore = await otherDatabases();
  const t0 = Date.now();
  let workers = [];
  let producer = null;
  try {
    await sql.unsafe(`drop schema if exists "${schema}" cascade`);
    // migrations and the queue, from the root namespace; the drain's backlog too
    const setup = await openAdapter(system, { url: config.databaseUrl, schema, pgpulseDir });
    try {
      if (scenario === "drain") await fill(setup, config.drainJobs, config.bulkSize);
    } finally {
      await setup.close();
    }
    await sql`checkpoint`;

    // worker processes, round-robin over the hosts
    let handled = 0;
    const onMessage = (w) => (msg) => {
      if (msg.type !== "progress") return false;
      handled += msg.handled - w.handled;
      w.handled = msg.handled;
      return true;
    };
    workers = Array.from({ length: layout.processes }, (_, i) => {
      const host = hosts[i % hosts.length];
      const spec = { system, url: workerUrl, schema, concurrency: layout.concurrency, pgpulseDir, index: i, host: host.ns, layout: layout.name };
      const w = { handled: 0, host: host.ns };
      w.child = new Child([...inHost(host.ns), process.execPath, join(here, "worker.mjs"), JSON.stringify(spec)], `worker ${i} (${host.ns})`, { onMessage: onMessage(w) });
      return w;
    });
    await Promise.all(workers.map((w) => w.child.next("ready", 180_000)));

    const jobs = scenario === "trickle" ? Math.round(config.trickleRate * config.trickleSeconds) : config.drainJobs;
    let sent = null;
    let startAt;
    let before;
    let marks0 = null;
    const meter = new CpuMeter({ postmaster, database });
    if (scenario === "trickle") {
      producer = new Child([process.execPath, join(here, "producer.mjs"), JSON.stringify({ system, url: config.databaseUrl, schema, pgpulseDir, rate: config.trickleRate, seconds: config.trickleSeconds })], "producer");
      await producer.next("ready", 120_000);
      for (const w of workers) w.child.send({ type: "start" });
      await Promise.all(workers.map((w) => w.child.next("started", 120_000)));
      await until(() => handled >= 1, 30_000, "the warm-up job"); // the producer's first enqueue
      await sleep(config.idleMs);
      marks0 = await mark(workers);
      const handled0 = handled;
      before = await statements(system);
      meter.start();
      startAt = wall();
      producer.send({ type: "go" });
      await until(() => handled - handled0 >= jobs, config.trickleSeconds * 1000 + 60_000, `${jobs} jobs handled`);
      sent = await producer.next("sent", 60_000);
    } else {
      marks0 = await mark(workers); // what the systems' start-up claimed, if anything
      before = await statements(system);
      meter.start();
      startAt = wall();
      for (const w of workers) w.child.send({ type: "start" });
      await until(() => handled >= jobs, Math.max(120_000, jobs * 5), `${jobs} jobs handled`);
    }
    const remaining = remainingSql(system, schema);
    await until(async () => (await sql.unsafe(remaining))[0].n === 0, 30_000, "the last completions", 10);
    const endAt = wall();
    const cpu = meter.stop();
    const marks1 = await mark(workers);
    const after = await statements(system);

    for (const w of workers) w.child.send({ type: "stop" });
    const results = await Promise.all(workers.map((w) => w.child.next("result", 60_000)));
    if (producer) {
      producer.send({ type: "close" });
      await producer.next("closed", 30_000).catch((e) => console.error(`[scale] ${e.message}`));
    }

    const client = sub(sumCounts(marks1), marks0 ? sumCounts(marks0) : null);
    const server = sub(after, before);
    const firstAt = Math.min(...results.map((r) => r.firstAt ?? Infinity));
    const result = {
      jobs,
      seconds: round((endAt - startAt) / 1000, 3),
      claimsPerJob: round(server.claims / jobs, 4),
      jobsPerClaim: client.claims ? round(client.jobs / client.claims, 1) : null,
      emptyClaimShare: client.claims ? round(client.empty / client.claims, 3) : null,
      statementsPerJob: round(server.calls / jobs),
      cpuMsPerJob: round(cpu.allMs / jobs, 3),
      benchCpuMsPerJob: round((cpu.benchDbMs + cpu.serverMs) / jobs, 3),
      claimExecMsPerJob: round(server.claimMs / jobs, 3),
      cpu,
      server,
      client,
      perProcessHandled: results.map((r) => r.handled),
      stopMs: Math.max(...results.map((r) => r.stopMs)),
    };
    if (scenario === "trickle") {
      const warmup = Math.min(20, Math.floor(jobs / 10));
      const lat = results.flatMap((r) => r.latencies).filter(([i]) => i >= warmup).map(([, ms]) => ms);
      result.latency = { ...summarize(lat), warmupDropped: warmup };
      // p50 per tenth of the run, by send order: a queue building up shows as a rising line
      const all = results.flatMap((r) => r.latencies).filter(([i]) => i >= 0);
      result.latencyP50ByTenth = Array.from({ length: 10 }, (_, k) =>
        round(summarize(all.filter(([i]) => Math.floor((i * 10) / jobs) === k).map(([, ms]) => ms)).p50, 1));
      result.producer = sent;
    } else {
      result.jobsPerSec = Math.round(jobs / ((endAt - firstAt) / 1000));
      result.jobsPerSecFromStart = Math.round(jobs / ((endAt - startAt) / 1000));
      result.startToFirstJobMs = round(firstAt - startAt, 1);
      // first to last handler start, across processes: no completion and no polling in it
      const lastAt = Math.max(...results.map((r) => r.lastAt ?? -Infinity));
      result.handlerJobsPerSec = Math.round((jobs - 1) / ((lastAt - firstAt) / 1000));
    }
    return { ...stepInfo(step), result, loadBefore, otherBackends: Math.max(busyBefore, await otherDatabases()), wallSeconds: (Date.now() - t0) / 1000 };
  } finally {
    for (const w of workers) w.child.kill();
    producer?.kill();
    await Promise.all([...workers.map((w) => w.child.ended(2000)), producer?.ended(2000)]);
    await sleep(250); // stragglers of a stopped worker land before the drop
    await sql.unsafe(`drop schema if exists "${schema}" cascade`).catch((e) => console.error(`[scale] drop ${schema}: ${e.message}`));
    currentSchema = null;
  }
}

async function mark(workers) {
  for (const w of workers) w.child.send({ type: "mark" });
  return Promise.all(workers.map((w) => w.child.next("mark", 30_000)));
}

function sumCounts(marks) {
  const total = { claims: 0, empty: 0, jobs: 0 };
  for (const m of marks) for (const k of Object.keys(total)) total[k] += m.counts[k];
  return total;
}

const stepInfo = (s) => ({
  round: s.round,
  scenario: s.scenario,
  system: s.system,
  label: s.label,
  build: s.build ? s.build.label : null,
  layout: s.layout.name,
  processes: s.layout.processes,
  concurrency: s.layout.concurrency,
});

function headline(run) {
  const r = run.result;
  const common = `${r.claimsPerJob} claims/job (${r.emptyClaimShare === null ? "?" : Math.round(r.emptyClaimShare * 100)}% empty), CPU ${r.cpuMsPerJob} ms/job (bench db ${r.benchCpuMsPerJob})`;
  if (run.scenario === "trickle") return `${common}, p50 ${round(r.latency.p50, 1)} p99 ${round(r.latency.p99, 1)} ms`;
  return `${common}, ${r.jobsPerClaim} jobs/claim, ${r.jobsPerSec} jobs/s`;
}

// ---- run ------------------------------------------------------------------------
const runs = [];
const started = Date.now();
console.log(`[scale] ${plan.length} runs: ${entries.map((e) => e.label).join(", ")} × ${config.scenarios.join(", ")}; ${config.rounds} round(s)${config.quick ? " (quick)" : ""}`);
try {
  for (const [i, step] of plan.entries()) {
    let run;
    try {
      run = await runOne(step, i);
    } catch (e) {
      if (cleaning) break;
      console.error(`[scale] ${step.scenario} ${step.label} ${step.layout.name}: ${e?.stack ?? e}`);
      run = { ...stepInfo(step), error: String(e?.message ?? e) };
      meta.failures.push(`round ${step.round} ${step.scenario} ${step.label} ${step.layout.name}: ${run.error}`);
    }
    runs.push(run);
    const elapsed = Math.round((Date.now() - started) / 1000);
    console.log(`[${i + 1}/${plan.length} r${step.round} ${elapsed}s] ${step.scenario} ${step.label} ${step.layout.name}: ${run.error ? "FAILED" : headline(run)} (load ${run.loadBefore ?? "?"})`);
  }
} finally {
  await cleanup("done");
}

const md = markdown({ meta, runs });
mkdirSync(config.out, { recursive: true });
const stamp = meta.date.slice(0, 16).replace(":", "");
const base = join(config.out, `${stamp}-scale-${config.quick ? "quick" : "full"}${config.tag ? `-${config.tag}` : ""}`);
writeFileSync(`${base}.json`, JSON.stringify({ meta, runs }, null, 2));
writeFileSync(`${base}.md`, md);
console.log(`\n${md}\nWrote ${base}.json and ${base}.md in ${Math.round((Date.now() - started) / 1000)} s`);
process.exit(meta.failures.length ? 1 : 0);
