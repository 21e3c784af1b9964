import { type DbContext, run, runJson, runRows } from "./context.ts";

/** Job logs (sql/000006): lines a handler logged, kept with the job. */
export function logsSql(q: string) {
  return {
    append: `select ${q}.append_logs($1::text::jsonb, $2::integer, $3::integer) as kept`,
    watch: `update ${q}.jobs set watched = true where id = $1::bigint and not watched`,
    // (JSON text, runJson: a caller's transaction may run it)
    list: `
      select json_build_object('seq', seq, 'attempt', attempt, 'at', at, 'level', level, 'message', message, 'fields', fields)::text
        from ${q}.job_logs
       where job_id = $1::bigint and seq > $2::integer
       order by seq limit $3`,
  };
}

/**
 * The seq of a job's "dropped" line, which counts its lines past the caps:
 * append_logs (sql/000006) keeps it last and updates its count in place.
 */
export const DROPPED_SEQ = 2_147_483_647;

/** One line to append: [job id, attempt, at (ms since the epoch), level, message, fields]. */
export type LogLine = [string, number, number, string, string, Record<string, unknown> | null];

export interface LogRow {
  seq: number;
  attempt: number;
  at: Date;
  level: string;
  message: string;
  fields: Record<string, unknown> | null;
}

export function logsOps(c: DbContext, t: ReturnType<typeof logsSql>) {
  return {
    /** Appends lines of running jobs, within each job's caps; returns how many were kept. */
    async logAppend(lines: readonly LogLine[], maxLines: number, maxBytes: number): Promise<number> {
      // (read by position: runJobs of pgpulse/testing appends in the caller's transaction)
      const [row] = await runRows(c, t.append, [JSON.stringify(lines), maxLines, maxBytes]);
      return Number(row![0]);
    },
    /** Marks a job followed: from now on its changes are announced on pgpulse_job. */
    async jobWatch(id: string): Promise<void> {
      await run(c, t.watch, [id]);
    },
    /** A job's lines after seq `after`, in order. */
    async logList(jobId: string, after: number, limit: number): Promise<LogRow[]> {
      const rows = await runJson<Omit<LogRow, "at"> & { at: string }>(c, t.list, [jobId, after, limit]);
      return rows.map((r) => ({ ...r, at: new Date(r.at) }));
    },
  };
}
