import type { Db } from "../db/db.ts";
import { DROPPED_SEQ, type LogRow } from "../db/logs.ts";
import { PgPulseError } from "../shared/errors.ts";
import { type Job, jobFromRow, type JobStatus } from "../shared/types.ts";
import type { JobEvent, JobLogLine } from "./types.ts";

/** Channel a followed job's changes are announced on: `{"schema", "id", "status", "progress", "log"?}` (sql/000006). */
export const JOB_CHANNEL = "pgpulse_job";

const FINAL: ReadonlySet<JobStatus> = new Set(["completed", "failed", "cancelled"]);
const LOG_PAGE = 1000;

export function logFromRow(row: LogRow): JobLogLine {
  return { seq: row.seq, attempt: row.attempt, at: row.at, level: row.level as JobLogLine["level"], message: row.message, fields: row.fields };
}

/**
 * Follows one job: marks it watched, LISTENs on pgpulse_job on a connection
 * of its own, and reads the job (and its new log lines) again on each
 * notification that names it, or when the connection comes back after a
 * drop. Yields the job first as it is, then after each change; returns after
 * the job reaches a final status, or when `signal` aborts.
 */
export async function* watchJob(db: Db, id: string, signal?: AbortSignal): AsyncIterableIterator<JobEvent> {
  if (signal?.aborted) return;
  let wake: (() => void) | undefined;
  let dirty = true;
  const poke = () => {
    dirty = true;
    wake?.();
  };
  const onAbort = () => wake?.();
  signal?.addEventListener("abort", onAbort);
  const sql = db.dedicated(`pgpulse watch ${id}`.slice(0, 63));
  try {
    await sql.listen(JOB_CHANNEL, (text) => {
      try {
        const note = JSON.parse(text) as { schema?: string; id?: string };
        if (note.schema === db.schema && note.id === id) poke();
      } catch {
        // not ours
      }
    }, poke);
    await db.jobWatch(id);
    let seq = 0;
    let droppedSeen: string | undefined;
    let last: Job | undefined;
    while (!signal?.aborted) {
      if (!dirty) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      dirty = false;
      const row = await db.jobGet(id);
      if (!row) {
        if (!last) throw new PgPulseError("NOT_FOUND", `no job with id ${id}`);
        return;
      }
      const job = jobFromRow(row);
      const logs: JobLogLine[] = [];
      for (;;) {
        // The line counting the lines past the caps is the last by seq, and its count is
        // updated in place: once it has been read, it is read again, and sent when it changed.
        const page = (await db.logList(id, seq === DROPPED_SEQ ? seq - 1 : seq, LOG_PAGE)).map(logFromRow);
        for (const line of page) {
          if (line.seq !== DROPPED_SEQ) logs.push(line);
          else if (JSON.stringify(line.fields) !== droppedSeen) (droppedSeen = JSON.stringify(line.fields), logs.push(line));
        }
        if (page.length > 0) seq = page[page.length - 1]!.seq;
        if (page.length < LOG_PAGE || seq === DROPPED_SEQ) break;
      }
      const changed = !last || logs.length > 0 || job.status !== last.status || job.progress !== last.progress || job.attempts !== last.attempts;
      last = job;
      if (changed) yield { job, logs };
      if (FINAL.has(job.status)) return;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await sql.end({ timeout: 5 });
  }
}
