-- pgpulse schema, version 15: the worker's claim and finish plan their
-- statements once per connection.
--
-- Postgres plans a function's statement afresh at each call ("custom" plans)
-- until, after five calls, a plan made once ("generic") looks no dearer; for
-- claim_rows() and finish() called with a job or two at a time (a worker woken
-- job by job, the usual steady load) it kept planning afresh. Planning was a
-- third to a half of such a call's time: a loop of one-job claims and ends on
-- one connection took 1.0 to 1.4 ms a pair, 0.5 to 0.6 ms with plans made once.
-- With sequential scans off in all three (versions 9 and 13), the plan made
-- once reads jobs only by index, whatever the table held when it was made, so
-- nothing depends on planning afresh. claim() runs inside claim_rows() for
-- queues with limits, and is set alike for workers of versions 2 to 4, which
-- call it directly.
--
-- Measured (npm --prefix bench run bench -- --scenarios sustained --systems
-- pgpulse --sustained-seconds 20, two runs each in turns): Postgres CPU per
-- job at 1,000 single enqueues a second went from 720 and 696 us to 570 and
-- 544 us; end-to-end p50 from 1.81 and 1.74 ms to 1.71 and 1.64 ms.
alter function :PGPULSE_SCHEMA.claim_rows(jsonb, jsonb, integer, text, timestamptz, integer)
  set plan_cache_mode = force_generic_plan;
alter function :PGPULSE_SCHEMA.claim(jsonb, jsonb, integer, text, timestamptz, integer)
  set plan_cache_mode = force_generic_plan;
alter function :PGPULSE_SCHEMA.finish(text, bigint[], integer[], text[], jsonb, jsonb, bigint[], float8[], timestamptz)
  set plan_cache_mode = force_generic_plan;
