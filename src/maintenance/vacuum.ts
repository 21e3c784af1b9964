import type { Db } from "../db/db.ts";
import { PeriodicService } from "../shared/service.ts";
import type { MaintenanceDeps } from "./deps.ts";

/** Dead rows in the jobs table above which a worker vacuums it (when autovacuum will not). */
export const VACUUM_DEAD_ROWS = 1000;

export interface VacuumOptions extends MaintenanceDeps {
  db: Pick<Db, "jobsVacuumState" | "jobsVacuum">;
  /** How often to look. Nobody vacuums more than once per half of it. */
  intervalMs: number;
}

/**
 * Vacuums pgpulse's tables when nothing else will: on a server, or for a jobs
 * table, with autovacuum turned off. A queue writes every job's row two or
 * three times; without vacuum the dead versions pile up, the table and its
 * indexes grow whatever the retention, and claims slow down stepping over dead
 * index entries. With autovacuum on (the table's own settings make it eager)
 * this does nothing. It vacuums only when dead rows have piled up and nobody
 * vacuumed within half an interval, so workers take turns, and dead rows a long
 * transaction keeps alive do not make every worker vacuum every time.
 */
export class Vacuum extends PeriodicService<boolean> {
  constructor(private o: VacuumOptions) {
    super(o);
  }

  /** One pass: whether it vacuumed. */
  async runOnce(): Promise<boolean> {
    const { o } = this;
    const state = await o.db.jobsVacuumState(Math.floor(o.intervalMs / 2));
    if (!state || !state.autovacuumOff || state.recent || state.deadRows < VACUUM_DEAD_ROWS) return false;
    await o.db.jobsVacuum();
    o.events.emit("jobs:vacuumed", { workerId: o.workerId });
    return true;
  }
}
