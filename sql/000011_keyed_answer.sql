-- pgpulse schema, version 11: an enqueue with keys answers with less.
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

create procedure :PGPULSE_SCHEMA.enqueue_keys(specs jsonb, inout jobs text default null)
language plpgsql as $$
declare
  ready json;
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
  ready := nullif(current_setting('pgpulse.ready', true), '')::json;
  commit;
  if ready is not null then
    perform :PGPULSE_SCHEMA.notify_enqueued(
      array(select json_array_elements_text(ready->'queues')), (ready->>'n')::bigint);
  end if;
end;
$$;
