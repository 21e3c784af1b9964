import type { Db } from "../db/db.ts";
import { Cron } from "croner";
import { scheduledJobSpec, scheduleFromRow, type Schedule } from "../producer/schedules.ts";
import { PeriodicService } from "../shared/service.ts";
import type { MaintenanceDeps } from "./deps.ts";

export interface SchedulerOptions extends MaintenanceDeps {
  db: Pick<Db, "scheduleDue" | "scheduleTake">;
  intervalMs: number;
}

/**
 * Enqueues the jobs of every schedule whose next tick has come. Each worker
 * runs one; the compare-and-set on next_tick gives each tick to exactly one
 * of them, and its jobs are enqueued in the same transaction, so a worker
 * that dies in between leaves the tick untaken rather than lost.
 */
export class Scheduler extends PeriodicService<{ name: string; ticks: Date[] }[]> {
  constructor(private o: SchedulerOptions) {
    super(o);
  }

  /** One pass: the schedules whose jobs this worker enqueued, with their ticks. */
  async runOnce(): Promise<{ name: string; ticks: Date[] }[]> {
    const { o } = this;
    const now = o.dbNow();
    const done: { name: string; ticks: Date[] }[] = [];
    // Ticks are counted up to the time the database found them due by: a worker whose own
    // clock is off neither skips ticks nor enqueues ones that have not come.
    const due = await o.db.scheduleDue(now);
    for (const row of due.schedules) {
      const s = scheduleFromRow(row);
      const { run, next } = dueTicks(s, s.nextTick!, due.at ?? new Date(o.clock.now()));
      const specs = run.map((tick) => scheduledJobSpec(s, `schedule:${s.name}:${tick.toISOString()}`, tick));
      const took = await o.db.scheduleTake({
        name: s.name, expected: s.nextTick!, lastTick: run[run.length - 1]!, nextTick: next, specs: JSON.stringify(specs), now,
      });
      if (!took) continue;
      done.push({ name: s.name, ticks: run });
      o.logger.debug(`schedule ${s.name}: enqueued ${run.length} job(s)`);
      o.events.emit("schedule:enqueued", { workerId: o.workerId, name: s.name, ticks: run });
    }
    return done;
  }
}

/**
 * The ticks to run for a schedule due since `expected`, up to `at`: the latest
 * catchUp of them, oldest first (found from `at` backwards, so a schedule down
 * for days costs no more than one down for a minute), and the tick after `at`.
 */
export function dueTicks(s: Pick<Schedule, "cron" | "timezone" | "catchUp">, expected: Date, at: Date): { run: Date[]; next: Date | null } {
  const cron = new Cron(s.cron, { paused: true, ...(s.timezone ? { timezone: s.timezone } : {}) });
  const latest = cron.previousRuns(s.catchUp, new Date(at.getTime() + 1)).filter((tick) => tick >= expected).reverse();
  // (expected is due by the database's word: it runs even if the pattern, read back, skips it)
  const run = latest.length > 0 ? latest : [expected];
  return { run, next: cron.nextRun(new Date(Math.max(at.getTime(), run[run.length - 1]!.getTime()))) };
}
