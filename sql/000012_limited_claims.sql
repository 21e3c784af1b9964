-- pgpulse schema, version 12: a claim that fills a rate limit's window says
-- when the next start is allowed; queues with limits are not starved by later
-- queues' backlogs.
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
-- from the claim ahead, and the worker starts jobs of earlier queues first.
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

    -- A queue with limits takes the free slots. With none free it takes from the
    -- claim ahead: a worker claims ahead only while its runs are short, and it
    -- starts such a job (started as claim() marks it, counted against the limit)
    -- at its next free slot, before the jobs of later queues it holds. Given only
    -- free slots, an earlier queue with limits starved behind a later queue's
    -- backlog, which the worker kept claiming ahead of its slots.
    limited := case when n - ahead - got > 0 then n - ahead - got else n - got end;
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
      meta := r.job_meta; wake_ms := null;
      return next;
      got := got + 1;
    end loop;
    -- claim() sets a wake-up only for a window that was full before it claimed.
    -- One this claim filled says when too: when its oldest start leaves it.
    if cfg.rate_max is not null then
      select case when count(*) >= cfg.rate_max
                  then ceil(extract(epoch from min(s) + cfg.rate_interval_ms * interval '1 millisecond' - t) * 1000)::bigint end
        into spent
        from :PGPULSE_SCHEMA.queues q, unnest(q.rate_starts) s
       where q.name = qname and s > t - cfg.rate_interval_ms * interval '1 millisecond';
      wake := least(wake, spent);
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
