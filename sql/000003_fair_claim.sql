-- pgpulse schema, version 3: groups take turns in a group-limited queue, and a
-- claim that finds nothing writes nothing.

-- Where the group rotation of a group-limited queue stands: the group that was
-- last given a turn, NULL for "start at the first group" (which is also where
-- the rotation goes after the turn of the jobs without a group). Written under
-- the queues row lock the limited claim holds.
alter table :PGPULSE_SCHEMA.queues add column group_cursor text;

-- The group-limited claim walks this index: a loose index scan (one probe per
-- distinct group_key, after the cursor) finds the next group with queued jobs,
-- and a second probe takes that group's first jobs in claim order. "C" order:
-- the rotation needs a fixed order, not a linguistic one, and it compares faster.
-- Only jobs with a group are in it, so that queues without groups (most jobs)
-- pay no extra index entry per enqueue: a full index cost bulk enqueues about
-- 15%. Jobs without a group in a group-limited queue are looked for among the
-- first 1,000 of the queue in claim order (jobs_claim_idx). "if not exists":
-- on a large table, create it beforehand with "create index concurrently".
create index if not exists jobs_group_claim_idx on :PGPULSE_SCHEMA.jobs
  (queue, group_key collate "C", priority desc, run_at, id)
  where status = 'queued' and group_key is not null;

