-- pgpulse schema, version 14: a parent that anyone ends while pgpulse is
-- settling another parent settles its children too; graphs left stranded that
-- way before this version are settled by the upgrade.
--
-- Version 6 settles the edges of a job with children when its status changes:
-- the row trigger notes the change (job_status_changed()) and the statement's
-- trigger settles what was noted (settle_noted(), settle_list(),
-- settle_children()). While settle_children() runs, the changes it makes to
-- children are not to be noted: it follows them itself, wave by wave. Version 6
-- told them apart with a setting, pgpulse.settling = 'on' for as long as
-- settling ran, and noted nothing at all meanwhile. So a job that the
-- application's own trigger ended in reaction to one of those changes (a
-- trigger on jobs that cancels another job when pgpulse fails a child, say)
-- was not noted either: its children stayed pending for ever.
--
-- Now pgpulse.settling holds the trigger depth at which settle_children()'s
-- statements run (pg_trigger_depth() in settle_list()). A row trigger fired by
-- one of those statements runs one level deeper; one fired by a statement of
-- a trigger of the application's, two or more. job_status_changed() skips only
-- the first kind, and notes the others as it notes any change, and
-- settle_noted() settles them at the end of the statement that made them, as
-- for any statement: inside the outer settling, which goes on afterwards with
-- what that left. settle_list() puts back the setting it found when it ends,
-- so settlings nest. The trigger jobs_settle_children keeps version 6's WHEN
-- (pgpulse.settling <> 'on'), which the new values always pass: this file
-- changes no table and no trigger, and takes no lock on jobs but the row locks
-- of the repair below.
--
-- The repair: graphs that version 6 to 13 stranded that way are settled now,
-- as if each stranded parent's change had just been noted:
-- 1. a parent that stands pending, queued or running again, or completed,
--    while an edge of it still says its failure ended the child (state 'b'):
--    it was retried while pgpulse was settling, and its children were not put
--    back (most such parents have run again by the upgrade);
-- 2. then a parent that stands ended with an edge its end should have settled
--    and did not: any waiting edge of a completed parent, a waiting edge of
--    mode run or failure of a failed or cancelled one, and a waiting edge of
--    mode fail or cancel to a child still pending.
-- Each of those is an edge that no path of version 6 to 13 leaves once the
-- parent's change was settled. The parents are locked first, in id order; a
-- worker of an older version ending or retrying one waits for the upgrade, or
-- the upgrade for it, and the repair reads what the other committed.

-- Settles what was noted (see job_status_changed()): "id,old,new,epoch;"
-- entries. While it runs, pgpulse.settling holds the trigger depth of
-- settle_children()'s statements, so the changes they make to children are
-- neither noted nor settled again (settle_children() follows them itself),
-- while changes made by a trigger's statement deeper down are noted and
-- settled at the end of that statement. The setting found is put back at the
-- end (a settling can run inside another); an error rolls it back with the
-- statement.
create or replace function :PGPULSE_SCHEMA.settle_list(noted text)
returns void
language plpgsql volatile as $$
declare
  ready text[];
  outer_settling text := coalesce(current_setting('pgpulse.settling', true), '');
begin
  perform set_config('pgpulse.settling', pg_trigger_depth()::text, true);
  select :PGPULSE_SCHEMA.settle_children(array_agg(split_part(e, ',', 1)::bigint), array_agg(split_part(e, ',', 2)),
           array_agg(split_part(e, ',', 3)),
           array_agg(coalesce(to_timestamp(nullif(split_part(e, ',', 4), '')::float8), now())))
    into ready
    from unnest(string_to_array(rtrim(noted, ';'), ';')) e;
  perform set_config('pgpulse.settling', outer_settling, true);
  if cardinality(ready) > 0 then
    perform pg_notify('job_enqueued', json_build_object(
      'schema', :PGPULSE_SCHEMA_NAME, 'queues', (select array_agg(distinct r) from unnest(ready) r),
      't', txid_current())::text);
  end if;
end;
$$;

-- A job with children changed status: the row trigger notes it in a setting
-- local to the transaction, and the statement's trigger settles every job
-- noted, at the end of the statement, in one pass (a worker's statement ends
-- hundreds of jobs; a batch's callbacks then get one update each, not one per
-- job). Past about 500 notes the row trigger settles them itself, so that a
-- statement ending tens of thousands does not copy an ever longer setting.
-- A change made by settle_children()'s own statements (fired one level below
-- the depth settle_list() recorded) is not noted: settle_children() follows it.
create or replace function :PGPULSE_SCHEMA.job_status_changed()
returns trigger
language plpgsql volatile as $$
declare
  noted text;
begin
  if current_setting('pgpulse.settling', true) = (pg_trigger_depth() - 1)::text then
    return null;
  end if;
  noted := coalesce(current_setting('pgpulse.settle', true), '')
    || new.id || ',' || old.status || ',' || new.status || ','
    || coalesce(extract(epoch from new.finished_at)::text, '') || ';';
  if length(noted) > 16000 then
    perform set_config('pgpulse.settle', '', true);
    perform :PGPULSE_SCHEMA.settle_list(noted);
  else
    perform set_config('pgpulse.settle', noted, true);
  end if;
  return null;
end;
$$;

-- Settles what the statement's rows noted. Only changes settle_children()
-- does not follow itself are noted, so whatever is noted is settled, during
-- another settling too (version 6 returned at once then, and lost it).
create or replace function :PGPULSE_SCHEMA.settle_noted()
returns trigger
language plpgsql volatile as $$
declare
  noted text := current_setting('pgpulse.settle', true);
begin
  if coalesce(noted, '') = '' then
    return null;
  end if;
  perform set_config('pgpulse.settle', '', true);
  perform :PGPULSE_SCHEMA.settle_list(noted);
  return null;
end;
$$;

-- The repair (see the head of this file).
do $$
declare
  noted text;
begin
  -- 1. parents that run again, or ran again and completed since, their children
  --    still held ended by their failure (a completed one's edges, waiting
  --    again after this, are settled by 2)
  with p as (
    select j.id from :PGPULSE_SCHEMA.jobs j
     where j.id in (select e.parent_id from :PGPULSE_SCHEMA.job_deps e where e.state = 'b')
       and j.status::text in ('pending', 'queued', 'running', 'completed')
     order by j.id
       for update of j
  )
  select string_agg(p.id || ',failed,queued,', ';' order by p.id) into noted from p;
  if noted is not null then
    perform :PGPULSE_SCHEMA.settle_list(noted);
  end if;

  -- 2. parents that ended, their edges not settled by it
  with p as (
    select j.id, j.status::text as status, j.finished_at from :PGPULSE_SCHEMA.jobs j
     where j.id in (select e.parent_id from :PGPULSE_SCHEMA.job_deps e
                      join :PGPULSE_SCHEMA.jobs pj on pj.id = e.parent_id
                      join :PGPULSE_SCHEMA.jobs c on c.id = e.child_id
                     where e.state = 'w' and pj.status::text in ('completed', 'failed', 'cancelled')
                       and (pj.status::text = 'completed' or e.mode in ('run', 'failure') or c.status::text = 'pending'))
       and j.status::text in ('completed', 'failed', 'cancelled')
     order by j.id
       for update of j
  )
  select string_agg(p.id || ',running,' || p.status || ',' || coalesce(extract(epoch from p.finished_at)::text, ''),
                    ';' order by p.id)
    into noted from p;
  if noted is not null then
    perform :PGPULSE_SCHEMA.settle_list(noted);
  end if;
end;
$$;
