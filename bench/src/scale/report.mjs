// Medians over rounds per (scenario, system/build, layout), as markdown.
import { median } from "../stats.mjs";

const get = (o, path) => path.split(".").reduce((x, k) => x?.[k], o);

export function aggregate(runs) {
  const groups = new Map();
  for (const run of runs.filter((r) => !r.error)) {
    const key = `${run.scenario}|${run.label}|${run.layout}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(run);
  }
  const fields = [
    "result.jobs", "result.claimsPerJob", "result.emptyClaimShare", "result.statementsPerJob", "result.cpuMsPerJob",
    "result.benchCpuMsPerJob", "result.claimExecMsPerJob", "result.latency.p50", "result.latency.p95", "result.latency.p99",
    "result.jobsPerSec", "result.jobsPerSecFromStart", "result.handlerJobsPerSec", "result.jobsPerClaim", "loadBefore",
  ];
  return [...groups.values()].map((rs) => {
    const m = { scenario: rs[0].scenario, label: rs[0].label, layout: rs[0].layout, processes: rs[0].processes, concurrency: rs[0].concurrency, rounds: rs.length };
    for (const f of fields) m[f.split(".").at(-1)] = median(rs.map((r) => get(r, f)));
    m.otherBackends = Math.max(...rs.map((r) => r.otherBackends ?? 0));
    return m;
  });
}

const fmt = (x, d = 2) => {
  if (x === null || x === undefined) return "–";
  const s = Number(x).toFixed(d);
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
};
const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`);

export function markdown({ meta, runs }) {
  const rows = aggregate(runs);
  const out = [];
  const builds = meta.builds.map((b) => `${b.label} = ${b.dir} (${b.commit}${b.dirty ? ", uncommitted changes in src/ or sql/" : ""})`);
  out.push(`# pgpulse scale benchmark, ${meta.date.slice(0, 16).replace("T", " ")}${meta.config.quick ? " (quick)" : ""}`);
  out.push("");
  if (meta.config.note) out.push(`**${meta.config.note}**`, "");
  out.push(`\`${meta.command}\``);
  out.push("");
  out.push(`${meta.machine.cores} cores, ${meta.machine.memoryGiB} GiB, Node ${meta.machine.node}; ${meta.server.version.split(",")[0]}. ` +
    `${meta.hosts.length} simulated hosts (network namespaces on a bridge), processes spread round-robin; the producer is in the root namespace. ` +
    `pgpulse build(s): ${builds.join("; ")}. graphile-worker ${meta.versions["graphile-worker"]}, pg-boss ${meta.versions["pg-boss"]}.`);
  out.push("");
  out.push("Claims/job: claim statements (pg_stat_statements) per job. Empty: the share of claims that returned no job, as the workers saw them. " +
    "CPU: Postgres CPU per job over the window from /proc (all processes of the server, exited backends included); " +
    "'db' counts only the bench database's backends and the server's own processes (the two differ by other databases' work). " +
    "Stmts/job: every statement of the bench database per job.");
  const scen = (name) => rows.filter((r) => r.scenario === name);
  const trickle = scen("trickle");
  if (trickle.length) {
    out.push("");
    out.push(`## trickle: ${meta.config.trickleRate} single enqueues/s for ${meta.config.trickleSeconds} s, open loop`);
    out.push("");
    out.push("Latency: the producer's enqueue call to the handler's start, wall clock across processes.");
    out.push("");
    out.push("| system | processes × slots | claims/job | empty | stmts/job | CPU ms/job | (db) | p50 ms | p95 ms | p99 ms | load |");
    out.push("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (const r of trickle) {
      out.push(`| ${r.label} | ${r.layout} | ${fmt(r.claimsPerJob)} | ${pct(r.emptyClaimShare)} | ${fmt(r.statementsPerJob, 1)} | ${fmt(r.cpuMsPerJob)} | ${fmt(r.benchCpuMsPerJob)} | ${fmt(r.p50, 1)} | ${fmt(r.p95, 1)} | ${fmt(r.p99, 1)} | ${fmt(r.loadBefore, 1)} |`);
    }
  }
  const drain = scen("drain");
  if (drain.length) {
    out.push("");
    out.push(`## drain: ${meta.config.drainJobs} jobs queued in bulk before the workers start`);
    out.push("");
    out.push("Jobs/s: from the first handler call to the database showing every job finished; 'from start': from the start signal to the workers (their pools connect inside it); 'handlers/s': first to last handler start.");
    out.push("");
    out.push("| system | processes × slots | jobs/s | from start | handlers/s | claims/job | jobs/claim | empty | stmts/job | CPU ms/job | (db) | load |");
    out.push("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (const r of drain) {
      out.push(`| ${r.label} | ${r.layout} | ${fmt(r.jobsPerSec, 0)} | ${fmt(r.jobsPerSecFromStart, 0)} | ${fmt(r.handlerJobsPerSec, 0)} | ${fmt(r.claimsPerJob, 3)} | ${fmt(r.jobsPerClaim, 1)} | ${pct(r.emptyClaimShare)} | ${fmt(r.statementsPerJob, 2)} | ${fmt(r.cpuMsPerJob, 3)} | ${fmt(r.benchCpuMsPerJob, 3)} | ${fmt(r.loadBefore, 1)} |`);
    }
  }
  const busy = rows.filter((r) => r.otherBackends > 0).map((r) => `${r.scenario} ${r.label} ${r.layout} (${r.otherBackends})`);
  if (busy.length) {
    out.push("");
    out.push(`Other databases had active clients during: ${busy.join(", ")}.`);
  }
  if (meta.failures.length) {
    out.push("");
    out.push("Failures:");
    for (const f of meta.failures) out.push(`- ${f}`);
  }
  if (meta.setupChanges.length) {
    out.push("");
    out.push(`Set-up changed: ${meta.setupChanges.join("; ")}.`);
  }
  out.push("");
  return out.join("\n");
}
