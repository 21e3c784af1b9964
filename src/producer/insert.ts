import type { DbOps } from "../db/db.ts";
import { PgPulseError } from "../shared/errors.ts";
import { type EnqueuedJob, jobFromRow } from "../shared/types.ts";
import { newJob, type PreparedSpec } from "./spec.ts";

/**
 * Writes checked specs as jobs, in one statement, and returns them in the
 * specs' order. A job inserted is its spec's, with the database's id and
 * clock; a live job found by its key (or changed by a later spec of the same
 * call) comes back whole. `again` tells the caller how to repeat the call when
 * a job a spec matched was deleted while it ran.
 */
export async function insertJobs(
  db: Pick<DbOps, "jobEnqueueMany" | "jobInsertMany">, specs: PreparedSpec[], again = "enqueueing the same specs again returns them",
): Promise<EnqueuedJob[]> {
  const body = `[${specs.map((s) => s.text).join(",")}]`;
  if (!specs.some((s) => s.keyed)) {
    const { ids, now } = await db.jobInsertMany(body);
    return specs.map((spec, i) => newJob(spec, ids[i]!, now));
  }
  const made = await db.jobEnqueueMany(body);
  if (made.length !== specs.length) {
    // (what the call wrote stands, committed or in the caller's transaction: keys make repeating it safe)
    throw new PgPulseError("INVALID_STATE", `an enqueue of ${specs.length} jobs with keys answered for ${made.length}: a job a spec matched by its key was deleted while the call ran; the call's jobs stand (in your transaction, if you gave one), and ${again}`, {
      details: { specs: specs.length, answered: made.length },
    });
  }
  return made.map((m) => {
    const spec = specs[m.ord - 1]!;
    return m.kind === "new" ? newJob(spec, m.id, m.createdAt) : { ...jobFromRow(m.row), deduplicated: !m.inserted };
  });
}
