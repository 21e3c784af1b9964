-- pgpulse schema, version 12: a claim that fills a rate limit's window says
-- when the next start is allowed; queues with limits are not starved by later
-- queues' backlogs; keys within one enqueue go in input order, and a debounce
-- moves the job's queue, group and meta too.
--
-- claim() (version 3) computes a wake-up only when the window was already full
-- before it claimed. A claim that took the window's last starts returned none,
-- so a worker with a backlog and no new enqueues waited for its next sweep (2 s
-- by default) instead of the window: a queue limited to 2 starts per 300 ms ran
-- 2 per sweep. (Steady enqueues hid it: their notifications woke the workers.)
--
-- A queue with limits was given only the worker's free slots. A worker draining
-- a later queue's backlog of short jobs claims ahead of its slots, and its free
-- slots fill from what it holds, so they were never free at a claim: an earlier
-- queue with a concurrency limit waited until the later queue's backlog was gone
-- (29,478 jobs ran before its one job, in a test). With no slot free, it now takes
-- one job a claim from the claim ahead (not started until the worker starts it),
-- and the worker starts jobs of earlier queues first.
--
-- claim_rows() is version 8's with those two changes.

create or replace function :PGPULSE_SCHEMA.claim_rows(
  queue_names jsonb, task_names jsonb, n integer, worker text, now_ timestamptz default null,
  ahead integer default 0
) returns table (
  id bigint, task text, queue text, payload jsonb, priority integer, attempt integer,
  max_attempts integer, timeout_ms integer, key text, created_us bigint, run_us bigint,
  waiting_since_us bigint, meta jsonb, wake_ms bigint
)
language plpgsql volatile
set enable_seqscan = off -- as version 9 set it (a replaced function keeps only what it states)
as $$
#variable_conflict use_column
declare
  t timestamptz := coalesce(now_, now());
  -- (date_part() computes in float8: at this scale its error is far below half a
  -- microsecond, so the cast to bigint gives the exact microsecond; extract()
  -- is exact too, but computes in numeric at several times the cost)
  t_us bigint := (date_part('epoch', t) * 1000000)::bigint;
  tasks text[] := array(select jsonb_array_elements_text(task_names));
  qname text;
  cfg :PGPULSE_SCHEMA.queues;
  got integer := 0;
  claimed integer;
  want integer;
  starting integer;
  stage integer;
  tids tid[];
  slice tid[];
  wake bigint;
  spent bigint;
  limited integer;
  one_ahead boolean;
  r record;
begin
  -- The lease, checked without a lock, as claim() does: a reaped worker claims nothing.
  perform 1 from :PGPULSE_SCHEMA.workers w where w.id = worker;
  if not found then
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
      -- Locked by this transaction, so the addresses hold until it ends. The
      -- first of them (in claim order) start now (stage 0), the rest wait in
      -- the worker with started_at null (stage 1): one statement per stage,
      -- each finding its rows by address.
      starting := greatest(0, least(cardinality(tids), n - ahead - got));
      for stage in 0..1 loop
        slice := case when stage = 0 then tids[1:starting] else tids[starting + 1:] end;
        continue when cardinality(slice) = 0;
        return query
          update :PGPULSE_SCHEMA.jobs j set
            status = 'running', attempts = j.attempts + 1, worker_id = worker, progress = 0,
            started_at = case when stage = 0 then t end
          where j.ctid = any(slice)
          returning j.id, j.task, j.queue, j.payload, j.priority, j.attempts, j.max_attempts, j.timeout_ms,
            j.key, (date_part('epoch', j.created_at) * 1000000)::bigint, (date_part('epoch', j.run_at) * 1000000)::bigint,
            case when stage = 1 then t_us end, j.meta, null::bigint;
        get diagnostics claimed = row_count;
        got := got + claimed;
      end loop;
      continue;
    end if;

    -- A queue with limits takes the free slots. With none free it takes one job
    -- from the claim ahead. Given only free slots, an earlier queue with limits
    -- starved behind a later queue's backlog, which the worker kept claiming
    -- ahead of its slots. A worker claims ahead only while its runs are short,
    -- and it starts such a job at its next free slot, before the jobs of later
    -- queues it holds. Until then the job waits as jobs claimed ahead do
    -- (started_at null: a worker that dies first costs it no attempt), counted
    -- against the queue's limits from its claim. One a claim: a busy worker
    -- takes no more of a limited queue than it is about to start.
    one_ahead := n - ahead - got <= 0;
    limited := case when one_ahead then least(n - got, 1) else n - ahead - got end;
    continue when limited <= 0;
    -- claim() (version 3), one row per job and each with wake_ms (a row with a
    -- null id when it claimed nothing). It does not return meta: read it by id,
    -- rows this transaction just locked.
    for r in
      select c.*, m.meta as job_meta
        from :PGPULSE_SCHEMA.claim(jsonb_build_array(qname), task_names, limited, worker, t, 0) c
        left join :PGPULSE_SCHEMA.jobs m on m.id = c.id
    loop
      wake := least(wake, r.wake_ms);
      continue when r.id is null;
      id := r.id; task := r.task; queue := r.queue; payload := r.payload; priority := r.priority;
      attempt := r.attempts; max_attempts := r.max_attempts; timeout_ms := r.timeout_ms; key := r.key;
      created_us := (date_part('epoch', r.created_at) * 1000000)::bigint;
      run_us := (date_part('epoch', r.run_at) * 1000000)::bigint;
      waiting_since_us := (r.waiting_since_ms * 1000)::bigint;
      if one_ahead then
        update :PGPULSE_SCHEMA.jobs j set started_at = null where j.id = r.id;
        waiting_since_us := t_us;
      end if;
      meta := r.job_meta; wake_ms := null;
      return next;
      got := got + 1;
    end loop;
    -- claim() sets a wake-up only for a window that was full before it claimed.
    -- One this claim filled says when too, if jobs are left: when its oldest
    -- start leaves it.
    if cfg.rate_max is not null then
      perform 1 from :PGPULSE_SCHEMA.jobs j
       where j.status = 'queued' and j.queue = qname and j.run_at <= t and j.task = any(tasks) limit 1;
      if found then
        select case when count(*) >= cfg.rate_max
                    then ceil(extract(epoch from min(s) + cfg.rate_interval_ms * interval '1 millisecond' - t) * 1000)::bigint end
          into spent
          from :PGPULSE_SCHEMA.queues q, unnest(q.rate_starts) s
         where q.name = qname and s > t - cfg.rate_interval_ms * interval '1 millisecond';
        wake := least(wake, spent);
      end if;
    end if;
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
  if got < n and wake is not null then
    return query select null::bigint, null::text, null::text, null::jsonb, null::integer, null::integer,
      null::integer, null::integer, null::text, null::bigint, null::bigint, null::bigint, null::jsonb, wake;
  end if;
