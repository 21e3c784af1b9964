import type { Db } from "../db/db.ts";
import type { ReapResult } from "../db/reaper.ts";
import { PeriodicService } from "../shared/service.ts";
import type { MaintenanceDeps } from "./deps.ts";

export type { ReapResult } from "../db/reaper.ts";

export interface ReaperOptions extends MaintenanceDeps {
  db: Pick<Db, "workerReap">;
  /** A worker whose heartbeat is older than this is dead. */
  staleAfterMs: number;
  intervalMs: number;
  /**
   * True while this worker should not reap: after an outage every heartbeat is
   * stale, so it holds off until workers could beat again.
   */
  holdOff?: () => boolean;
  /** Called after a pass that declared workers dead (the others stop drawing them for notifications). */
  onWorkersGone?: () => void;
}

/**
 * Declares dead the workers whose heartbeat went stale and puts their running
 * jobs back (db/reaper.ts has the rules). Every worker runs one; an advisory
 * lock taken with try lets one pass run at a time, and nobody is elected: if
 * the worker that would have reaped is dead, any other's next pass does it.
 */
export class Reaper extends PeriodicService<ReapResult> {
  constructor(private o: ReaperOptions) {
    super({ ...o, skip: o.holdOff });
  }

  async runOnce(): Promise<ReapResult> {
    const { o } = this;
    const result = await o.db.workerReap({ staleAfterMs: o.staleAfterMs, now: o.dbNow(), self: o.workerId });
    if (result.workers.length > 0 || result.jobs.length > 0) {
      o.logger.info(`reaper: ${result.workers.length} dead worker(s), ${result.jobs.length} job(s) taken back`, {
        workers: result.workers,
      });
      o.events.emit("reaper:reaped", { workerId: o.workerId, ...result });
    }
    if (result.workers.length > 0) o.onWorkersGone?.();
    return result;
  }
}
