-- pgpulse schema, version 13: finish() finds the jobs it ends by key, whatever
-- the jobs table held when the connection planned it; the worker's functions
-- never compile their statements with JIT.
--
-- A connection keeps the plans of a function's statements. finish()'s update
-- planned while the table held a few rows (a worker started before the jobs
-- came) was a hash join over a read of the whole table, and the connection kept
-- that plan as the table grew: in a drain of 100,000 jobs enqueued after the
-- worker's first ends, about 150 finish() calls read 9 million rows, the writes
-- of ends fell up to 26,000 behind the handlers, and a stop that could not write
-- them in its 5 s left those jobs to the reaper, to run again. Version 9 fixed
-- the same thing in the claim by turning sequential scans off in claim_rows()
-- and claim(); finish() now does so too.
--
-- JIT off: a scan that has no other way than a sequential one (finish()'s read
-- of the queues with limits, a small table) is then costed as "disabled", which
-- put the statement's cost over jit_above_cost, and every call compiled its
-- expressions: about half a second each. These statements are short; JIT never
-- pays for them, so the functions that turn sequential scans off (and so could
-- cost a statement that way) turn JIT off too.
alter function :PGPULSE_SCHEMA.finish(text, bigint[], integer[], text[], jsonb, jsonb, bigint[], float8[], timestamptz)
  set enable_seqscan = off
  set jit = off;
alter function :PGPULSE_SCHEMA.claim_rows(jsonb, jsonb, integer, text, timestamptz, integer)
  set jit = off;
alter function :PGPULSE_SCHEMA.claim(jsonb, jsonb, integer, text, timestamptz, integer)
  set jit = off;
alter function :PGPULSE_SCHEMA.enqueue_many(jsonb, timestamptz)
  set jit = off;
