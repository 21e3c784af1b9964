/**
 * Channel every enqueue notifies: `{"schema", "queues", "t", "n"}`, and a
 * worker passing a notification on adds `"h"` (see worker/roster.ts).
 */
export const ENQUEUED_CHANNEL = "job_enqueued";
/** Channel for messages to workers: cancel a running job, health pings, the fleet changed. */
export const CONTROL_CHANNEL = "pgpulse_control";

/**
 * The SQL call that announces runnable jobs in some queues: `schema` and
 * `queues` are SQL expressions (a parameter such as `$2::text`, an
 * `array_agg(...)`). Workers of other schemas ignore it. `t`, the
 * transaction's id, is the token the workers draw the one that claims from:
 * the same in every listener, different for each transaction, and the same
 * for two notifications of one transaction, which Postgres then folds into one.
 * `count`, when given, is how many jobs became runnable (`n`): the worker that
 * claims passes the notification on only when it took fewer. (Two folded
 * notifications count the jobs of one.)
 */
export function notifyEnqueued(schema: string, queues: string, count?: string): string {
  const n = count ? `, 'n', ${count}` : "";
  return `pg_notify('${ENQUEUED_CHANNEL}', json_build_object('schema', ${schema}, 'queues', ${queues}, 't', txid_current()${n})::text)`;
}
