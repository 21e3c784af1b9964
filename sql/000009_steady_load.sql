-- pgpulse schema, version 9: two fixes for a steady stream of enqueues while
-- workers run (docs/performance.md has the figures): an enqueue's notification
-- sent after its commit, and claims that keep finding their rows by address.
--
-- A transaction that notifies takes a lock that Postgres holds from the start
-- of its commit until the commit is on disk, so that notifications are queued
-- in commit order. Every notifying transaction of the server waits for it in
-- turn: enqueues that notify cannot share a WAL flush (group commit), and on
-- busy cores each hand-over of the lock waits for the next backend to be
-- scheduled. At 1,000 single enqueues a second beside a working worker, the
-- enqueues queued on that lock for tens to hundreds of milliseconds.
--
-- enqueue_plain() inserts jobs without keys and commits, then notifies in a
-- second transaction whose commit does not wait for the disk: the lock is held
-- for moments, and the inserts group-commit like any other write. A producer
-- calls it for enqueues that are not in the caller's transaction; one round
-- trip, as before. In the caller's transaction the producer's own statement
-- (src/db/jobs.ts) inserts and notifies in that transaction, since only its
-- commit may wake a worker.

-- Inserts jobs without keys from a JSON array of specs, as the producer's
-- statement for a caller's transaction does (src/db/jobs.ts, insertPlain: the
-- same columns and defaults; test/enqueue.test.ts compares the rows), and
-- commits; then the notification for the jobs runnable now, from a transaction
-- that does not wait for its commit to reach disk (a notification lost in a
-- crash costs a worker's sweep, not a job). ids: the new ids in input order,
-- comma-separated; now: the database's clock. Must be called outside a
-- transaction block (CALL in a transaction of its own), as any procedure that
-- commits. The insert is written here rather than called as a function: a
-- function around it cost about 0.1 ms per call. Each part of a long list of
-- queues carries the whole count n (a worker may pass one on needlessly).
create procedure :PGPULSE_SCHEMA.enqueue_plain(specs jsonb, inout ids text default null, inout now timestamptz default null)
language plpgsql as $$
declare
  ready text[];
  part text[];
  n bigint;
begin
  with t as (select now() as now),
  ins as (
    insert into :PGPULSE_SCHEMA.jobs (queue, task, payload, priority, run_at, max_attempts, timeout_ms, group_key, created_at, meta)
    select coalesce(s.queue, 'default'), s.task, coalesce(s.payload, '{}'), coalesce(s.priority, 0),
      coalesce(s.run_at, t.now + coalesce(s.delay_ms, 0) * interval '1 millisecond'),
      coalesce(s.max_attempts, 10), s.timeout_ms, s."group", t.now, s.meta
    from jsonb_to_recordset(specs) as s(task text, payload jsonb, queue text, priority integer,
      run_at timestamptz, delay_ms bigint, max_attempts integer, timeout_ms integer, "group" text, meta jsonb), t
    returning id, queue, run_at
  )
  select string_agg(ins.id::text, ',' order by ins.id), (select t.now from t),
    array_agg(distinct ins.queue) filter (where ins.run_at <= (select t.now from t)),
    count(*) filter (where ins.run_at <= (select t.now from t))
    into ids, now, ready, n
    from ins;
  commit;
  -- Once the insert is in, nothing may fail the call, or the caller would take
  -- the jobs for not enqueued: no notification while Postgres's notification
  -- queue is over half full (a listener not reading; sending would fail at the
  -- commit once it is full), and none over 8,000 bytes. Workers' sweeps find
  -- jobs not announced.
  if n > 0 and pg_notification_queue_usage() < 0.5 then
    perform set_config('synchronous_commit', 'off', true);
    -- many queues, or names that JSON escapes, go in parts that fit
    if octet_length(to_json(ready)::text) <= 7000 then
      perform pg_notify('job_enqueued', json_build_object(
        'schema', :PGPULSE_SCHEMA_NAME, 'queues', ready, 't', txid_current(), 'n', n)::text);
    else
      for part in
        select array_agg(r order by r) from (
          select r, sum(octet_length(to_json(r)::text) + 1) over (order by r) / 7000 as p from unnest(ready) r
        ) x group by x.p order by x.p
      loop
        perform pg_notify('job_enqueued', json_build_object(
          'schema', :PGPULSE_SCHEMA_NAME, 'queues', part, 't', txid_current(), 'n', n)::text);
      end loop;
    end if;
  end if;
end;
$$;

-- claim_rows() finds the rows it locked by their addresses (ctid = any(...)). A
-- connection keeps the plans of a function's statements, and the plan made
-- while the jobs table held a few rows read the whole table for that, a plan
-- kept as finished jobs piled up: every claim got slower, until an analyze of
-- the table (autovacuum's, a minute or more later) made the connection plan
-- again. Without sequential scans the planner picks the lookup by address
-- whatever the table held; every other statement of the claim reads an index.
-- claim() (queues with limits, and workers of versions 2 to 4) updates the
-- rows it picked by id, with the same risk.
alter function :PGPULSE_SCHEMA.claim_rows(jsonb, jsonb, integer, text, timestamptz, integer)
  set enable_seqscan = off;
alter function :PGPULSE_SCHEMA.claim(jsonb, jsonb, integer, text, timestamptz, integer)
  set enable_seqscan = off;
