// Storage designs tried inside pgpulse's own worker (drain-cpu --designs), as
// opposed to the bare SQL loops of src/storage/: what a design changes in a
// real drain, with the worker's code around it.
//
// - pgpulse: the schema as migrated.
// - narrow-queued: queued jobs in a narrow table of their own, in claim order;
//   a claim deletes its rows there (SKIP LOCKED) and marks the jobs running by
//   primary key. jobs loses every index a claim or an end changes
//   (jobs_claim_idx, jobs_group_claim_idx, jobs_running_idx, jobs_key_idx) and
//   gets fillfactor 60, so both updates of a job can be HOT. Nothing records
//   which jobs a worker runs (no lease rows), so this is the bound of the
//   redesign in docs/storage-redesign.md, not a design that could ship: the
//   worker's start-up, heartbeat and reaper scan the table for want of
//   jobs_running_idx. Only claim_rows()'s path for queues without limits is
//   changed: the bench's queue has none.
//
// The claim is made from the build's own sql/000008_claim_rows.sql, with its
// locking statement replaced, so it stays the build's claim in every other way.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const DESIGNS = ["pgpulse", "narrow-queued"];

const LOCK = `      tids := array(
        select j.ctid from :PGPULSE_SCHEMA.jobs j
         where j.status = 'queued' and j.queue = qname and j.run_at <= t and j.task = any(tasks)
         order by j.priority desc, j.run_at, j.id
         limit want
         for update skip locked);`;

const LOCK_NARROW = `      with d as (delete from :PGPULSE_SCHEMA.queued q where q.ctid = any(array(
          select j.ctid from :PGPULSE_SCHEMA.queued j
           where j.queue = qname and j.run_at <= t and j.task = any(tasks)
           order by j.priority desc, j.run_at, j.id
           limit want
           for update skip locked))
        returning q.id, q.priority, q.run_at)
      select coalesce(array_agg(d.id order by d.priority desc, d.run_at, d.id), '{}') into tids from d;`;

const TABLES = `
  alter table :PGPULSE_SCHEMA.jobs set (fillfactor = 60);
  create table :PGPULSE_SCHEMA.queued (
    id bigint primary key, queue text not null, priority integer not null, run_at timestamptz not null, task text not null);
  create index queued_claim_idx on :PGPULSE_SCHEMA.queued (queue, priority desc, run_at, id);
  drop index :PGPULSE_SCHEMA.jobs_claim_idx, :PGPULSE_SCHEMA.jobs_group_claim_idx,
    :PGPULSE_SCHEMA.jobs_running_idx, :PGPULSE_SCHEMA.jobs_key_idx;`;

/** The pgpulse repository a build's dist/ came from (dir), or the bench's installed one. */
function root(dir) {
  return dir || join(dirname(fileURLToPath(import.meta.resolve("pgpulse"))), "..");
}

function claimNarrow(dir) {
  const text = readFileSync(join(root(dir), "sql", "000008_claim_rows.sql"), "utf8");
  const start = text.indexOf("create function :PGPULSE_SCHEMA.claim_rows(");
  const fn = text.slice(start, text.indexOf("$$;", start) + 3);
  if (start < 0 || !fn.includes(LOCK) || !fn.includes("where j.ctid = any(slice)")) {
    throw new Error("narrow-queued: this build's claim_rows() is not the one the design rewrites (sql/000008)");
  }
  return fn
    .replace("create function", "create or replace function")
    .replace(LOCK, LOCK_NARROW)
    .replace("  tids tid[];\n  slice tid[];", "  tids bigint[];\n  slice bigint[];")
    .replace("where j.ctid = any(slice)", "where j.id = any(slice)");
}

/** Whether the build's migrations run claim_rows() without sequential scans (migration 9 on). */
function hasSeqscanOff(dir) {
  try {
    return readFileSync(join(root(dir), "sql", "000009_steady_load.sql"), "utf8").includes("set enable_seqscan = off");
  } catch {
    return false;
  }
}

function inSchema(text, schema) {
  return text.replaceAll(":PGPULSE_SCHEMA_NAME", `'${schema}'`).replaceAll(":PGPULSE_SCHEMA", `"${schema}"`);
}

/** Changes a freshly migrated, still empty schema to the design. */
export async function applyDesign(sql, design, schema, dir) {
  if (design === "pgpulse") return;
  if (design !== "narrow-queued") throw new Error(`unknown design ${design} (${DESIGNS.join(", ")})`);
  await sql.unsafe(inSchema(TABLES, schema));
  await sql.unsafe(inSchema(claimNarrow(dir), schema));
  // (create or replace drops the function's settings: keep the build's, from migration 9 on)
  if (hasSeqscanOff(dir)) {
    await sql.unsafe(`alter function "${schema}".claim_rows(jsonb, jsonb, integer, text, timestamptz, integer) set enable_seqscan = off`);
  }
}

/** Once the jobs are inserted: the design's own record of them. */
export async function loadDesign(sql, design, schema) {
  if (design !== "narrow-queued") return;
  await sql.unsafe(`insert into "${schema}".queued select id, queue, priority, run_at, task from "${schema}".jobs where status = 'queued'`);
  await sql.unsafe(`vacuum analyze "${schema}".queued`);
}
