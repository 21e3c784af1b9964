-- pgpulse schema, version 17: a job's edges are settled for the status the job
-- stands in when they are settled, and a job moved from one end status to
-- another settles them too.
--
-- settle_children() (version 6) settles a list of status changes wave by
-- wave: the changes a statement made, then the changes it made itself to
-- children, and so on down the graph. Two kinds of change were settled wrong:
--
-- 1. A change already undone. A job that pgpulse ended while settling (a
--    child it failed, say) is settled in the next wave. If a trigger of the
--    application put that job back to queued meanwhile (or put back the
--    parent whose end had failed it), the next wave still settled the end,
--    and failed the job's children while the job ran again. Now each wave
--    first reads the status each of its jobs stands in, and settles each job
--    once, from its status before the first change listed to that status: a
--    job ended and put back before its end was settled changes nothing, and
--    its children go on waiting for it. Each step of a wave also takes only
--    the jobs that still stand as the wave read them: a job that a trigger
--    changed during the wave was settled at the end of that trigger's
--    statement (version 14).
-- 2. A move from one end status to another (an UPDATE by hand: failed to
--    completed, completed to failed, failed to cancelled) settled nothing.
--    Now it is settled as a restart of the job followed by its new end would
--    be: what the old end did is undone as a restart undoes it, then the new
--    end is settled as any end. A completed job put back (by hand: retry()
--    takes only failed and cancelled jobs) is a restart too; version 6 left
--    its edges settled.
--
-- Undoing an end, for restarts and moves alike: the edges it marked as having
-- ended a child (state 'b') wait again, and those children go back to pending
-- once no other parent holds them ended, and so on down the graph; the edges
-- it settled (state 'd') wait again if their child has not gone on: a
-- pending, failed or cancelled child, not a queued, running or completed one.
-- Version 6 put back the settled edges of pending children only. For the end
-- of a job that failed or was cancelled that comes to the same (it settles
-- only edges of mode run and failure, which never hold a child); a completion
-- settles edges of every mode, and a child that failed or was cancelled
-- otherwise must then wait for the parent again, so that retrying it is
-- refused while the parent stands failed, as for a child cancelled before its
-- parent failed. A batch's failure callback that the completion of every
-- parent cancelled (ParentsCompleted) waits again too, so that the new end, a
-- failure, runs it. The undoing now comes first in a wave, before the ends.
--
-- settle_children() is version 6's with those changes, restated whole (it has
-- no settings). No table and no trigger changes.
--
-- The repair: graphs that versions 6 to 16 left that way are settled now, as
-- if each such parent's change had just been noted:
-- - a parent that stands pending, queued, running or completed with an edge
--   still marked as having ended a child ('b'), or pending, queued or running
--   with an edge settled to a pending child ('d'): it was put back (and may
--   have completed since) and its children were not given back;
-- - a parent that stands failed or cancelled with an edge of mode fail or
--   cancel settled ('d', which only a completion does) to a child pending,
--   failed or cancelled: it completed, then was moved to failed or cancelled.
-- No path of those versions leaves such an edge once a change was settled.
-- The parents are locked first, in id order, as version 14's repair does; a
-- worker of an older version ending one waits for the upgrade, or the upgrade
-- for it, and each then reads what the other committed.

create or replace function :PGPULSE_SCHEMA.settle_children(ids bigint[], olds text[], news text[], ats timestamptz[])
returns text[]
language plpgsql volatile as $$
#variable_conflict use_column
declare
  ready text[] := '{}';
  n_ids bigint[];
  n_olds text[];
  n_news text[];
  n_ats timestamptz[];
  w record;
  ends boolean;
  fails boolean;
  backs boolean;
  revived bigint[];
