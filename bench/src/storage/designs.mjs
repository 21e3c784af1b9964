// Storage designs for a queue that keeps every job's row, as bare SQL drain
// loops: each design sets up N queued no-op jobs in a schema of its own and
// gives a step(previous batch) that ends the previous batch and claims the
// next. Only the database's work is measured: no handlers, no framework.
//
// - pgpulse: the schema pgpulse migrates, and the two statements its worker
//   sends (claim.ts: claim_rows(), or claim_json() in a build before version
//   8; finish.ts: finish()).
// - floor-update: a minimal table; claim FOR UPDATE SKIP LOCKED, then mark
//   done (rows kept): the bench's floor-update system.
// - floor-delete: the same table; finished rows deleted: the bench's floor.
// - narrow-live: the wide row (pgpulse's columns) carries no index but its
//   primary key, so updates of it can be HOT; a narrow table holds the queued
//   and running jobs (claim order, running by worker): a claim updates the
//   narrow row and the wide one, an end deletes the narrow row and updates
//   the wide one.
// - narrow-queued: as narrow-live, but the narrow table holds queued jobs
//   only, which a claim deletes. Running jobs are then recorded nowhere an
//   index can find them (a reaper could not), so this is a bound, not a
//   design: what the statements cost without any per-job record of a run.
// - narrow-leased: narrow-queued with the record a reaper needs: each claim
//   inserts a lease row (the worker and the ids it claimed), which the end of
//   the claim's last job deletes. A reaper finds a dead worker's running jobs
//   through its leases; the wide row still needs no index on its status.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const WIDE = (q, fillfactor) => `
  create table ${q}.jobs (
    id bigint primary key, queue text not null default 'default', task text not null, payload jsonb not null default '{}',
    status text not null default 'queued', priority integer not null default 0, run_at timestamptz not null default now(),
    attempts integer not null default 0, max_attempts integer not null default 10, timeout_ms integer, key text, group_key text,
    progress smallint not null default 0, result jsonb, errors jsonb not null default '[]', worker_id text,
    cancel_requested_at timestamptz, created_at timestamptz not null default now(), started_at timestamptz, finished_at timestamptz
  ) with (fillfactor = ${fillfactor})`;

const FLOOR_TABLE = (q) => `
  create table ${q}.jobs (
    id bigint generated always as identity primary key, queue text not null default 'default', payload jsonb not null,
    status smallint not null default 0, run_at timestamptz not null default now(),
    created_at timestamptz not null default now(), finished_at timestamptz
  ) with (fillfactor = 90);
  create index jobs_claim_idx on ${q}.jobs (queue, run_at, id) where status = 0`;

const ids = (rows) => `{${rows.map((r) => r.id).join(",")}}`;

export const DESIGNS = {
  async pgpulse({ sql, url, schema, q, n, batch, pgpulseDir, run }) {
    const dist = pgpulseDir ? join(pgpulseDir, "dist") : join(import.meta.dirname, "../../../dist");
    const pp = await import(pathToFileURL(join(dist, "index.js")).href);
    const { claimSql } = await import(pathToFileURL(join(dist, "db/claim.js")).href);
    const { finishSql, endParams } = await import(pathToFileURL(join(dist, "db/finish.js")).href);
    await pp.migrate({ connection: url, schema });
    await sql.unsafe(`insert into ${q}.jobs (task, payload) select 'noop', jsonb_build_object('i', g) from generate_series(1, ${n}) g`);
    const claim = claimSql(q);
    const finish = finishSql(q);
    return {
      table: "jobs",
      async setupLoop(loop) {
        await sql.unsafe(`insert into ${q}.workers (id, queues, tasks, concurrency) values ($1, '{default}', '{noop}', 16)`, [`w${loop}`]);
      },
      async step(prev, loop) {
        if (prev.length > 0) {
          const ends = prev.map((j) => ({ id: j.id, attempt: j.attempt, kind: "completed", result: null, error: null, delay_ms: null, started_ms: null }));
          await run(finish, [`w${loop}`, ...endParams(ends), null]);
        }
        const rows = await run(claim, ['["default"]', '["noop"]', batch, `w${loop}`, null, 0]);
        // claim_rows(): a row per job; claim_json() (before version 8): one row, a JSON array of tuples
        if (rows.length === 1 && "jobs" in rows[0]) return (rows[0].jobs ?? []).map((t) => ({ id: t[0], attempt: t[5] }));
        return rows.filter((r) => r.id !== null);
      },
    };
  },

  async "floor-update"({ sql, q, n, batch, run }) {
    await sql.unsafe(FLOOR_TABLE(q)).simple();
    await sql.unsafe(`insert into ${q}.jobs (payload) select jsonb_build_object('i', g) from generate_series(1, ${n}) g`);
    const claim = `with picked as (select id from ${q}.jobs where status = 0 and queue = 'default' and run_at <= now()
                     order by run_at, id limit $1 for update skip locked)
                   update ${q}.jobs j set status = 1 from picked where j.id = picked.id returning j.id, j.payload`;
    const done = `update ${q}.jobs set status = 2, finished_at = now() where id = any($1::text::bigint[])`;
    return {
      table: "jobs",
      async step(prev) {
        if (prev.length > 0) await run(done, [ids(prev)]);
        return run(claim, [batch]);
      },
    };
  },

  async "floor-delete"({ sql, q, n, batch, run }) {
    await sql.unsafe(FLOOR_TABLE(q)).simple();
    await sql.unsafe(`insert into ${q}.jobs (payload) select jsonb_build_object('i', g) from generate_series(1, ${n}) g`);
    const step = `with done as (delete from ${q}.jobs where id = any($1::text::bigint[])),
      picked as (select id from ${q}.jobs where status = 0 and queue = 'default' and run_at <= now()
                 order by run_at, id limit $2 for update skip locked)
      update ${q}.jobs j set status = 1 from picked where j.id = picked.id returning j.id, j.payload`;
    return { table: "jobs", step: (prev) => run(step, [ids(prev), batch]) };
  },

  async "narrow-live"({ sql, q, n, batch, run, fillfactor }) {
    await sql.unsafe(`${WIDE(q, fillfactor)};
      create table ${q}.live (id bigint primary key, queue text not null, priority integer not null, run_at timestamptz not null,
        task text not null, worker_id text);
      create index live_claim_idx on ${q}.live (queue, priority desc, run_at, id) where worker_id is null;
      create index live_running_idx on ${q}.live (worker_id) where worker_id is not null`).simple();
    await sql.unsafe(`insert into ${q}.jobs (id, task, payload) select g, 'noop', jsonb_build_object('i', g) from generate_series(1, ${n}) g`);
    await sql.unsafe(`insert into ${q}.live (id, queue, priority, run_at, task) select id, queue, priority, run_at, task from ${q}.jobs`);
    const claim = `with c as (select id from ${q}.live where worker_id is null and queue = 'default' and run_at <= now() and task = 'noop'
                     order by priority desc, run_at, id limit $1 for update skip locked),
      l as (update ${q}.live set worker_id = $2 where id = any(array(select id from c)) returning id)
      update ${q}.jobs j set status = 'running', attempts = j.attempts + 1, worker_id = $2, started_at = now(), progress = 0
       where j.id = any(array(select id from l))
      returning j.id, j.task, j.queue, j.payload, j.priority, j.attempts, j.max_attempts, j.timeout_ms, j.key, j.created_at, j.run_at`;
    // (is not distinct from, which does not imply "worker_id is not null", keeps live_running_idx
    // out of the plan: statistics from before the run make it look empty, and a scan of it per
    // statement grows with the running jobs. The ends are found by primary key.)
    const done = `with d as (delete from ${q}.live where id = any($1::text::bigint[]) and worker_id is not distinct from $2 returning id)
      update ${q}.jobs j set status = 'completed', progress = 100, finished_at = now(), worker_id = null
       where j.id = any(array(select id from d))`;
    return {
      table: "jobs",
      async step(prev, loop) {
        if (prev.length > 0) await run(done, [ids(prev), `w${loop}`]);
        return run(claim, [batch, `w${loop}`]);
      },
    };
  },

  async "narrow-queued"({ sql, q, n, batch, run, fillfactor }) {
    await sql.unsafe(`${WIDE(q, fillfactor)};
      create table ${q}.queued (id bigint primary key, queue text not null, priority integer not null, run_at timestamptz not null,
        task text not null);
      create index queued_claim_idx on ${q}.queued (queue, priority desc, run_at, id)`).simple();
    await sql.unsafe(`insert into ${q}.jobs (id, task, payload) select g, 'noop', jsonb_build_object('i', g) from generate_series(1, ${n}) g`);
    await sql.unsafe(`insert into ${q}.queued (id, queue, priority, run_at, task) select id, queue, priority, run_at, task from ${q}.jobs`);
    const claim = `with c as (select id from ${q}.queued where queue = 'default' and run_at <= now() and task = 'noop'
                     order by priority desc, run_at, id limit $1 for update skip locked),
      l as (delete from ${q}.queued where id = any(array(select id from c)) returning id)
      update ${q}.jobs j set status = 'running', attempts = j.attempts + 1, worker_id = $2, started_at = now(), progress = 0
       where j.id = any(array(select id from l))
      returning j.id, j.task, j.queue, j.payload, j.priority, j.attempts, j.max_attempts, j.timeout_ms, j.key, j.created_at, j.run_at`;
    const done = `update ${q}.jobs j set status = 'completed', progress = 100, finished_at = now(), worker_id = null
       where j.id = any($1::text::bigint[]) and j.worker_id = $2`;
    return {
      table: "jobs",
      async step(prev, loop) {
        if (prev.length > 0) await run(done, [ids(prev), `w${loop}`]);
        return run(claim, [batch, `w${loop}`]);
      },
    };
  },

  async "narrow-leased"({ sql, q, n, batch, run, fillfactor }) {
    await sql.unsafe(`${WIDE(q, fillfactor)};
      create table ${q}.queued (id bigint primary key, queue text not null, priority integer not null, run_at timestamptz not null,
        task text not null);
      create index queued_claim_idx on ${q}.queued (queue, priority desc, run_at, id);
      create table ${q}.leases (id bigint generated always as identity primary key, worker_id text not null, job_ids bigint[] not null);
      create index leases_worker_idx on ${q}.leases (worker_id)`).simple();
    await sql.unsafe(`insert into ${q}.jobs (id, task, payload) select g, 'noop', jsonb_build_object('i', g) from generate_series(1, ${n}) g`);
    await sql.unsafe(`insert into ${q}.queued (id, queue, priority, run_at, task) select id, queue, priority, run_at, task from ${q}.jobs`);
    const claim = `with c as (select id from ${q}.queued where queue = 'default' and run_at <= now() and task = 'noop'
                     order by priority desc, run_at, id limit $1 for update skip locked),
      l as (delete from ${q}.queued where id = any(array(select id from c)) returning id),
      lease as (insert into ${q}.leases (worker_id, job_ids) select $2, array(select id from l) returning id),
      u as (update ${q}.jobs j set status = 'running', attempts = j.attempts + 1, worker_id = $2, started_at = now(), progress = 0
             where j.id = any(array(select id from l))
            returning j.id, j.task, j.queue, j.payload, j.priority, j.attempts, j.max_attempts, j.timeout_ms, j.key, j.created_at, j.run_at)
      select u.*, (select id from lease) as lease from u`;
    // the claim's jobs all end in this statement, so it ends their lease too
    const done = `with d as (delete from ${q}.leases where id = $3)
      update ${q}.jobs j set status = 'completed', progress = 100, finished_at = now(), worker_id = null
       where j.id = any($1::text::bigint[]) and j.worker_id = $2`;
    return {
      table: "jobs",
      async step(prev, loop) {
        if (prev.length > 0) await run(done, [ids(prev), `w${loop}`, prev[0].lease]);
        return run(claim, [batch, `w${loop}`]);
      },
    };
  },
};
