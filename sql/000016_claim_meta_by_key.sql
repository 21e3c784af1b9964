-- pgpulse schema, version 16: a claim of a queue with limits reads the meta of
-- the jobs it claimed by key, whatever the table held when the connection
-- planned it.
--
-- claim_rows() (version 12) reads the meta of the jobs claim() claimed for a
-- queue with limits by joining them to jobs. Postgres takes a function to
-- return 1,000 rows unless told otherwise, so a connection that planned that
-- join while the table was small made it a hash join over the whole primary
-- key index, and kept the plan as the table grew: with 320,000 rows, a claim of
-- 100 jobs read every one of them, about 140 ms. The plan read no row
-- sequentially, so version 9's setting (sequential scans off) did not stop it.
-- The meta is now read by a subquery per row, which can only be a lookup by
-- key.
--
-- claim_rows() is version 12's with that change, restated whole (a replaced
-- function keeps only the settings it states: those of versions 9, 13 and 15
-- are stated again).

create or replace function :PGPULSE_SCHEMA.claim_rows(
  queue_names jsonb, task_names jsonb, n integer, worker text, now_ timestamptz default null,
  ahead integer default 0
) returns table (
  id bigint, task text, queue text, payload jsonb, priority integer, attempt integer,
  max_attempts integer, timeout_ms integer, key text, created_us bigint, run_us bigint,
  waiting_since_us bigint, meta jsonb, wake_ms bigint
)
language plpgsql volatile
-- (a replaced function keeps only what it states: versions 9, 13 and 15's settings)
set enable_seqscan = off
set jit = off
set plan_cache_mode = force_generic_plan
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
    -- rows this transaction just locked, one lookup a row (version 16: a join
    -- could be planned as a hash join over the whole primary key).
    for r in
      select c.*, (select m.meta from :PGPULSE_SCHEMA.jobs m where m.id = c.id) as job_meta
        from :PGPULSE_SCHEMA.claim(jsonb_build_array(qname), task_names, limited, worker, t, 0) c
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