begin
  while cardinality(ids) > 0 loop
    n_ids := '{}'; n_olds := '{}'; n_news := '{}'; n_ats := '{}';
    -- Each job of the wave once, from its status before the first change
    -- listed to the status it stands in now, with the time of the last change
    -- listed when it still stands so (else its finished_at). A job back in the
    -- status it had is dropped. The jobs are locked already: this transaction
    -- changed each of them. Also which kinds of change the wave holds: the
    -- steps for the others are skipped.
    select coalesce(array_agg(x.id order by x.k), '{}'), coalesce(array_agg(x.o order by x.k), '{}'),
           coalesce(array_agg(x.s order by x.k), '{}'), coalesce(array_agg(x.t order by x.k), '{}'),
           coalesce(bool_or(x.s in ('completed', 'failed', 'cancelled')), false),
           coalesce(bool_or(x.s in ('failed', 'cancelled')), false),
           coalesce(bool_or(x.o in ('completed', 'failed', 'cancelled')), false)
      into ids, olds, news, ats, ends, fails, backs
      from (select u.id, min(u.k) as k, (array_agg(u.o order by u.k))[1] as o,
                   coalesce(j.status::text, (array_agg(u.s order by u.k desc))[1]) as s,
                   case when j.id is null or j.status::text = (array_agg(u.s order by u.k desc))[1]
                        then (array_agg(u.t order by u.k desc))[1] else coalesce(j.finished_at, now()) end as t
              from unnest(ids, olds, news, ats) with ordinality as u(id, o, s, t, k)
              left join :PGPULSE_SCHEMA.jobs j on j.id = u.id
             group by u.id, j.id) x
     where x.o <> x.s;
    exit when cardinality(ids) = 0;
    -- The children of this wave are locked first, in id order: two transactions
    -- settling parents of the same children wait for each other here rather
    -- than deadlock further on, and every decision below is taken by a
    -- statement that sees what the other committed.
    perform 1 from :PGPULSE_SCHEMA.jobs j
     where j.id in (select e.child_id from :PGPULSE_SCHEMA.job_deps e where e.parent_id = any(ids))
     order by j.id
       for update;

    if backs then
      -- 1. Jobs that left an end: put back (a retry, a restart by hand or by a
      -- trigger) or moved to another end. What that end did is undone: the
      -- children it ended wait again, once no other parent still holds them
      -- ended.
      with x as (
        select u.id from unnest(ids, olds, news) as u(id, o, s)
          join :PGPULSE_SCHEMA.jobs p on p.id = u.id and p.status::text = u.s
         where u.o in ('completed', 'failed', 'cancelled')
      ), b as (
        update :PGPULSE_SCHEMA.job_deps e set state = 'w'
          from x
         where e.parent_id = x.id and e.state = 'b'
        returning e.child_id, e.parent_id
      ), c as (
        -- (was: the child's status before this statement, read through a second reference to it)
        update :PGPULSE_SCHEMA.jobs j set status = 'pending', finished_at = null
          from (select distinct b.child_id from b) bb join :PGPULSE_SCHEMA.jobs was on was.id = bb.child_id
         where j.id = bb.child_id and j.status::text in ('failed', 'cancelled')
           -- (no other parent holds it ended; the edges just put back still read 'b' here. NOT IN
           -- over b, not a correlated NOT EXISTS: a hashed list, where a scan of b per edge made a
           -- retry of a parent grow with the square of the children it had ended)
           and not exists (select 1 from :PGPULSE_SCHEMA.job_deps e2
                            where e2.child_id = j.id and e2.state = 'b'
                              and (e2.child_id, e2.parent_id) not in (select b.child_id, b.parent_id from b))
        returning j.id, j.has_children, was.status::text as was
      )
      select (select coalesce(array_agg(x.id), '{}') from x) as left_end, coalesce(array_agg(c.id), '{}') as back,
             coalesce(array_agg(c.id) filter (where c.has_children), '{}') as ended,
             coalesce(array_agg(c.was) filter (where c.has_children), '{}') as was
        into w from c;
      -- An edge stays settled only while its parent has ended: the edges the
      -- end settled to children that have not gone on (pending, failed or
      -- cancelled), and edges to the children just put back from parents that
      -- do not stand ended now (mode run, settled by an end since retried),
      -- wait again. A batch's failure callback that the completion of every
      -- parent cancelled (its last error ParentsCompleted, step 2) waits
      -- again too: a parent it counted as completed no longer stands so.
      with d as (
        update :PGPULSE_SCHEMA.job_deps e set state = 'w'
          from :PGPULSE_SCHEMA.jobs p, :PGPULSE_SCHEMA.jobs j
         where e.state = 'd' and p.id = e.parent_id and j.id = e.child_id
           and ((e.parent_id = any(w.left_end) and j.status::text in ('pending', 'failed', 'cancelled'))
                or (e.child_id = any(w.back) and p.status::text not in ('completed', 'failed', 'cancelled')))
        returning e.child_id
      ), agg as (select d.child_id, count(*)::integer as n from d group by d.child_id),
      r as (
        update :PGPULSE_SCHEMA.jobs j set
          parents_left = j.parents_left + agg.n,
          status = (case when j.status::text = 'cancelled' and j.errors->-1->>'name' = 'ParentsCompleted'
                         then 'pending' else j.status::text end)::text:::PGPULSE_SCHEMA.job_status,
          finished_at = case when j.status::text = 'cancelled' and j.errors->-1->>'name' = 'ParentsCompleted'
                             then null else j.finished_at end
          from agg join :PGPULSE_SCHEMA.jobs was on was.id = agg.child_id
         where j.id = agg.child_id
        returning j.id, j.has_children, (was.status::text = 'cancelled' and j.status::text = 'pending') as back
      )
      select coalesce(array_agg(r.id) filter (where r.back and r.has_children), '{}') into revived from r;
      -- (a callback put back that has children of its own: they follow it, as for the children put back above)
      n_ids := n_ids || w.ended || revived;
      n_olds := n_olds || w.was || array_fill('cancelled'::text, array[cardinality(revived)]);
      n_news := n_news || array_fill('pending'::text, array[cardinality(w.ended) + cardinality(revived)]);
      n_ats := n_ats || array_fill(now(), array[cardinality(w.ended) + cardinality(revived)]);
    end if;

    if ends then
      -- 2. Jobs that ended (a move to another end too, undone by 1) settle their
      -- edges: every edge when they completed, else those of mode run and
      -- failure. A child counts down its parents; a pending child with none
      -- left becomes queued. Mode failure (a batch's failure callback): the
      -- child is queued at its first failed parent, and cancelled when every
      -- parent completed.
      with x as (
        select u.id, u.s, u.t from unnest(ids, news, ats) as u(id, s, t)
          join :PGPULSE_SCHEMA.jobs p on p.id = u.id and p.status::text = u.s
         where u.s in ('completed', 'failed', 'cancelled')
      ), d as (
        update :PGPULSE_SCHEMA.job_deps e set state = 'd'
          from x
         where e.parent_id = x.id and e.state = 'w' and (x.s = 'completed' or e.mode in ('run', 'failure'))
        returning e.child_id, e.mode, x.s, x.t
      ), agg as (
        select d.child_id, count(*)::integer as n, bool_or(d.mode = 'failure' and d.s <> 'completed') as fire,
               bool_and(d.mode = 'failure') as on_failure, max(d.t) as t
          from d group by d.child_id
      ), c as (
        update :PGPULSE_SCHEMA.jobs j set
          parents_left = j.parents_left - agg.n,
          status = (case
            when j.status::text <> 'pending' then j.status::text
            when agg.fire then 'queued'
            when j.parents_left > agg.n then 'pending'
            when agg.on_failure then 'cancelled'
            else 'queued' end)::text:::PGPULSE_SCHEMA.job_status,
          run_at = case when j.status::text = 'pending' then greatest(j.run_at, agg.t) else j.run_at end,
          finished_at = case when j.status::text = 'pending' and not agg.fire and j.parents_left <= agg.n and agg.on_failure
                             then agg.t else j.finished_at end,
          errors = case when j.status::text = 'pending' and not agg.fire and j.parents_left <= agg.n and agg.on_failure
                        then j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempts, 'at', agg.t,
                          'name', 'ParentsCompleted', 'message', 'every parent completed: a job run on failure is not needed'))
                        else j.errors end
          from agg
         where j.id = agg.child_id
        returning j.id, j.status::text as status, j.queue, j.has_children, agg.t
      )
      select coalesce(array_agg(distinct c.queue) filter (where c.status = 'queued'), '{}') as queues,
             coalesce(array_agg(c.id) filter (where c.status = 'cancelled' and c.has_children), '{}') as ended,
             coalesce(array_agg(c.t) filter (where c.status = 'cancelled' and c.has_children), '{}') as ended_at
        into w from c;
      ready := ready || w.queues;
      n_ids := n_ids || w.ended;
      n_ats := n_ats || w.ended_at;
      n_olds := n_olds || array_fill('pending'::text, array[cardinality(w.ended)]);
      n_news := n_news || array_fill('cancelled'::text, array[cardinality(w.ended)]);
    end if;

    if fails then
      -- 3. Jobs that failed or were cancelled end the pending children of
      -- their fail and cancel edges (failed when any such edge says fail). An
      -- edge to a child no longer pending is marked too when another parent
      -- already ended that child: a retry of one of them must not let it run
      -- while the other is still failed. A child ended otherwise (a cancel) is
      -- left as it is.
      with x as (
        select u.id, u.s, u.t from unnest(ids, news, ats) as u(id, s, t)
          join :PGPULSE_SCHEMA.jobs p on p.id = u.id and p.status::text = u.s
         where u.s in ('failed', 'cancelled')
      ), b as (
        update :PGPULSE_SCHEMA.job_deps e set state = 'b'
          from x, :PGPULSE_SCHEMA.jobs j
         where e.parent_id = x.id and e.state = 'w' and e.mode in ('fail', 'cancel') and j.id = e.child_id
           and (j.status::text = 'pending' or exists (select 1 from :PGPULSE_SCHEMA.job_deps e2
                                                       where e2.child_id = e.child_id and e2.state = 'b'))
        returning e.child_id, e.mode, x.id as parent, x.s, x.t, j.status::text as was
      ), agg as (
        select b.child_id, bool_or(b.mode = 'fail') as fails, min(b.parent) as parent,
               (array_agg(b.s order by b.parent))[1] as s, max(b.t) as t
          from b where b.was = 'pending' group by b.child_id
      ), c as (
        update :PGPULSE_SCHEMA.jobs j set
          status = (case when agg.fails then 'failed' else 'cancelled' end)::text:::PGPULSE_SCHEMA.job_status,
          finished_at = agg.t,
          errors = j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempts, 'at', agg.t,
            'name', case when agg.s = 'failed' then 'ParentFailed' else 'ParentCancelled' end,
            'message', 'parent ' || agg.parent || ' ' || agg.s, 'parent', agg.parent::text))
          from agg
         where j.id = agg.child_id and j.status::text = 'pending'
        returning j.id, j.status::text as status, j.has_children, agg.t
      )
      select coalesce(array_agg(c.id) filter (where c.has_children), '{}') as ended,
             coalesce(array_agg(c.status) filter (where c.has_children), '{}') as statuses,
             coalesce(array_agg(c.t) filter (where c.has_children), '{}') as ended_at
        into w from c;
      n_ids := n_ids || w.ended;
      n_ats := n_ats || w.ended_at;
      n_olds := n_olds || array_fill('pending'::text, array[cardinality(w.ended)]);
      n_news := n_news || w.statuses;
    end if;

    ids := n_ids; olds := n_olds; news := n_news; ats := n_ats;
  end loop;
  return ready;
