-- pgpulse schema, version 4: one worker per notification.
--
-- Every job_enqueued notification now carries a token, "t": the id of the
-- transaction that sent it. Postgres delivers a notification to every
-- listener; each worker draws from the token, and the same roster of workers,
-- the one of them that claims (src/worker/roster.ts), instead of all of them
-- claiming at once. The transaction id is the same in every listener, differs
-- between transactions, and is the same for two notifications of one
-- transaction, which Postgres then still folds into one.
--
-- It also says how many jobs became runnable, "n": the worker that claims
-- passes the notification on to the next only when it took fewer.
--
-- enqueue_many is the same as in version 1 but for "t" and "n".

-- Which workers draw: only those that LISTEN. A worker that polls (behind a
-- transaction-mode pooler without a direct connection) or runs what is
-- available and stops (runAvailable) never hears a notification, so drawing it
-- would leave the notification's jobs to the sweep.
alter table :PGPULSE_SCHEMA.workers add column listening boolean not null default false;

create or replace function :PGPULSE_SCHEMA.enqueue_many(specs jsonb, now_ timestamptz default null)
returns table (ord integer, inserted boolean, job :PGPULSE_SCHEMA.jobs)
language plpgsql volatile as $$
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
    perform pg_notify('job_enqueued', json_build_object(
      'schema', :PGPULSE_SCHEMA_NAME, 'queues', (select array_agg(distinct r) from unnest(ready) r),
      't', txid_current(), 'n', nready)::text);
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
