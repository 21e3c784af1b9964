-- pgpulse schema, version 11: an enqueue with keys answers with less; a flow
-- enqueued on a producer's pool notifies after its commit.
--
-- enqueue_keyed() (version 10) answers with every job's whole row as JSON,
-- which Postgres builds and the producer parses. For a call of 1,000 keyed
-- jobs that was about half of the call's time. A job the call inserted is
-- what its spec says, with the id and the clock the database gave it, so a
-- producer needs only those; the whole row is needed only where a spec found
-- a live job with its key (deduplicated, throttled, debounced: that job as it
-- now stands, which the producer cannot know).
--
-- enqueue_keys() does what enqueue_keyed() does (runs enqueue_many(),
-- commits, then notifies from a second transaction) and answers, in input
-- order, [ord, true, id, created_at] for a job it inserted, and
-- [ord, inserted, job] for one it found and for one it inserted that a later
-- spec of the same call changed (debounce), job the jobs row as JSON with its
-- bigint ids as strings. enqueue_keyed() stays, for producers of version 10.

-- Commits, then sends the notification that enqueue_many() or enqueue_flow()
-- left in pgpulse.ready (pgpulse.notify_later on), as notify_enqueued() sends
-- it. Called last by the procedures below, which must be called outside a
-- transaction block.
create procedure :PGPULSE_SCHEMA.commit_then_notify()
language plpgsql as $$
declare
  ready json := nullif(current_setting('pgpulse.ready', true), '')::json;
begin
  commit;
  if ready is not null then
    perform :PGPULSE_SCHEMA.notify_enqueued(
      array(select json_array_elements_text(ready->'queues')), (ready->>'n')::bigint);
  end if;
end;
$$;

create procedure :PGPULSE_SCHEMA.enqueue_keys(specs jsonb, inout jobs text default null)
language plpgsql as $$
begin
  perform set_config('pgpulse.notify_later', 'on', true);
  select json_agg(case when e.inserted and e.specs = 1
           then json_build_array(e.ord, true, (e.job).id::text, (e.job).created_at)
           else json_build_array(e.ord, e.inserted,
             to_jsonb(e.job) || jsonb_build_object('id', (e.job).id::text, 'batch_id', (e.job).batch_id::text)) end
           order by e.ord)::text
    into jobs
    from (select m.*, count(*) over (partition by (m.job).id) as specs
            from :PGPULSE_SCHEMA.enqueue_many(specs) m) e;
  call :PGPULSE_SCHEMA.commit_then_notify();
end;
$$;