end;
$$;

-- The repair (see the head of this file).
do $$
declare
  noted text;
begin
  with p as (
    select j.id, j.status::text as status, j.finished_at from :PGPULSE_SCHEMA.jobs j
     where j.id in (select e.parent_id from :PGPULSE_SCHEMA.job_deps e
                      join :PGPULSE_SCHEMA.jobs pj on pj.id = e.parent_id
                      join :PGPULSE_SCHEMA.jobs c on c.id = e.child_id
                     where e.state in ('b', 'd')
                       and ((e.state = 'b' and pj.status::text not in ('failed', 'cancelled'))
                         or (e.state = 'd' and c.status::text = 'pending'
                             and pj.status::text not in ('completed', 'failed', 'cancelled'))
                         or (e.state = 'd' and e.mode in ('fail', 'cancel') and pj.status::text in ('failed', 'cancelled')
                             and c.status::text in ('pending', 'failed', 'cancelled'))))
     order by j.id
       for update of j
  )
  -- noted as a change from an end the edges say the job had: a failure (it has
  -- since been put back, or completed), or a completion (it has since failed or
  -- been cancelled)
  select string_agg(p.id || ',' || case when p.status in ('failed', 'cancelled') then 'completed' else 'failed' end
                    || ',' || p.status || ',' || coalesce(extract(epoch from p.finished_at)::text, ''), ';' order by p.id)
    into noted from p;
  if noted is not null then
    perform :PGPULSE_SCHEMA.settle_list(noted);
  end if;
end;
$$;
