import type { Db } from "../db/db.ts";
import { nextTick, scheduledJobSpec, scheduleFromRow } from "../producer/schedules.ts";
import { PeriodicService } from "../shared/service.ts";
import type { MaintenanceDeps } from "./deps.ts";

export interface SchedulerOptions extends MaintenanceDeps {
  db: Pick<Db, "scheduleDue" | "scheduleTake">;
  intervalMs: number;
}

/** Ticks missed while nobody looked are counted up to this many (only the last catchUp run). */
const TICKS_COUNTED_MAX = 100_000;

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
    const at = now ?? new Date(o.clock.now());
    const done: { name: string; ticks: Date[] }[] = [];
    for (const row of await o.db.scheduleDue(now)) {
      const s = scheduleFromRow(row);
      const ticks: Date[] = [s.nextTick!];
      let next = nextTick(s.cron, s.timezone, s.nextTick!);
      while (next && next <= at && ticks.length < TICKS_COUNTED_MAX) {
        ticks.push(next);
        next = nextTick(s.cron, s.timezone, next);
      }
      const run = ticks.slice(-s.catchUp);
      const specs = run.map((tick) => scheduledJobSpec(s, `schedule:${s.name}:${tick.toISOString()}`, tick));
      const took = await o.db.scheduleTake({
        name: s.name, expected: s.nextTick!, lastTick: ticks[ticks.length - 1]!, nextTick: next, specs: JSON.stringify(specs), now,
      });
      if (!took) continue;
      done.push({ name: s.name, ticks: run });
      o.logger.debug(`schedule ${s.name}: enqueued ${run.length} job(s)`);
      o.events.emit("schedule:enqueued", { workerId: o.workerId, name: s.name, ticks: run });
    }
    return done;
  }
}