-- Flows and batches (enqueue_flow(), version 6) still notified in their
-- transaction, so each commit held the lock Postgres keeps for notifying
-- commits through its WAL flush (sql/000009 says why that matters): 16
-- producers at once enqueued flows about 1.3 to 1.6 times as fast as one. As
-- enqueue_many() does since version 10, enqueue_flow() now leaves the
-- notification to its caller when pgpulse.notify_later is on in the
-- transaction, and enqueue_flow_later() runs it so, commits, then notifies as
-- enqueue_plain() does. Called any other way (a caller's transaction, SQL) it
-- notifies in its transaction, as before, now in parts when the queues' names
-- need them (a flow naming many long queues failed with "payload string too
-- long") and with the count of jobs announced. The function is version 6's but
-- for that (the ready CTE and the two that use it).
create or replace function :PGPULSE_SCHEMA.enqueue_flow(specs jsonb, batch jsonb default null, now_ timestamptz default null)
returns table (ord integer, batch_id bigint, job :PGPULSE_SCHEMA.jobs)
language plpgsql volatile as $$
#variable_conflict use_column
declare
  t timestamptz := coalesce(now_, now());
  seq regclass := pg_get_serial_sequence(':PGPULSE_SCHEMA.jobs', 'id')::regclass;
  ids bigint[];
  -- the edges, read from the specs once: child and parent as 1-based positions, and the mode
  e_child integer[];
  e_parent integer[];
  e_mode text[];
  bad_edges boolean;
  bad record;
  new_batch bigint;
  ready text[];
begin
  if jsonb_typeof(specs) is distinct from 'array' or jsonb_array_length(specs) = 0 then
    raise exception 'pgpulse: enqueue_flow expects a non-empty JSON array' using errcode = '22023';
  end if;
  select s.o, s.v into bad from jsonb_array_elements(specs) with ordinality as s(v, o)
   where s.v ? 'key' or s.v ? 'throttle_ms' or s.v ? 'debounce_ms' limit 1;
  if found then
    raise exception 'pgpulse: spec % of a flow has a key; keys are not supported in flows', bad.o - 1
      using errcode = '22023';
  end if;

  select coalesce(array_agg(x.child), '{}'), coalesce(array_agg(x.parent), '{}'), coalesce(array_agg(x.mode), '{}'),
         coalesce(bool_or(x.parent is null or x.parent < 1 or x.parent >= x.child
                          or x.mode not in ('fail', 'cancel', 'run', 'failure')), false)
    into e_child, e_parent, e_mode, bad_edges
    from (select s.o::integer as child,
                 case when jsonb_typeof(p.v->0) = 'number' and (p.v->>0)::numeric = trunc((p.v->>0)::numeric)
                           and abs((p.v->>0)::numeric) < 2147483647
                      then (p.v->>0)::integer + 1 end as parent,
                 coalesce(p.v->>1, 'fail') as mode
            from jsonb_array_elements(specs) with ordinality as s(v, o),
                 jsonb_array_elements(case when jsonb_typeof(s.v->'parents') = 'array' then s.v->'parents' else '[]' end) p(v)) x;
  if bad_edges or exists (select 1 from jsonb_array_elements(specs) s(v)
                           where s.v ? 'parents' and jsonb_typeof(s.v->'parents') <> 'array') then
    select s.o, s.v->'parents' as pv into bad
      from jsonb_array_elements(specs) with ordinality as s(v, o)
     where exists (select 1 from unnest(e_child, e_parent, e_mode) e(c, p, m)
                    where e.c = s.o and (e.p is null or e.p < 1 or e.p >= e.c or e.m not in ('fail', 'cancel', 'run', 'failure')))
        or (s.v ? 'parents' and jsonb_typeof(s.v->'parents') <> 'array')
     order by s.o limit 1;
    raise exception 'pgpulse: spec % of a flow names a bad parent in %: parents are [index, mode] of an earlier spec',
      bad.o - 1, bad.pv using errcode = '22023';
  end if;

  if batch is not null then
    insert into :PGPULSE_SCHEMA.batches (size, created_at)
    select count(*), t from jsonb_array_elements(specs) s(v) where (s.v->>'in_batch')::boolean
    returning id into new_batch;
  end if;

  select array_agg(nextval(seq) order by s.o) into ids from jsonb_array_elements(specs) with ordinality as s(v, o);

  insert into :PGPULSE_SCHEMA.job_deps (parent_id, child_id, mode)
  -- a parent named twice: its first mention counts
  select distinct on (e.p, e.c) ids[e.p], ids[e.c], e.m
    from unnest(e_child, e_parent, e_mode) with ordinality e(c, p, m, k)
   order by e.p, e.c, e.k;

  if new_batch is not null then
    update :PGPULSE_SCHEMA.batches b set callbacks = coalesce((
      select jsonb_object_agg(c.key, ids[(c.value #>> '{}')::integer + 1]::text)
        from jsonb_each(coalesce(batch->'callbacks', '{}')) c), '{}')
     where b.id = new_batch;
  end if;

  -- The jobs come back from the insert itself, in input order (ids were drawn in it).
  return query
    with ins as (
      insert into :PGPULSE_SCHEMA.jobs as j
        (id, queue, task, payload, priority, run_at, max_attempts, timeout_ms, group_key, created_at,
         status, parents_left, has_children, batch_id, meta)
      select
        ids[s.o],
        coalesce(s.v->>'queue', 'default'),
        s.v->>'task',
        coalesce(s.v->'payload', '{}'::jsonb),
        coalesce((s.v->>'priority')::integer, 0),
        coalesce((s.v->>'run_at')::timestamptz,
                 t + coalesce((s.v->>'delay_ms')::bigint, 0) * interval '1 millisecond'),
        coalesce((s.v->>'max_attempts')::integer, 10),
        (s.v->>'timeout_ms')::integer,
        s.v->>'group',
        t,
        (case when pl.n is null then 'queued' else 'pending' end)::text:::PGPULSE_SCHEMA.job_status,
        pl.n,
        k.p is not null,
        case when (s.v->>'in_batch')::boolean then new_batch end,
        s.v->'meta'
      from jsonb_array_elements(specs) with ordinality as s(v, o)
      left join (select e.c, count(distinct e.p)::integer as n from unnest(e_child, e_parent) e(c, p) group by e.c) pl
        on pl.c = s.o
      left join (select distinct e.p from unnest(e_parent) e(p)) k on k.p = s.o
      returning j
    ), ready as (
      select array_agg(distinct (ins.j).queue) as queues, count(*) as n
        from ins where (ins.j).status::text = 'queued' and (ins.j).run_at <= t
      having count(*) > 0
    ), note as (
      -- in parts under the 8,000-byte limit of a notification, as notify_enqueued() sends it
      -- (not notify_enqueued() itself: it would make the caller's commit skip the disk), each
      -- with the count of the jobs it announces in all
      select pg_notify('job_enqueued', json_build_object(
               'schema', :PGPULSE_SCHEMA_NAME, 'queues', x.part, 't', txid_current(), 'n', x.n)::text)
        from (select array_agg(q.name order by q.name) as part, min(q.n) as n
                from (select u.name, r.n, sum(octet_length(to_json(u.name)::text) + 1) over (order by u.name) / 7000 as p
                        from ready r, unnest(r.queues) u(name)
                       -- (here, so that nothing of this is computed when enqueue_flow_later() notifies)
                       where current_setting('pgpulse.notify_later', true) is distinct from 'on') q
               group by q.p) x
    ), later as (
      -- enqueue_flow_later() notifies after its commit
      select set_config('pgpulse.ready', json_build_object('queues', r.queues, 'n', r.n)::text, true)
        from ready r where current_setting('pgpulse.notify_later', true) = 'on'
    )
    select (row_number() over (order by (ins.j).id))::integer, new_batch, ins.j
      -- (cross joins, so that the notification's CTEs are run: a left join that
      -- no column comes from would be dropped by the planner)
      from ins cross join (select count(*) as n from note) nn cross join (select count(*) as n from later) nl
     order by (ins.j).id;
end;
$$;

-- enqueue_flow() from a producer's own pool, answering as the producer's
-- statement does, in one JSON text: [ids in input order, joined by commas,
-- the database's clock, the batch's id]. Commits, then notifies
-- (notify_enqueued()). Must be called outside a transaction block.
create procedure :PGPULSE_SCHEMA.enqueue_flow_later(specs jsonb, batch jsonb, inout answer text default null)
language plpgsql as $$
begin
  perform set_config('pgpulse.notify_later', 'on', true);
  select json_build_array(string_agg((e.job).id::text, ',' order by e.ord), min((e.job).created_at), min(e.batch_id)::text)::text
    into answer
    from :PGPULSE_SCHEMA.enqueue_flow(specs, batch) e;
  call :PGPULSE_SCHEMA.commit_then_notify();
end;
$$;
