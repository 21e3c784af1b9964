-- pgpulse schema, version 8: a claim that returns rows.
--
-- claim_rows() claims as claim_json() of version 6 did, the same jobs in the
-- same way, but returns one row per job with its times as integer
-- microseconds since the epoch, instead of one JSON value. Building that value
-- was over a quarter of the claim's time in Postgres (numeric epochs, and
-- json_build_array() finding an output function per argument per row); rows
-- move the work to the worker, where postgres.js parses each column. Postgres
-- is what every worker shares, so its time per job is what bounds a fleet of
-- workers (docs/performance.md has the figures).
--
-- claim_json() stays for workers of versions 5 to 7, as a wrapper of
-- claim_rows() (at the end of this file).

-- Claims up to n runnable jobs for a worker, as claim_json() did (sql/000005
-- says how; the same order, leases, limits and ahead). One row per job, in no
-- set order (the worker orders them: queue in the order given, started before
-- claimed ahead, then priority, run time and id); times are microseconds since
-- the epoch; waiting_since_us is set for the jobs claimed ahead (their
-- started_at is left null). When a rate limit held jobs back and fewer than n
-- were claimed, one more row has a null id and wake_ms, the time until the
-- earliest next start any of those queues allows.
create function :PGPULSE_SCHEMA.claim_rows(
  queue_names jsonb, task_names jsonb, n integer, worker text, now_ timestamptz default null,
  ahead integer default 0
) returns table (
  id bigint, task text, queue text, payload jsonb, priority integer, attempt integer,
  max_attempts integer, timeout_ms integer, key text, created_us bigint, run_us bigint,
  waiting_since_us bigint, meta jsonb, wake_ms bigint
)
language plpgsql volatile as $$
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

    continue when n - ahead - got <= 0;
    -- A queue with limits: claim() (version 3), one row per job and each with
    -- wake_ms (a row with a null id when it claimed nothing). It does not
    -- return meta: read it by id, rows this transaction just locked.
    for r in
      select c.*, m.meta as job_meta
        from :PGPULSE_SCHEMA.claim(jsonb_build_array(qname), task_names, n - ahead - got, worker, t, 0) c
        left join :PGPULSE_SCHEMA.jobs m on m.id = c.id
    loop
      wake := least(wake, r.wake_ms);
      continue when r.id is null;
      id := r.id; task := r.task; queue := r.queue; payload := r.payload; priority := r.priority;
      attempt := r.attempts; max_attempts := r.max_attempts; timeout_ms := r.timeout_ms; key := r.key;
      created_us := (date_part('epoch', r.created_at) * 1000000)::bigint;
      run_us := (date_part('epoch', r.run_at) * 1000000)::bigint;
      waiting_since_us := (r.waiting_since_ms * 1000)::bigint;
      meta := r.job_meta; wake_ms := null;
      return next;
      got := got + 1;
    end loop;
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

-- claim_json(), which workers of versions 5 to 7 call, becomes claim_rows()
-- with its rows gathered into the one JSON value those workers read (the same
-- tuples, times in ms with the microseconds as decimals, the same wake_ms),
-- so that one function holds the claim.
create or replace function :PGPULSE_SCHEMA.claim_json(
  queue_names jsonb, task_names jsonb, n integer, worker text, now_ timestamptz default null,
  ahead integer default 0
) returns table (jobs json, wake_ms bigint)
language sql volatile as $$
  select json_agg(json_build_array(r.id::text, r.task, r.queue, r.payload, r.priority, r.attempt,
           r.max_attempts, r.timeout_ms, r.key, r.created_us / 1000.0, r.run_us / 1000.0,
           r.waiting_since_us / 1000.0, r.meta)) filter (where r.id is not null),
         max(r.wake_ms)
    from :PGPULSE_SCHEMA.claim_rows(queue_names, task_names, n, worker, now_, ahead) r
$$;
