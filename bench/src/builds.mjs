// Builds of pgpulse run side by side: `--pgpulse-dir name=DIR,...` parsed, and
// runs interleaved by round, the order flipped each round, each in a process of
// its own that prints one JSON line last.
import { execFileSync } from "node:child_process";

/** "before=/tmp/a,after=/tmp/b" -> [{ name, dir }]; a bare DIR names itself; none: the installed one. */
export function parseBuilds(text) {
  return (text ?? "current=").split(",").map((pair) => {
    const [name, dir] = pair.includes("=") ? pair.split("=") : [pair, pair];
    return { name, dir };
  });
}

/** Runs `script --child DIR ...build.args ...args` for each build and round; calls report(round, build, result) per run. */
export function runInterleaved(builds, rounds, script, args, report) {
  const runs = new Map(builds.map((b) => [b.name, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const b of round % 2 ? builds : [...builds].reverse()) {
      const out = execFileSync(process.execPath, [script, "--child", b.dir, ...(b.args ?? []), ...args], { encoding: "utf8" });
      const r = JSON.parse(out.trim().split("\n").at(-1));
      runs.get(b.name).push(r);
      report(round, b, r);
    }
  }
  return runs;
}

/**
 * The claim statements a build's claimOps() takes: since 0f80119 its pool's and
 * a caller's transaction's, as { pool, tx }; before, the pool's as one string.
 */
export function claimStatements(claimOps, claimSql, q) {
  return /\bt\.pool\b/.test(claimOps.toString()) ? { pool: claimSql(q), tx: claimSql(q, true) } : claimSql(q);
}
