// Starts the fault run's report: test/artifacts/faults-report.jsonl (or $FAULTS_REPORT),
// one JSON line per scenario's figures after this header line.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname } from "node:path";

export default function setup() {
  const file = process.env.FAULTS_REPORT!;
  mkdirSync(dirname(file), { recursive: true });
  let commit = "unknown";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  } catch {
    // not a git checkout
  }
  const header = { run: new Date().toISOString(), commit, node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model };
  writeFileSync(file, `${JSON.stringify(header)}\n`);
}
