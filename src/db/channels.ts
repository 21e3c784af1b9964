/** Channel every enqueue notifies: `{"schema": ..., "queues": [...]}`. */
export const ENQUEUED_CHANNEL = "job_enqueued";
/** Channel for messages to workers: cancel a running job, health pings. */
export const CONTROL_CHANNEL = "pgpulse_control";

/**
 * The SQL call that announces runnable jobs in some queues: `schema` and
 * `queues` are SQL expressions (a parameter such as `$2::text`, an
 * `array_agg(...)`). Workers of other schemas ignore it.
 */
export function notifyEnqueued(schema: string, queues: string): string {
  return `pg_notify('${ENQUEUED_CHANNEL}', json_build_object('schema', ${schema}, 'queues', ${queues})::text)`;
}
