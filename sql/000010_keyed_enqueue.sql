-- pgpulse schema, version 10: enqueues with keys notify after their commit.
--
-- Version 9 moved the notification of an enqueue without keys out of the
-- insert's transaction (enqueue_plain(): sql/000009 says why: Postgres holds a
-- lock for a notifying commit until it is on disk, and every notifying commit
-- of the server waits for it in turn). Enqueues with keys (deduplication,
-- throttle, debounce; schedules' jobs) still notified in their transaction, so
-- under a steady stream of them each commit waited for the one before it:
-- 16 producers at once enqueued about a third as many keyed jobs a second as
-- plain ones, and a worker beside 1,000 keyed enqueues a second fell seconds
-- behind (docs/performance.md).
--
-- It also runs enqueue_many() without sequential scans, as version 9 did
-- claim_rows(): a connection keeps the plans of a function's statements, and
-- those made while the jobs table held a few rows read the whole table to
-- find the jobs enqueue_many() returns (and the keys it looks up), plans kept
-- as jobs piled up, until an analyze of the table made the connection plan
-- again. Every keyed enqueue got slower with the table (13 reads of the whole
-- table for an enqueue of four keyed specs, in test/enqueue.test.ts). Each of
-- its statements has an index to read.
--
-- enqueue_keyed() runs enqueue_many() as before, commits, then notifies from a
-- second transaction that does not wait for the disk, as enqueue_plain()
-- does. enqueue_many() is the same as in version 4 but for that option and
-- its notification, which it leaves to enqueue_keyed() when that calls it
-- (pgpulse.notify_later set in the transaction); called any other way (SQL
-- enqueue() from a trigger, schedules, a caller's transaction) it notifies in
-- its transaction, as before.

create or replace function :PGPULSE_SCHEMA.enqueue_many(specs jsonb, now_ timestamptz default null)
returns table (ord integer, inserted boolean, job :PGPULSE_SCHEMA.jobs)
language plpgsql volatile
-- (see the head of this file)
set enable_seqscan = off
as $$
#variable_conflict use_column
declare
  t timestamptz := coalesce(now_, now());
  seq regclass := pg_get_serial_sequence(':PGPULSE_SCHEMA.jobs', 'id')::regclass;
  ids bigint[];
  keys text[];
  fresh boolean[];
  plain integer[];
  special integer[];
  pending integer[];
  retry integer[];
  missed integer[];
  got bigint[];
  ready text[] := '{}';
  nready integer := 0;
  existing bigint;
  spec jsonb;
  tries integer;
  i integer;
begin
  if jsonb_typeof(specs) is distinct from 'array' then
    raise exception 'pgpulse: enqueue_many expects a JSON array' using errcode = '22023';
  end if;

  -- Ids are drawn up front so that each spec keeps its position through the insert.
  select array_agg(nextval(seq) order by s.o), array_agg(s.v->>'key' order by s.o),
         array_agg(false order by s.o),
         coalesce(array_agg(s.o::integer order by s.o)
           filter (where not (s.v ? 'throttle_ms' or s.v ? 'debounce_ms')), '{}'),
         coalesce(array_agg(s.o::integer order by s.o)
           filter (where s.v ? 'throttle_ms' or s.v ? 'debounce_ms'), '{}')
    into ids, keys, fresh, plain, special
    from jsonb_array_elements(specs) with ordinality as s(v, o);
  if ids is null then
    return;
  end if;

  -- Throttled and debounced specs go one by one, inserts included, so that a
  -- later spec in the batch sees what an earlier one did to the same key.
  foreach i in array special loop
    spec := specs->(i - 1);
    existing := null;
    tries := 0;
    loop
      tries := tries + 1;
      if spec ? 'throttle_ms' then
        select j.id into existing from :PGPULSE_SCHEMA.jobs j
         where j.key = keys[i] and j.created_at > t - (spec->>'throttle_ms')::bigint * interval '1 millisecond'
         order by j.created_at desc limit 1;
      else
        update :PGPULSE_SCHEMA.jobs j set
            payload = coalesce(spec->'payload', '{}'::jsonb),
            run_at = t + (spec->>'debounce_ms')::bigint * interval '1 millisecond',
            priority = coalesce((spec->>'priority')::integer, j.priority),
            max_attempts = greatest(j.attempts + 1, coalesce((spec->>'max_attempts')::integer, j.max_attempts)),
            timeout_ms = coalesce((spec->>'timeout_ms')::integer, j.timeout_ms)
          where j.key = keys[i] and j.status = 'queued'
          returning j.id into existing;
      end if;
      if existing is not null then
        ids[i] := existing;
        exit;
      end if;
      select coalesce(array_agg(x.id), '{}'),
             ready || coalesce(array_agg(distinct x.queue) filter (where x.run_at <= t), '{}'),
             nready + count(*) filter (where x.run_at <= t)
        into got, ready, nready
        from :PGPULSE_SCHEMA.insert_specs(specs, array[i], ids, t) x;
      if cardinality(got) > 0 then
        fresh[i] := true;
        exit;
      end if;
      -- a live job holds the key and is running (a queued one was updated above)
      select j.id into existing from :PGPULSE_SCHEMA.jobs j
       where j.key = keys[i] and j.status in ('queued', 'running');
      if existing is not null then
        ids[i] := existing;
        exit;
      end if;
      if tries >= 5 then
        raise exception 'pgpulse: could not settle key % after % tries', keys[i], tries using errcode = '40001';
      end if;
    end loop;
  end loop;

  pending := plain;
  tries := 0;
  while cardinality(pending) > 0 loop
    tries := tries + 1;
    select coalesce(array_agg(x.id), '{}'),
           ready || coalesce(array_agg(distinct x.queue) filter (where x.run_at <= t), '{}'),
           nready + count(*) filter (where x.run_at <= t)
      into got, ready, nready
      from :PGPULSE_SCHEMA.insert_specs(specs, pending, ids, t) x;

    -- A spec that was not inserted collided with a live job's key (in the table
    -- or earlier in this batch): it resolves to that job. This statement sees
    -- jobs committed after the insert began; if the colliding job has ended
    -- meanwhile, the spec is inserted on the next pass.
    -- (a join, not "= any" per spec: a batch of thousands stays linear)
    select coalesce(array_agg(p.o), '{}') into missed
      from unnest(pending) p(o) left join unnest(got) g(id) on g.id = ids[p.o]
     where g.id is null;
    foreach i in array pending loop
      fresh[i] := true;
    end loop;
    retry := '{}';
    foreach i in array missed loop
      fresh[i] := false;
      select j.id into existing from :PGPULSE_SCHEMA.jobs j
       where j.key = keys[i] and j.status in ('queued', 'running');
      if existing is null then
        retry := retry || i;
      else
        ids[i] := existing;
      end if;
    end loop;
    if cardinality(retry) > 0 and tries >= 5 then
      raise exception 'pgpulse: could not settle key % after % tries', keys[retry[1]], tries
        using errcode = '40001';
    end if;
    pending := retry;
  end loop;

  if cardinality(ready) > 0 then
    if current_setting('pgpulse.notify_later', true) = 'on' then
      -- enqueue_keyed() notifies after its commit
      perform set_config('pgpulse.ready', json_build_object(
        'queues', (select array_agg(distinct r) from unnest(ready) r), 'n', nready)::text, true);
    else
      perform pg_notify('job_enqueued', json_build_object(
        'schema', :PGPULSE_SCHEMA_NAME, 'queues', (select array_agg(distinct r) from unnest(ready) r),
        't', txid_current(), 'n', nready)::text);
    end if;
  end if;

  -- Joined through unnest so the planner looks each id up in the primary key;
  -- a join on ids[o] was planned as a sequential scan of the whole table.
  return query
    select u.o::integer, fresh[u.o], j
      from unnest(ids) with ordinality as u(id, o)
      join :PGPULSE_SCHEMA.jobs j on j.id = u.id
     order by u.o;
end;
$$;

-- The notification for jobs that became runnable (queues: their distinct
-- queue names; n: how many), sent as enqueue_plain() sends it: not while
-- Postgres's notification queue is over half full, in parts under its
-- 8,000-byte limit, and from a transaction that need not wait for the disk (a
-- notification lost in a crash costs a worker's sweep, not a job). Called
-- after the jobs' commit, so nothing in it may fail the call.
create function :PGPULSE_SCHEMA.notify_enqueued(queues text[], n bigint)
returns void
language plpgsql volatile as $$
declare
  part text[];
begin
  if n > 0 and pg_notification_queue_usage() < 0.5 then
    perform set_config('synchronous_commit', 'off', true);
    if octet_length(to_json(queues)::text) <= 7000 then
      perform pg_notify('job_enqueued', json_build_object(
        'schema', :PGPULSE_SCHEMA_NAME, 'queues', queues, 't', txid_current(), 'n', n)::text);
    else
      for part in
        select array_agg(r order by r) from (
          select r, sum(octet_length(to_json(r)::text) + 1) over (order by r) / 7000 as p from unnest(queues) r
        ) x group by x.p order by x.p
      loop
        perform pg_notify('job_enqueued', json_build_object(
          'schema', :PGPULSE_SCHEMA_NAME, 'queues', part, 't', txid_current(), 'n', n)::text);
      end loop;
    end if;
  end if;
end;
$$;

-- enqueue_many() from a producer's own pool: the same specs and the same
-- answer, as one JSON text (a procedure returns no rows): an array of
-- [ord, inserted, job] in input order, job the jobs row as JSON with its
-- bigint ids as strings. Commits, then notifies (notify_enqueued()). Must be
-- called outside a transaction block, as any procedure that commits.
create procedure :PGPULSE_SCHEMA.enqueue_keyed(specs jsonb, inout jobs text default null)
language plpgsql as $$
declare
  ready json;
begin
  perform set_config('pgpulse.notify_later', 'on', true);
  select json_agg(json_build_array(e.ord, e.inserted,
           to_jsonb(e.job) || jsonb_build_object('id', (e.job).id::text, 'batch_id', (e.job).batch_id::text))
           order by e.ord)::text
    into jobs
    from :PGPULSE_SCHEMA.enqueue_many(specs) e;
  ready := nullif(current_setting('pgpulse.ready', true), '')::json;
  commit;
  if ready is not null then
    perform :PGPULSE_SCHEMA.notify_enqueued(
      array(select json_array_elements_text(ready->'queues')), (ready->>'n')::bigint);
  end if;
end;
$$;
