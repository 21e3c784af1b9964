-- pgpulse schema, version 5: cheaper claims and ends for a worker draining a
-- backlog.
--
-- - claim_json() claims as claim() (version 3) does, but a queue without
--   limits is claimed by a plain statement that finds the rows it locked again
--   by their physical address (ctid) rather than through the primary key, and
--   that orders nothing twice; and all the jobs claimed come back as one JSON
--   value, which a client parses at once rather than column by column, with
--   their times as milliseconds since the epoch.
-- - finish() writes attempts' ends as the statement in src/db/finish.ts did
--   before, but takes them as arrays (an id, an attempt and a letter per job,
--   JSON only for results and errors): about a seventh of the bytes of one
--   JSON object per job.
-- What they cost, and what other storage designs would: docs/performance.md.
--
-- claim() is unchanged: claim_json() calls it for queues with limits, and
-- workers of earlier versions keep calling it against this schema (the
-- tables are the same).

-- Writes the ends of attempts in one statement.
--
-- Ends: for the i-th job, end_ids[i] and end_attempts[i] guard the write (the
-- job must still be running that attempt on this worker, else the end is
-- stale and is skipped), end_kinds[i] is a letter for how it ended:
--   c completed, r retry, f failed, x cancelled, l released (given back
--   unrun: the attempt is not counted), s snoozed (the same, run again later);
-- end_results->(i-1) is a completed job's result (end_results may be null
-- when none has one), end_errors->(i-1) the failed attempt's error record
-- (null when none failed), end_delays[i] a retry's or snooze's delay in ms,
-- and end_starts[i] when a job claimed ahead really started (ms since the
-- epoch), if the worker knows and the database does not yet. A cancel asked
-- for meanwhile wins over a retry, a release or a snooze.
--
-- One notification for the ends announces the queues that got runnable jobs
-- back, and the queues with running limits that got a slot free, so a worker
-- held back by the limit claims again at once.
--
-- Returns one row: statuses, a letter per end in the order given, for the
-- status it reached (c completed, q queued, f failed, x cancelled), or '-'
-- for an end that was stale and not written. (One value rather than a row
-- per end: a worker draining a backlog writes tens of thousands a second.)
--
-- An end lost in a database crash leaves its job running on this worker,
-- which gives it back (or the reaper does): it runs again, nothing is lost.
-- So the commit need not wait for its WAL to reach disk.
create function :PGPULSE_SCHEMA.finish(
  worker text,
  end_ids bigint[], end_attempts integer[], end_kinds text[], end_results jsonb, end_errors jsonb,
  end_delays bigint[], end_starts float8[], now_ timestamptz default null
) returns table (statuses text)
language plpgsql volatile
as $$
#variable_conflict use_column
declare
  t timestamptz := coalesce(now_, now());
  letters text;
  notify text[];
