// The floor: claim and complete with bare SQL on a minimal table, no framework,
// as FACTS.md describes it. Two loops claim 500 rows at a time FOR UPDATE SKIP
// LOCKED and run the handlers (at most `concurrency` at once across loops would
// need coordination; with no-op handlers it makes no difference, so each loop
// runs its batch `concurrency` wide). Enqueue sends one NOTIFY per statement,
// as a LISTEN-driven queue must.
//   mode "cte":    one statement deletes the previous batch and claims the next.
//   mode "update": claim, then a second statement marks the batch done (rows kept, as pgpulse keeps them).
import postgres from "postgres";
import { pool } from "../stats.mjs";
import { timeIfClaim } from "../instrument.mjs";

const BATCH = 500;
const LOOPS = 2;

export function opener({ mode }) {
  return async function open({ url, schema, concurrency }) {
    const q = `"${schema}"`;
    const channel = `floor_${schema}`;
    const sql = postgres(url, { max: 10, onnotice: () => {}, connection: { application_name: "pgpulse-bench floor" } });
    await sql.unsafe(`
      create schema ${q};
      create table ${q}.jobs (
        id bigint generated always as identity primary key,
        queue text not null default 'default',
        payload jsonb not null,
        status smallint not null default 0, -- 0 queued, 1 running, 2 done
        run_at timestamptz not null default now(),
        created_at timestamptz not null default now(),
        finished_at timestamptz
      ) with (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
      create index jobs_claim_idx on ${q}.jobs (queue, run_at, id) where status = 0;`).simple();
    const insertOne = `with ins as (insert into ${q}.jobs (payload) values ($1::text::jsonb) returning 1) select pg_notify('${channel}', '') from ins`;
    const insertMany = `with ins as (insert into ${q}.jobs (payload) select value from jsonb_array_elements($1::text::jsonb) returning 1)
      select pg_notify('${channel}', '') from (select 1 from ins limit 1) one`;
    const claim = `
      ${mode === "cte" ? `with done as (delete from ${q}.jobs where id = any($1::bigint[])),` : "with"}
      picked as (select id from ${q}.jobs where status = 0 and queue = 'default' and run_at <= now()
                 order by run_at, id limit $${mode === "cte" ? 2 : 1} for update skip locked)
      update ${q}.jobs j set status = 1 from picked where j.id = picked.id returning j.id, j.payload`;
    const finish = mode === "cte"
      ? `delete from ${q}.jobs where id = any($1::bigint[])`
      : `update ${q}.jobs set status = 2, finished_at = now() where id = any($1::bigint[])`;
    const ids = (rows) => `{${rows.map((r) => r.id).join(",")}}`;
    return {
      schemas: [schema],
      claimMatcher: /skip locked/i,
      // async: a postgres.js query left un-awaited is never sent
      async enqueue(payload) {
        await sql.unsafe(insertOne, [JSON.stringify(payload)], { prepare: true });
      },
      async enqueueBulk(payloads) {
        await sql.unsafe(insertMany, [JSON.stringify(payloads)], { prepare: true });
      },
      async startWorker(handler, { batch = BATCH } = {}) {
        let running = true;
        const waiters = new Set();
        let signalled = false; // a notification that came while a claim was in flight
        const wake = () => { signalled = true; for (const w of waiters) w(); waiters.clear(); };
        const listener = await sql.listen(channel, wake);
        const loop = async () => {
          let prev = "{}";
          while (running) {
            const args = mode === "cte" ? [prev, batch] : [batch];
            signalled = false;
            const done = timeIfClaim(claim);
            const rows = await sql.unsafe(claim, args, { prepare: true });
            done?.();
            prev = "{}";
            if (rows.length === 0) {
              // an empty claim also deleted the previous batch: nothing is left pending
              if (signalled) continue;
              await new Promise((r) => { waiters.add(r); setTimeout(r, 1000); });
              continue;
            }
            await pool(rows, concurrency, (row) => handler(row.payload));
            if (mode === "cte") prev = ids(rows);
            else await sql.unsafe(finish, [ids(rows)], { prepare: true });
          }
          if (prev !== "{}") await sql.unsafe(finish, [prev], { prepare: true });
        };
        const loops = Array.from({ length: LOOPS }, loop);
        return {
          async stop() {
            running = false;
            wake();
            await Promise.all(loops);
            await listener.unlisten();
          },
        };
      },
      async remaining() {
        const [row] = await sql.unsafe(`select count(*)::int as n from ${q}.jobs where status in (0, 1)`);
        return row.n;
      },
      close: () => sql.end({ timeout: 5 }),
    };
  };
}