-- Claims up to n runnable jobs for a worker, from its queues in order (earlier
-- queues first), tasks it knows only, highest priority then oldest first.
--
-- A queue with no limits is claimed in one statement down jobs_claim_idx with
-- SKIP LOCKED, so workers never wait on each other and depth does not slow it.
-- A queue with limits is claimed under a lock on its queues row: one worker at
-- a time counts what runs and what started, in a statement that begins after
-- the lock is held and so sees every claim committed before it.
--
-- In a queue with a group limit, groups take turns. The groups with queued
-- jobs form a ring (group_key in "C" order, then the jobs without a group as
-- one more member, unlimited); each claim goes round it from just after the
-- group queues.group_cursor names, giving each group below its limit one job,
-- until the claim has what it may take or every group had its turn. If slots
-- are left after a whole round, the groups that still have jobs and room take
-- more, in rounds that share what is left between them. The cursor then moves
-- to the last group served, so the next claim starts with the one after it.
-- So a group's backlog never keeps another group's first job waiting beyond
-- the next claim, and free slots are used whenever a group is below its limit.
-- Priority orders the jobs within a group; groups take turns whatever the
-- priority of their jobs (a group of low-priority jobs is not starved by
-- another group's high-priority backlog).
--
-- Cost: one index probe per group visited (skip scan) plus one per group
-- served, never a scan of the queue's backlog; so it grows with the number of
-- groups the round passes at their limit (at most the running jobs divided by
-- the limit), not with depth. Measured on Postgres 15 (2 vCPUs, shared with
-- other load), 1,000,000 queued jobs over 5,000 groups, groupConcurrency 1, a
-- claim of 10, median of 15: nothing running, 0.83 ms (000002's claim: 0.34 ms);
-- 4,990 of the groups at their limit, 57 ms, about 11 us per group passed
-- (000002's: 7 ms, when the 10 free groups happen to be among the first 1,000
-- jobs in claim order; when they are not it claims nothing and slots sit idle).
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
--
-- A claim that finds nothing writes nothing: no row lock, so no transaction id
-- and no WAL (most claims of idle workers are empty). The lease is checked
-- without a lock at the start, a limited queue's row is locked only when the
-- queue has a runnable job (and, with a concurrency limit, a free slot), and
-- the worker row is key-share locked only once jobs were claimed. (A claim
-- that locks a group-limited queue's row and then finds every group with
-- runnable jobs at its limit still writes that lock.) Why that is safe against the reaper (and the worker's
-- own unregister), which deletes the worker row and puts back every running
-- job whose worker row is missing:
-- - the lock at the end is taken after the jobs are marked running, in a
--   statement with a fresh snapshot. If the row is gone by then (or is being
--   deleted: the key-share lock waits for that delete to commit), the claim
--   raises 55000 and rolls back, so its jobs stay queued;
-- - if the lock is had, the row cannot be deleted until this claim commits;
--   a reaper that deletes it afterwards leaves these jobs, committed as
--   running for a worker with no row, to its next pass, which puts them back
--   (the same as when the old claim locked first).
-- The reaper never waits on a claim's job rows (SKIP LOCKED), and a claim
-- waits on the worker row only last, so the two cannot deadlock.
create or replace function :PGPULSE_SCHEMA.claim(
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
  claimed integer;
  wake bigint;
  -- the group rotation
  counts jsonb;      -- running jobs per group of the queue
  room integer;      -- jobs this queue may still give
  stage integer;     -- where the rotation is (see below)
  k text;            -- the ring scan's position: the last group key visited
  g text;            -- the group visited (null: the jobs without a group)
  round1 boolean;    -- the first round (stages 1 to 3)
  served boolean;    -- some group was served in it
  last_g text;       -- the last group served in the first round: the new cursor
  more text[];       -- the groups of this later round
  next_more text[];  -- the groups that may take more in the next round
  share integer;     -- what each group may take in a later round
  i integer;
  take integer;
  cap integer;
  ids bigint[];
begin
  -- The lease, checked without a lock (see above): a reaped worker claims nothing.
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

    continue when n - ahead - got <= 0;
    -- Nothing runnable here: skip the lock, which would write (a row lock takes
    -- a transaction id). A job that commits after this look is found by the
    -- claim its notification sets off.
    perform 1 from :PGPULSE_SCHEMA.jobs j
      where j.status = 'queued' and j.queue = qname and j.run_at <= t and j.task = any(tasks)
      limit 1;
    continue when not found;
    -- Nor when the queue is full: a slot that frees after this count is
    -- announced by the finishing worker's notification, whose claim sees it.
    if cfg.concurrency is not null then
      select count(*) into busy from :PGPULSE_SCHEMA.jobs j where j.status = 'running' and j.queue = qname;
      continue when busy >= cfg.concurrency;
    end if;

    perform set_config('synchronous_commit', 'off', true);
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
      -- Groups take turns round the ring (see above). Running jobs are few
      -- (bounded by the workers' slots), so they are counted all at once.
      select coalesce(jsonb_object_agg(r.g, r.c), '{}') into counts from (
        select j.group_key g, count(*) c from :PGPULSE_SCHEMA.jobs j
        where j.status = 'running' and j.queue = qname and j.group_key is not null
        group by j.group_key
      ) r;
      room := allowed;
      -- stage 1: the groups after the cursor; 2: the jobs without a group;
      -- 3: the groups from the first to the cursor; 4: later rounds
      stage := 1;
      k := cfg.group_cursor;
      served := false;
      round1 := true;
      more := '{}';
      next_more := '{}';
      i := 0;
      loop
        exit when room <= 0;
        take := 1;
        if stage in (1, 3) then
          -- the next group on the ring: one probe down jobs_group_claim_idx
          g := null;
          if k is null then
            select j.group_key collate "C" into g from :PGPULSE_SCHEMA.jobs j
              where j.status = 'queued' and j.queue = qname and j.group_key is not null
              order by j.group_key collate "C" limit 1;
          else
            select j.group_key collate "C" into g from :PGPULSE_SCHEMA.jobs j
              where j.status = 'queued' and j.queue = qname and j.group_key is not null and j.group_key collate "C" > k
              order by j.group_key collate "C" limit 1;
          end if;
          if g is null or (stage = 3 and g collate "C" > cfg.group_cursor) then
            -- stage 3 ends back where the round began
            stage := stage + 1;
            continue;
          end if;
          k := g;
        elsif stage = 2 then
          g := null;
          k := null;
          -- from the first group again, unless the round began there
          stage := case when cfg.group_cursor is null then 4 else 3 end;
        else
          round1 := false;
          if i >= cardinality(more) then
            -- a new round, over the groups that took all they were given
            more := next_more;
            next_more := '{}';
            i := 0;
            exit when cardinality(more) = 0;
            share := greatest(1, room / cardinality(more));
          end if;
          i := i + 1;
          g := more[i]; -- null: the jobs without a group
          take := share;
        end if;

        -- the visit: up to take of the group's jobs, in claim order
        if g is null then
          cap := room;
        else
          cap := cfg.group_concurrency - coalesce((counts->>g)::integer, 0);
        end if;
        take := least(take, cap, room);
        continue when take <= 0;
        if g is null then
          -- among the first 1,000 of the queue in claim order (they have no index of their own)
          select coalesce(array_agg(c.id), '{}') into ids from (
            select j.id from :PGPULSE_SCHEMA.jobs j
            where j.id in (
                select w.id from (
                  select j2.id, j2.group_key from :PGPULSE_SCHEMA.jobs j2
                  where j2.status = 'queued' and j2.queue = qname and j2.run_at <= t and j2.task = any(tasks)
                  order by j2.priority desc, j2.run_at, j2.id
                  limit 1000
                ) w where w.group_key is null)
              and j.status = 'queued' and j.id <> all(picked)
            order by j.priority desc, j.run_at, j.id
            limit take
            for update skip locked
          ) c;
        else
          select coalesce(array_agg(c.id), '{}') into ids from (
            select j.id from :PGPULSE_SCHEMA.jobs j
            where j.status = 'queued' and j.queue = qname and j.group_key is not null and j.group_key collate "C" = g
              and j.run_at <= t and j.task = any(tasks) and j.id <> all(picked)
            order by j.priority desc, j.run_at, j.id
            limit take
            for update skip locked
          ) c;
        end if;
        continue when cardinality(ids) = 0;
        picked := picked || ids;
        room := room - cardinality(ids);
        if round1 then
          served := true;
          last_g := g;
        end if;
        if g is not null then
          counts := jsonb_set(counts, array[g], to_jsonb(coalesce((counts->>g)::integer, 0) + cardinality(ids)));
        end if;
        -- it took all it was given and has room left: it may take more next round
        if cardinality(ids) = take and take < cap then
          next_more := array_append(next_more, g);
        end if;
      end loop;
      if served then
        update :PGPULSE_SCHEMA.queues q set group_cursor = last_g
         where q.name = qname and q.group_cursor is distinct from last_g;
      end if;
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

  if got > 0 then
    -- Jobs were claimed: now the lease must hold until this commits (see above).
    perform 1 from :PGPULSE_SCHEMA.workers w where w.id = worker for key share;
    if not found then
      raise exception 'pgpulse: worker % lost its lease while claiming; the claim is undone', worker
        using errcode = '55000';
    end if;
    -- A claim lost in a database crash leaves its jobs queued, to be claimed
    -- again: it need not wait for its commit to reach disk.
    perform set_config('synchronous_commit', 'off', true);
  end if;

  if wake is not null and got < n then
    return query select null::bigint, null::text, null::text, null::jsonb, null::integer, null::integer,
      null::integer, null::integer, null::text, null::timestamptz, null::timestamptz, null::float8, greatest(wake, 1);
  end if;
end;
$$;
