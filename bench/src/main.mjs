// The runner: plans rounds × scenarios × systems (system order rotated each
// round), runs each in its own process (src/child.mjs), and writes the medians
// to results/<date>-<quick|full>.json and .md, printing the tables.
import { spawn } from "node:child_process";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { HELP, parseConfig } from "./config.mjs";
import { admin, ensureDatabase, serverFacts } from "./db.mjs";
import { aggregate, markdown } from "./report.mjs";
import { systems as registry } from "./systems/index.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const config = parseConfig();
if (config.help) {
  console.log(HELP);
  process.exit(0);
}

await ensureDatabase(config.databaseUrl);
const sql = admin(config.databaseUrl);
const server = await serverFacts(sql);
await sql.end();

const pgpulseDir = resolve(config.pgpulseDir ?? join(here, "..", ".."));
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
  command: `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim(),
  config,
  machine: { cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, platform: process.platform },
  server,
  pgpulse: {
    dir: pgpulseDir,
    // a build from `git archive` carries no .git: its commit can be put in DIR/COMMIT
    commit: git("rev-parse", "--short", "HEAD") ?? readOr(join(pgpulseDir, "COMMIT"), "unknown").trim().slice(0, 7),
    dirty: git("status", "--porcelain", "--", "src", "sql") ? true : false,
  },
  versions: Object.fromEntries(["graphile-worker", "pg-boss", "bullmq", "pg", "postgres"].map((n) => [n, version(n)])),
  notes: Object.fromEntries(config.systems.map((s) => [s, registry[s].note])),
  failures: [],
  busy: [],
  loads: [],
};

const plan = [];
for (let r = 0; r < config.rounds; r++) {
  const n = config.systems.length;
  const order = [...config.systems.slice(r % n), ...config.systems.slice(0, r % n)];
  for (const scenario of config.scenarios) {
    if (scenario === "sustained" && r >= config.sustainedRounds) continue;
    if (scenario === "depth" && r >= config.depthRounds) continue;
    for (const system of order) plan.push({ round: r + 1, scenario, system });
  }
}

const CHILD_TIMEOUT_MS = 20 * 60_000;
const work = mkdtempSync(join(tmpdir(), "pgpulse-bench-"));
const runs = [];
const started = Date.now();
console.log(`${plan.length} runs: ${config.systems.join(", ")} × ${config.scenarios.join(", ")}; ${config.rounds} round(s)${config.quick ? " (quick)" : ""}`);
for (const [i, step] of plan.entries()) {
  const out = join(work, `${i}.json`);
  const load = loadavg()[0];
  const spec = JSON.stringify({ ...step, config: { ...config, pgpulseDir: config.pgpulseDir } });
  const code = await new Promise((res) => {
    const child = spawn(process.execPath, [join(here, "child.mjs"), spec, out], { stdio: ["ignore", "inherit", "inherit"] });
    const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_TIMEOUT_MS);
    child.on("exit", (c, signal) => (clearTimeout(timer), res(signal ?? c)));
  });
  let run;
  try {
    run = JSON.parse(readFileSync(out, "utf8"));
  } catch {
    run = { system: step.system, scenario: step.scenario, error: `child exited with ${code} and no result` };
  }
  run.round = step.round;
  run.loadBefore = Math.round(load * 100) / 100;
  meta.loads.push(run.loadBefore);
  runs.push(run);
  if (run.error) meta.failures.push(`round ${step.round} ${step.scenario} ${step.system}: ${run.error.split("\n")[0]}`);
  if (run.otherBackends > 0) meta.busy.push(`round ${step.round} ${step.scenario} ${step.system} (${run.otherBackends})`);
  const elapsed = Math.round((Date.now() - started) / 1000);
  console.log(`[${i + 1}/${plan.length} r${step.round} ${elapsed}s] ${step.scenario} ${step.system}: ${run.error ? "FAILED" : headline(step.scenario, run.result)} (${run.seconds ?? "?"} s)`);
}

const medians = aggregate(runs.filter((r) => !r.error));
const md = markdown({ meta, medians, systems: config.systems });
mkdirSync(config.out, { recursive: true });
const stamp = meta.date.slice(0, 16).replace(":", "");
const base = join(config.out, `${stamp}-${config.quick ? "quick" : "full"}`);
writeFileSync(`${base}.json`, JSON.stringify({ meta, medians, runs }, null, 2));
writeFileSync(`${base}.md`, md);
console.log(`\n${md}\nWrote ${base}.json and ${base}.md in ${Math.round((Date.now() - started) / 1000)} s`);

function headline(scenario, r) {
  switch (scenario) {
    case "drain": return `${r.jobsPerSec} jobs/s${r.finished ? "" : ` (only ${r.handled} of ${r.jobs} in time)`}`;
    case "latency": return `p50 ${r.p50} p95 ${r.p95} p99 ${r.p99} ms (${r.received}/${r.jobs})`;
    case "enqueue": return `single ${r.singlePerSec}/s, ×${r.parallelClients} ${r.parallelPerSec}/s, bulk ${r.bulkJobsPerSec} jobs/s`;
    case "sustained": return `e2e p50 ${r.e2e.p50} p99 ${r.e2e.p99} ms, ${r.pgCpuUsPerJob ?? "?"} us of Postgres CPU per job, ${r.mbBefore} → ${r.mbAfter} MB, sent ${r.sent} skipped ${r.skipped}${r.drained ? "" : " NOT DRAINED"}`;
    case "depth": return `claim p50 ${r.small.claim.p50} ms @${r.small.waiting}, ${r.large.claim.p50} ms @${r.large.waiting} (×${r.claimP50Ratio}); ${r.small.jobsPerSec} / ${r.large.jobsPerSec} jobs/s`;
    default: return JSON.stringify(r);
  }
}