begin
  if cardinality(end_ids) > 0 then
    perform set_config('synchronous_commit', 'off', true);
    -- The ends are found by primary key, one by one: a nested loop over the
    -- arrays, the only sensible plan. The guard ("this worker's, running")
    -- comes from the ends' side (f.worker, f.running) so that the planner
    -- cannot weigh it as a filter on the jobs alone: statistics taken while
    -- nothing ran make this worker's running jobs look like one row, and the
    -- plan then scanned the whole table and compared each running row with
    -- every end (45 ms for 500 ends in a table of 50,000). OFFSET 0 keeps f
    -- a subquery of its own, so its two constants stay opaque.
    with f as (
      -- (the arrays side by side through one unnest: an element by subscript,
      -- kinds[i], would walk the array from its start each time)
      select u.id, u.attempt, u.kind,
             end_results->(u.o::integer - 1) as result, end_errors->(u.o::integer - 1) as error,
             u.delay_ms, u.started_ms, u.o, worker as worker, 'running'::text as running
        from unnest(end_ids, end_attempts, end_kinds, end_delays, end_starts)
          with ordinality as u(id, attempt, kind, delay_ms, started_ms, o)
      offset 0
    ),
    upd as (
      update :PGPULSE_SCHEMA.jobs j set
        status = (case
          when f.kind = 'c' then 'completed'
          when f.kind = 'f' then 'failed'
          when f.kind = 'x' or j.cancel_requested_at is not null then 'cancelled'
          else 'queued' end)::text:::PGPULSE_SCHEMA.job_status,
        result = case when f.kind = 'c' then nullif(f.result, 'null'::jsonb) else j.result end,
        progress = case when f.kind = 'c' then 100 else j.progress end,
        errors = case when f.error is null or f.error = 'null'::jsonb then j.errors
                      else j.errors || jsonb_build_array(f.error || jsonb_build_object('at', t)) end,
        run_at = case when f.kind in ('r', 's') then t + f.delay_ms * interval '1 millisecond'
                      when f.kind = 'l' then least(j.run_at, t) else j.run_at end,
        attempts = case when f.kind in ('l', 's') then j.attempts - 1 else j.attempts end,
        started_at = case when f.kind in ('l', 's') then null
                          else coalesce(j.started_at, to_timestamp(f.started_ms / 1000)) end,
        finished_at = case when f.kind in ('c', 'f', 'x') or j.cancel_requested_at is not null then t else null end,
        worker_id = null
      from f
      where j.id = f.id and j.attempts = f.attempt and j.worker_id = f.worker and j.status::text = f.running
      returning f.o, j.status, j.queue, j.run_at
    )
    select string_agg(case upd.status when 'completed' then 'c' when 'queued' then 'q' when 'failed' then 'f'
                        when 'cancelled' then 'x' else '-' end, '' order by g.o),
           array_agg(distinct upd.queue) filter (
             where (upd.status = 'queued' and upd.run_at <= t)
                or upd.queue in (select q.name from :PGPULSE_SCHEMA.queues q
                                  where q.concurrency is not null or q.group_concurrency is not null))
      into letters, notify
      from generate_series(1, cardinality(end_ids)) g(o) left join upd on upd.o = g.o;
    if notify is not null then
      perform pg_notify('job_enqueued', json_build_object(
        'schema', :PGPULSE_SCHEMA_NAME, 'queues', notify, 't', txid_current())::text);
    end if;
    return query select letters;
  end if;
end;
$$;