end;
$$;

-- enqueue_many(), version 10's with two changes:
-- - Throttled and debounced specs went one by one before every other spec of
--   the call, so [{key K, payload 1}, {key K, throttle}] stored payload 2 and
--   answered the first spec as the one deduplicated. A spec whose key a
--   throttled or debounced spec of the call names now goes one by one with
--   them, in input order; specs with other keys, or none, still go together.
-- - A debounce gave the queued job the new payload, run time, priority,
--   attempts and timeout, not the queue, group or meta given; it now gives
--   those too (each left as it was when the spec does not give it).
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
  -- A spec whose key a throttled or debounced spec of the call also names goes one
  -- by one with them, in input order (version 12: before, all throttled and
  -- debounced specs went first, so one could take the key from an earlier plain spec).
  with s as (select v, o from jsonb_array_elements(specs) with ordinality as x(v, o)),
  held as (select distinct v->>'key' as k from s where v ? 'throttle_ms' or v ? 'debounce_ms')
  select array_agg(nextval(seq) order by s.o), array_agg(s.v->>'key' order by s.o),
         array_agg(false order by s.o),
         coalesce(array_agg(s.o::integer order by s.o) filter (where held.k is null), '{}'),
         coalesce(array_agg(s.o::integer order by s.o) filter (where held.k is not null), '{}')
    into ids, keys, fresh, plain, special
    from s left join held on held.k = s.v->>'key';
  if ids is null then
    return;
  end if;

  -- Throttled and debounced specs (and the others with their keys) go one by one,
  -- inserts included, so that a later spec in the batch sees what an earlier one
  -- did to the same key.
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
      elsif spec ? 'debounce_ms' then
        -- (version 12: the queue, group and meta given move with the rest)
        update :PGPULSE_SCHEMA.jobs j set
            payload = coalesce(spec->'payload', '{}'::jsonb),
            run_at = t + (spec->>'debounce_ms')::bigint * interval '1 millisecond',
            priority = coalesce((spec->>'priority')::integer, j.priority),
            max_attempts = greatest(j.attempts + 1, coalesce((spec->>'max_attempts')::integer, j.max_attempts)),
            timeout_ms = coalesce((spec->>'timeout_ms')::integer, j.timeout_ms),
            queue = coalesce(spec->>'queue', j.queue),
            group_key = coalesce(spec->>'group', j.group_key),
            meta = coalesce(spec->'meta', j.meta)
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
      -- a live job holds the key (running, or queued when this spec neither throttles nor debounces)
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
