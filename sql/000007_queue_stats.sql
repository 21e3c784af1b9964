-- pgpulse schema, version 7: per-queue figures by the minute, for the dashboard's
-- charts and GET /stats.
--
-- The jobs table cannot give these cheaply or at all: finished jobs are pruned,
-- counting the jobs that finished or started in a minute needs an index on
-- finished_at or started_at that every claim and finish would pay for, and how
-- many jobs waited at 10:42 is nowhere once they ran. So the figures are kept
-- as they happen, in one row per queue per minute (the minute it begins at):
--
-- - completed, failed, retried: attempts that workers ended that way in that
--   minute. Each worker counts its own in memory and adds them every few seconds
--   (statsIntervalMs) in one statement, so no job's claim or finish writes here.
-- - started, wait_ms_sum, wait_ms_max: attempts started in that minute, with the
--   sum and the largest of started_at - run_at over them, in ms (the average is
--   wait_ms_sum / started).
-- - waiting, running: jobs runnable now (queued, run_at <= now) and jobs running,
--   sampled once a minute by one worker; null when nobody sampled that minute.
--
-- stats_samples records the minutes sampled: a worker takes a minute by inserting
-- its row, so each minute is sampled once however many workers run. Rows of both
-- tables older than a day are deleted by the worker that samples.

create table :PGPULSE_SCHEMA.queue_stats (
  minute timestamptz not null,
  queue text not null check (queue <> '' and length(queue) <= 128),
  completed integer not null default 0,
  failed integer not null default 0,
  retried integer not null default 0,
  started integer not null default 0,
  wait_ms_sum bigint not null default 0,
  wait_ms_max bigint,
  waiting integer,
  running integer,
  -- the charts read the last hour of every queue: a range of the first column
  primary key (minute, queue)
) with (
  -- a row is updated every few seconds during its minute: room for HOT updates
  fillfactor = 70
);

create table :PGPULSE_SCHEMA.stats_samples (
  minute timestamptz primary key,
  sampled_at timestamptz not null default now(),
  worker_id text
);