-- Claims up to n runnable jobs for a worker, as claim() does (sql/000003 says
-- how; the same order, leases, limits and ahead), and returns them as one
-- row: jobs, a JSON array with one array per job,
--   [id (text), task, queue, payload, priority, attempt, max_attempts,
--    timeout_ms, key, created_ms, run_ms, waiting_since_ms]
-- (null when nothing was claimed), and wake_ms, when a rate limit held jobs
-- back. Times are in ms since the epoch, exact to the microsecond (numeric,
-- not float8: a float's rounding and its text output could move a time by a
-- millisecond). When rate limits held back several queues, wake_ms is the
-- earliest of their next starts (claim() gives the last queue's, which could
-- leave a worker asleep past another queue's next start).
--
-- A queue without limits is claimed here, by plain statements: one locks the
-- first jobs in claim order (SKIP LOCKED) and keeps their addresses, in that
-- order; then they are marked running, with started_at for the first n -
-- ahead of the claim (the others wait in the worker, see claim()). A queue
-- with limits is claimed by claim(), one queue at a time.
create function :PGPULSE_SCHEMA.claim_json(
  queue_names jsonb, task_names jsonb, n integer, worker text, now_ timestamptz default null,
  ahead integer default 0
) returns table (jobs json, wake_ms bigint)
language plpgsql volatile as $$
#variable_conflict use_column
declare
  t timestamptz := coalesce(now_, now());
  tasks text[] := array(select jsonb_array_elements_text(task_names));
  qname text;
  cfg :PGPULSE_SCHEMA.queues;
  got integer := 0;
  want integer;
  starting integer;
  stage integer;
  tids tid[];
  slice tid[];
  found_jobs json[] := '{}';
  part json[];
  wake bigint;
  part_wake bigint;
begin
  -- The lease, checked without a lock, as claim() does: a reaped worker claims nothing.
  perform 1 from :PGPULSE_SCHEMA.workers w where w.id = worker;
  if not found then
    return query select null::json, null::bigint;
    return;
  end if;

  for qname in select jsonb_array_elements_text(queue_names) loop
    exit when got >= n;
    want := n - got;
    select * into cfg from :PGPULSE_SCHEMA.queues q where q.name = qname;
    if found and cfg.paused then
      continue;
    end if;

    if not found or (cfg.concurrency is null and cfg.group_concurrency is null and cfg.rate_max is null) then
      -- array(...) keeps the subquery's order: claim order.
      tids := array(
        select j.ctid from :PGPULSE_SCHEMA.jobs j
         where j.status = 'queued' and j.queue = qname and j.run_at <= t and j.task = any(tasks)
         order by j.priority desc, j.run_at, j.id
         limit want
         for update skip locked);
      continue when cardinality(tids) = 0;
      -- The rows are locked by this transaction, so their addresses hold until
      -- it ends. The first of them (in claim order) start now (stage 0); the
      -- rest wait in the worker with started_at null (stage 1). One statement
      -- per stage, each finding its rows by address: one that compared every
      -- row with the list of those starting would grow with the square of the
      -- claim.
      starting := greatest(0, least(cardinality(tids), n - ahead - got));
      for stage in 0..1 loop
        slice := case when stage = 0 then tids[1:starting] else tids[starting + 1:] end;
        continue when cardinality(slice) = 0;
        with u as (
          update :PGPULSE_SCHEMA.jobs j set
            status = 'running', attempts = j.attempts + 1, worker_id = worker, progress = 0,
            started_at = case when stage = 0 then t end
          where j.ctid = any(slice)
          returning j.id, j.task, j.queue, j.payload, j.priority, j.attempts, j.max_attempts, j.timeout_ms,
            j.key, j.created_at, j.run_at
        )
        select coalesce(array_agg(json_build_array(u.id::text, u.task, u.queue, u.payload, u.priority, u.attempts,
                 u.max_attempts, u.timeout_ms, u.key, extract(epoch from u.created_at) * 1000,
                 extract(epoch from u.run_at) * 1000,
                 case when stage = 1 then extract(epoch from t) * 1000 end)), '{}')
          into part from u;
        found_jobs := found_jobs || part;
        got := got + cardinality(part);
      end loop;
      continue;
    end if;

    continue when n - ahead - got <= 0;
    select coalesce(array_agg(json_build_array(c.id::text, c.task, c.queue, c.payload, c.priority, c.attempts,
             c.max_attempts, c.timeout_ms, c.key, extract(epoch from c.created_at) * 1000,
             extract(epoch from c.run_at) * 1000, c.waiting_since_ms)) filter (where c.id is not null), '{}'),
           max(c.wake_ms)
      into part, part_wake
      from :PGPULSE_SCHEMA.claim(jsonb_build_array(qname), task_names, n - ahead - got, worker, t, 0) c;
    found_jobs := found_jobs || part;
    got := got + cardinality(part);
    wake := least(wake, part_wake);
  end loop;

  if got > 0 then
    -- Jobs were claimed: the lease must hold until this commits (claim() says why).
    perform 1 from :PGPULSE_SCHEMA.workers w where w.id = worker for key share;
    if not found then
      raise exception 'pgpulse: worker % lost its lease while claiming; the claim is undone', worker
        using errcode = '55000';
    end if;
    -- A claim lost in a database crash leaves its jobs queued, to be claimed
    -- again: it need not wait for its commit to reach disk.
    perform set_config('synchronous_commit', 'off', true);
  end if;

  return query select case when got > 0 then array_to_json(found_jobs) end,
    case when got < n then wake end;
end;
$$;
