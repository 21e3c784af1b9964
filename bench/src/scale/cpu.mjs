// Postgres CPU from /proc, over a measured window. Two figures:
// - all: utime+stime of the postmaster and every child, plus the postmaster's
//   cutime+cstime (backends that exited and were reaped): exact, but it counts
//   every database on the server (other people's tests included).
// - bench: the bench database's backends plus the server's own processes
//   (checkpointer, walwriter, autovacuum...), tracked pid by pid by sampling
//   every `everyMs`; a backend that exits loses at most its last interval.
// On a quiet server the two agree; their gap is other databases' work.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const TICK_MS = 1000 / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim() || 100);

function stat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = text.slice(text.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
    return { utime: +f[11], stime: +f[12], cutime: +f[13], cstime: +f[14], start: f[19] };
  } catch {
    return null;
  }
}

// The postmaster is one thread: its children are listed under its one task.
function children(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
    return text ? text.split(" ").map(Number) : [];
  } catch {
    return [];
  }
}

/** "bench" (a backend of the database), "server" (no database: the server's own), or "other". */
function classify(pid, database) {
  let cmd;
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return "other";
  }
  // "postgres: 15/main: postgres pgpulse_bench 10.213.0.11(40120) idle", or
  // "postgres: 15/main: checkpointer"; the cluster_name part is optional.
  const rest = cmd.replace(/^postgres: /, "").replace(/^[^:]*: /, "");
  const words = rest.split(/\s+/);
  if (words.length >= 3 && (/\(\d+\)$/.test(words[2]) || words[2] === "[local]")) return words[1] === database ? "bench" : "other";
  if (words[0] === "autovacuum" && words[1] === "worker") return words[2] === database ? "bench" : "server";
  return "server";
}

export function postmasterPid(dataDirectory) {
  return Number(readFileSync(`${dataDirectory}/postmaster.pid`, "utf8").split("\n")[0]);
}

export class CpuMeter {
  constructor({ postmaster, database, everyMs = 100 }) {
    this.pm = postmaster;
    this.database = database;
    this.everyMs = everyMs;
    this.kinds = new Map(); // "pid:start" -> kind
    this.timer = null;
  }

  #total() {
    const pm = stat(this.pm);
    if (!pm) throw new Error(`postmaster ${this.pm} is gone`);
    let ticks = pm.utime + pm.stime + pm.cutime + pm.cstime;
    const per = new Map();
    for (const pid of children(this.pm)) {
      const s = stat(pid);
      if (!s) continue;
      const key = `${pid}:${s.start}`;
      if (!this.kinds.has(key)) this.kinds.set(key, classify(pid, this.database));
      const t = s.utime + s.stime;
      ticks += t;
      per.set(key, t);
    }
    return { ticks, per };
  }

  #sample() {
    const { per } = this.#total();
    for (const [key, t] of per) {
      if (!this.base.has(key)) this.base.set(key, 0); // started inside the window
      this.last.set(key, t);
    }
  }

  start() {
    const { ticks, per } = this.#total();
    this.t0 = ticks;
    this.base = new Map(per);
    this.last = new Map(per);
    this.timer = setInterval(() => this.#sample(), this.everyMs);
    this.timer.unref?.();
  }

  /** Ends the window: { allMs, benchMs, serverMs, otherMs }. */
  stop() {
    clearInterval(this.timer);
    this.#sample();
    const { ticks } = this.#total();
    const by = { bench: 0, server: 0, other: 0 };
    for (const [key, t] of this.last) by[this.kinds.get(key) ?? "other"] += t - (this.base.get(key) ?? 0);
    const ms = (x) => Math.round(x * TICK_MS);
    return { allMs: ms(ticks - this.t0), benchDbMs: ms(by.bench), serverMs: ms(by.server), otherDbMs: ms(by.other) };
  }
}

/**
 * A meter of the server that sql is connected to (its data directory names the
 * postmaster), for the database sql uses; null where /proc or the data
 * directory cannot be read (a server on another host).
 */
export async function meterFor(sql) {
  try {
    const [{ dir, db }] = await sql`select current_setting('data_directory') as dir, current_database() as db`;
    return new CpuMeter({ postmaster: postmasterPid(dir), database: db });
  } catch {
    return null;
  }
}

/** Postgres's CPU per job in us (the database's backends and the server's own processes), from a stopped meter. */
export const pgUsPerJob = (cpu, jobs) => (cpu && jobs > 0 ? Math.round(((cpu.benchDbMs + cpu.serverMs) * 1000) / jobs * 10) / 10 : null);
