import type postgres from "postgres";

/**
 * Holds the latest progress of each running job and writes all of them in one
 * statement every intervalMs, so a handler may report progress in a tight loop
 * without a write per call. Progress is not an indexed column: with the jobs
 * table's fillfactor these are HOT updates.
 */
export class ProgressWriter {
  #latest = new Map<string, { attempt: number; percent: number }>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #text: string;

  constructor(
    private sql: postgres.Sql,
    q: string,
    private workerId: string,
    private intervalMs: number,
    private onError: (error: unknown) => void,
  ) {
    this.#text = `
      update ${q}.jobs j set progress = f.percent
      from jsonb_to_recordset($1::text::jsonb) as f(id bigint, attempt integer, percent smallint)
      where j.id = f.id and j.attempts = f.attempt and j.worker_id = $2 and j.status = 'running'
        and j.progress is distinct from f.percent`;
  }

  set(id: string, attempt: number, percent: number): void {
    this.#latest.set(id, { attempt, percent });
    this.#timer ??= setTimeout(() => void this.flush(), this.intervalMs);
  }

  /** Drops a job's unwritten progress: its final write sets progress itself. */
  forget(id: string): void {
    this.#latest.delete(id);
  }

  async flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#latest.size === 0) return;
    const rows = [...this.#latest].map(([id, p]) => ({ id, attempt: p.attempt, percent: p.percent }));
    this.#latest.clear();
    try {
      await this.sql.unsafe(this.#text, [JSON.stringify(rows), this.workerId], { prepare: true });
    } catch (error) {
      // Progress is advisory: a lost write is superseded by the next one or by the job's end.
      this.onError(error);
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#latest.clear();
  }
}
