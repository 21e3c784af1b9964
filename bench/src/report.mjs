// Medians over rounds, and the markdown tables.
import { median } from "./stats.mjs";

/** Median of every numeric leaf across the results of one system and scenario. */
export function medianOf(results) {
  const ok = results.filter(Boolean);
  if (ok.length === 0) return null;
  const walk = (objs) => {
    const out = {};
    for (const key of Object.keys(objs[0])) {
      const vals = objs.map((o) => o?.[key]);
      if (vals.every((v) => v && typeof v === "object")) out[key] = walk(vals);
      else if (vals.some((v) => typeof v === "number")) out[key] = round(median(vals));
      else out[key] = vals.at(-1);
    }
    return out;
  };
  return { ...walk(ok), rounds: ok.length };
}

const round = (x) => (x === null ? null : Math.abs(x) >= 100 ? Math.round(x) : Math.round(x * 100) / 100);

export function aggregate(runs) {
  const medians = {};
  for (const run of runs) {
    medians[run.system] ??= {};
    (medians[run.system][run.scenario] ??= []).push(run.result);
  }
  for (const system of Object.keys(medians)) {
    for (const scenario of Object.keys(medians[system])) medians[system][scenario] = medianOf(medians[system][scenario]);
  }
  return medians;
}

const num = (x) => (x === null || x === undefined ? "–" : typeof x === "number" ? x.toLocaleString("en-US") : String(x));
const trio = (...xs) => (xs.every((x) => x === null || x === undefined) ? "–" : xs.map(num).join(" / "));
const k = (n) => (n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n));

export function markdown({ meta, medians, systems }) {
  const floorDrain = medians.floor?.drain?.jobsPerSec;
  const c = meta.config;
  const lines = [];
  lines.push(`# pgpulse benchmark, ${meta.date}${c.quick ? " (quick)" : ""}`, "");
  lines.push(`Command: \`${meta.command}\``, "");
  lines.push(
    `Machine: ${meta.machine.cores} cores, ${meta.machine.memoryGiB} GiB, Node ${meta.machine.node}; ${meta.server.version.split(" on ")[0]}, ` +
      `fsync ${meta.server.fsync}, synchronous_commit ${meta.server.synchronous_commit}, shared_buffers ${meta.server.shared_buffers}. ` +
      `pgpulse ${meta.pgpulse.commit}${meta.pgpulse.dirty ? " (with uncommitted changes)" : ""} from ${meta.pgpulse.dir}.`,
    "",
  );
  lines.push(
    `Medians of ${c.rounds} round(s) (sustained: ${Math.min(c.rounds, c.sustainedRounds)}, depth: ${Math.min(c.rounds, c.depthRounds)}), systems interleaved; ` +
      `concurrency ${c.concurrency} everywhere; no-op handler.`,
    "",
  );
  lines.push(
    `| system | drain ${k(c.drainJobs)} jobs/s | vs floor | drain CPU per job: worker / Postgres us | latency p50 / p95 / p99 ms | enqueue single/s | single ×${c.enqueueClients} /s | bulk (${k(c.bulkSize)}) jobs/s |`,
    "|---|---:|---:|---:|---:|---:|---:|---:|",
  );
  for (const s of systems) {
    const m = medians[s] ?? {};
    const d = m.drain?.jobsPerSec;
    const vs = d && floorDrain ? `${Math.round((d / floorDrain) * 100)}%` : "–";
    const l = m.latency;
    const e = m.enqueue;
    lines.push(`| ${s} | ${num(d)} | ${vs} | ${trio(m.drain?.workerCpuUsPerJob, m.drain?.pgCpuUsPerJob)} | ${trio(l?.p50, l?.p95, l?.p99)} | ${num(e?.singlePerSec)} | ${num(e?.parallelPerSec)} | ${num(e?.bulkJobsPerSec)} |`);
  }
  lines.push("");
  lines.push(
    `| system | sustained ${k(c.sustainedRate)}/s × ${c.sustainedSeconds}s: e2e p50 / p99 ms | Postgres CPU per job | enqueue-return → handler p50 / p99 ms | tables MB before → after | claim p50 / p99 ms @${k(c.depthSmall)} | @${k(c.depthLarge)} | @${k(c.depthLarge)} ÷ @${k(c.depthSmall)} | jobs/s @${k(c.depthSmall)} / @${k(c.depthLarge)} |`,
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  for (const s of systems) {
    const m = medians[s] ?? {};
    const su = m.sustained;
    const dp = m.depth;
    const size = su ? `${num(su.mbBefore)} → ${num(su.mbAfter)}` : "–";
    const lag = !su ? "" : !su.drained ? " (backlog left)" : su.skipped > 0 ? ` (producer reached ${num(Math.round(su.sent / su.seconds))}/s)` : "";
    lines.push(
      `| ${s} | ${trio(su?.e2e?.p50, su?.e2e?.p99)}${lag} | ${su?.pgCpuUsPerJob != null ? `${num(su.pgCpuUsPerJob)} us` : "–"} | ${trio(su?.afterEnqueue?.p50, su?.afterEnqueue?.p99)} | ${size} | ${trio(dp?.small?.claim?.p50, dp?.small?.claim?.p99)} | ` +
        `${trio(dp?.large?.claim?.p50, dp?.large?.claim?.p99)} | ${num(dp?.claimP50Ratio)} | ${trio(dp?.small?.jobsPerSec, dp?.large?.jobsPerSec)} |`,
    );
  }
  lines.push("", "Systems:", "");
  for (const s of systems) lines.push(`- **${s}**: ${meta.notes[s]}`);
  if (meta.failures.length) {
    lines.push("", "Failed runs:", "");
    for (const f of meta.failures) lines.push(`- ${f}`);
  }
  if (meta.loads?.length) {
    const l = [...meta.loads].sort((a, b) => a - b);
    lines.push("", `1-minute load average before each run (2 cores; the previous run counts): median ${l[Math.floor(l.length / 2)]}, max ${l.at(-1)}.`);
  }
  if (meta.busy.length) {
    lines.push("", `Other clients were active on the server during: ${meta.busy.join(", ")}.`);
  }
  return lines.join("\n") + "\n";
}
