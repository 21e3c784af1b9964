-- pgpulse schema, version 2: per-queue flow control (pause, global and per-group
-- concurrency, rate limits), recurring schedules, and the claim as a function.

-- A row exists only for queues someone configured; a queue without one runs unlimited.
create table :PGPULSE_SCHEMA.queues (
  name text primary key check (name <> '' and length(name) <= 128),
  paused boolean not null default false,
  -- most jobs of this queue running at once, across all workers
  concurrency integer check (concurrency >= 1),
  -- most jobs of one group_key running at once, across all workers
  group_concurrency integer check (group_concurrency >= 1),
  -- at most rate_max starts in any rate_interval_ms
  rate_max integer check (rate_max >= 1),
  rate_interval_ms integer check (rate_interval_ms >= 1),
  -- start times of the last rate_max starts, oldest first
  rate_starts timestamptz[] not null default '{}',
  updated_at timestamptz not null default now(),
  check ((rate_max is null) = (rate_interval_ms is null))
);

create table :PGPULSE_SCHEMA.schedules (
  name text primary key check (name <> '' and length(name) <= 128),
  cron text not null,
  timezone text,
  task text not null check (task <> ''),
  payload jsonb not null default '{}',
  -- queue, priority, maxAttempts, timeoutMs for the jobs it makes
  options jsonb not null default '{}',
  -- at most this many jobs for the ticks that came due since the last check
  -- (after downtime, the latest ones)
  catch_up integer not null default 1 check (catch_up >= 1),
  -- the latest tick a job was made for, and the next one due: a worker takes
  -- a tick by moving next_tick forward from the value it read, so each tick
  -- makes one job however many workers look
  last_tick timestamptz,
  next_tick timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- Claims up to n runnable jobs for a worker, from its queues in order (earlier
-- queues first), tasks it knows only, highest priority then oldest first.
--
-- A queue with no limits is claimed in one statement down jobs_claim_idx with
-- SKIP LOCKED, so workers never wait on each other and depth does not slow it.
-- A queue with limits is claimed under a lock on its queues row: one worker at
-- a time counts what runs and what started, in a statement that begins after
-- the lock is held and so sees every claim committed before it.
--
-- `ahead` of the n are jobs the worker claims beyond its free slots, to start
-- shortly; they come only from queues without limits, since a job waiting in a
-- worker would hold a limited queue's slot, or spend its rate, without running.
-- Their started_at stays null until the worker reports the start (with their
-- end, or in its next progress write): a job still null when its worker dies
-- never ran, and goes back without the attempt counting.
--
-- Rows come back with wake_ms null; the jobs claimed ahead carry the claim's
-- time in waiting_since_ms (ms since the epoch, for the worker to date their
-- start on this clock), the others null. When a rate limit held jobs back, one
-- more row with only wake_ms says when the next start will be allowed.
create function :PGPULSE_SCHEMA.claim(
  queue_names jsonb, task_names jsonb, n integer, worker text, now_ timestamptz default null,
  ahead integer default 0
) returns table (
  id bigint, task text, queue text, payload jsonb, priority integer, attempts integer,
  max_attempts integer, timeout_ms integer, key text, created_at timestamptz, run_at timestamptz,
  waiting_since_ms float8, wake_ms bigint
)
language plpgsql volatile as $$
#variable_conflict use_column
declare
  t timestamptz := coalesce(now_, now());
  tasks text[] := array(select jsonb_array_elements_text(task_names));
  qname text;
  cfg :PGPULSE_SCHEMA.queues;
  got integer := 0;
  want integer;
  allowed integer;
  busy integer;
  picked bigint[];
  counts jsonb;
  cand record;
  claimed integer;
  wake bigint;
begin
  -- The worker must hold its lease: the key-share lock makes the reaper's
  -- delete of its row wait for this claim, and a reaped worker claims nothing.
  perform 1 from :PGPULSE_SCHEMA.workers w where w.id = worker for key share;
  if not found then
    return;
  end if;
  -- A claim lost in a database crash leaves its jobs queued, to be claimed
  -- again: it need not wait for its commit to reach disk.
  perform set_config('synchronous_commit', 'off', true);

  for qname in select jsonb_array_elements_text(queue_names) loop
    exit when got >= n;
    want := n - got;
    select * into cfg from :PGPULSE_SCHEMA.queues q where q.name = qname;
    if found and cfg.paused then
      continue;
    end if;

    if not found or (cfg.concurrency is null and cfg.group_concurrency is null and cfg.rate_max is null) then
      -- The first n - ahead jobs in claim order start at once; the rest wait in
      -- the worker, and started_at stays null until the worker says one started.
      return query
        with c as (
          select j.id, j.priority, j.run_at from :PGPULSE_SCHEMA.jobs j
          where j.status = 'queued' and j.queue = qname and j.run_at <= t and j.task = any(tasks)
          order by j.priority desc, j.run_at, j.id
          limit want
          for update skip locked
        ),
        r as (select c.id, row_number() over (order by c.priority desc, c.run_at, c.id) as rn from c)
        update :PGPULSE_SCHEMA.jobs j set
          status = 'running', attempts = j.attempts + 1, worker_id = worker, progress = 0,
          started_at = case when got + r.rn <= n - ahead then t end
        from r where j.id = r.id
        returning j.id, j.task, j.queue, j.payload, j.priority, j.attempts, j.max_attempts,
          j.timeout_ms, j.key, j.created_at, j.run_at,
          case when j.started_at is null then (extract(epoch from t) * 1000)::float8 end, null::bigint;
      get diagnostics claimed = row_count;
      got := got + claimed;
      continue;
    end if;

    perform 1 from :PGPULSE_SCHEMA.queues q where q.name = qname for update;
    select * into cfg from :PGPULSE_SCHEMA.queues q where q.name = qname;
    if cfg.paused then
      continue;
    end if;
    allowed := least(want, n - ahead - got);
    continue when allowed <= 0;
    if cfg.concurrency is not null then
      select count(*) into busy from :PGPULSE_SCHEMA.jobs j where j.status = 'running' and j.queue = qname;
      allowed := least(allowed, cfg.concurrency - busy);
    end if;
    if cfg.rate_max is not null then
      select count(*) into busy from unnest(cfg.rate_starts) s
       where s > t - cfg.rate_interval_ms * interval '1 millisecond';
      if busy >= cfg.rate_max then
        -- the oldest start in the window leaves it first
        select ceil(extract(epoch from min(s) + cfg.rate_interval_ms * interval '1 millisecond' - t) * 1000)::bigint
          into wake from unnest(cfg.rate_starts) s
         where s > t - cfg.rate_interval_ms * interval '1 millisecond';
      end if;
      allowed := least(allowed, cfg.rate_max - busy);
    end if;
    continue when allowed <= 0;

    picked := '{}';
    if cfg.group_concurrency is null then
      select coalesce(array_agg(c.id), '{}') into picked from (
        select j.id from :PGPULSE_SCHEMA.jobs j
        where j.status = 'queued' and j.queue = qname and j.run_at <= t and j.task = any(tasks)
        order by j.priority desc, j.run_at, j.id
        limit allowed
        for update skip locked
      ) c;
    else
      -- Walk the queue in claim order, skipping groups already at their limit.
      select coalesce(jsonb_object_agg(g, c), '{}') into counts from (
        select j.group_key g, count(*) c from :PGPULSE_SCHEMA.jobs j
        where j.status = 'running' and j.queue = qname and j.group_key is not null
        group by j.group_key
      ) r;
      for cand in
        select j.id, j.group_key from :PGPULSE_SCHEMA.jobs j
        where j.status = 'queued' and j.queue = qname and j.run_at <= t and j.task = any(tasks)
        order by j.priority desc, j.run_at, j.id
        limit 1000
        for update skip locked
      loop
        if cand.group_key is null then
          picked := picked || cand.id;
        elsif coalesce((counts->>cand.group_key)::integer, 0) < cfg.group_concurrency then
          picked := picked || cand.id;
          counts := jsonb_set(counts, array[cand.group_key], to_jsonb(coalesce((counts->>cand.group_key)::integer, 0) + 1));
        end if;
        exit when cardinality(picked) >= allowed;
      end loop;
    end if;
    continue when cardinality(picked) = 0;

    return query
      update :PGPULSE_SCHEMA.jobs j set
        status = 'running', attempts = j.attempts + 1, worker_id = worker, started_at = t, progress = 0
      where j.id = any(picked)
      returning j.id, j.task, j.queue, j.payload, j.priority, j.attempts, j.max_attempts,
        j.timeout_ms, j.key, j.created_at, j.run_at, null::float8, null::bigint;
    get diagnostics claimed = row_count;
    got := got + claimed;
    if cfg.rate_max is not null then
      update :PGPULSE_SCHEMA.queues q set rate_starts = (
        select coalesce(array_agg(s order by s), '{}') from (
          select s from unnest(q.rate_starts || array_fill(t, array[claimed])) s
          order by s desc limit cfg.rate_max
        ) last
      ) where q.name = qname;
    end if;
  end loop;

  if wake is not null and got < n then
    return query select null::bigint, null::text, null::text, null::jsonb, null::integer, null::integer,
      null::integer, null::integer, null::text, null::timestamptz, null::timestamptz, null::float8, greatest(wake, 1);
  end if;
end;
$$;
