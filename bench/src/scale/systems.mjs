// The three systems as the scale benchmark uses them. Set-up, filling and
// single enqueues go through the main bench's adapters (src/systems); the
// worker side of pgpulse is built here (same options as its adapter) so that
// its `worker:claimed` events can be counted; graphile-worker and pg-boss run
// through their adapters with node-postgres patched to count claim statements.
import pg from "pg";
import { loadPgpulse } from "../systems/pgpulse.mjs";
import { systems as registry } from "../systems/index.mjs";

/**
 * How each system's claim statement shows in pg_stat_statements (a LIKE
 * pattern on the normalised text) and to the client (a regexp on the SQL).
 */
export const CLAIMS = {
  // claim.ts: select ... from "schema".claim_rows($1::text::jsonb, ...) (claim_json() before migration 8, claim() before 5)
  pgpulse: { like: "%.claim%(%", re: /\.claim(_json|_rows)?\(/ },
  // graphile-worker's getJobs (src/sql/getJobs.ts): with j as (select ... from _private_jobs as jobs ... for update skip locked) update ...
  "graphile-worker": { like: "%\\_private\\_jobs as jobs%skip locked%", re: /_private_jobs as jobs[\s\S]*skip locked/i },
  // pg-boss's fetchNextJob (plans.js): ... FOR UPDATE OF j SKIP LOCKED ... UPDATE ... RETURNING
  "pg-boss": { like: "%FOR UPDATE OF j SKIP LOCKED%", re: /FOR UPDATE OF j SKIP LOCKED/ },
};

/** Jobs not yet finished, for the coordinator's admin connection. */
export function remainingSql(system, schema) {
  switch (system) {
    case "pgpulse": return `select count(*)::int as n from "${schema}".jobs where status in ('queued', 'running')`;
    case "graphile-worker": return `select count(*)::int as n from "${schema}"._private_jobs`;
    case "pg-boss": return `select count(*)::int as n from "${schema}".job where name = 'noop' and state < 'completed'`;
    default: throw new Error(`unknown system ${system}`);
  }
}

/** The main bench's adapter: migrations, a queue, enqueue and enqueueBulk. */
export function openAdapter(system, { url, schema, concurrency = 1, pgpulseDir }) {
  return registry[system].open({ url, schema, concurrency, pgpulseDir });
}

/** Counts claim statements sent through node-postgres and the rows they returned. */
export function countNodePostgresClaims(re, counts) {
  const original = pg.Client.prototype.query;
  const record = (res) => {
    counts.claims++;
    const n = Array.isArray(res?.rows) ? res.rows.length : (res?.rowCount ?? 0);
    counts.jobs += n;
    if (n === 0) counts.empty++;
  };
  pg.Client.prototype.query = function query(config, values, callback) {
    const text = typeof config === "string" ? config : config?.text;
    if (typeof text !== "string" || !re.test(text)) return original.apply(this, arguments);
    if (typeof callback === "function") return original.call(this, config, values, (err, res) => (err || record(res), callback(err, res)));
    if (typeof values === "function") return original.call(this, config, (err, res) => (err || record(res), values(err, res)));
    const result = original.apply(this, arguments);
    if (result && typeof result.then === "function") result.then(record, () => {});
    return result;
  };
}

/**
 * A worker of `system` for one process: { start(), stop() }. handler(payload)
 * runs at each job's start; counts gets { claims, empty, jobs } as the client saw them.
 */
export async function openWorker(system, { url, schema, concurrency, pgpulseDir }, handler, counts) {
  if (system === "pgpulse") {
    const pp = await loadPgpulse(pgpulseDir);
    const worker = pp.createWorker({
      connection: url,
      schema,
      concurrency,
      logger: "warn",
      tasks: { noop: async (payload) => void (await handler(payload)) },
    });
    worker.on("worker:claimed", ({ jobs }) => {
      counts.claims++;
      counts.jobs += jobs.length;
      if (jobs.length === 0) counts.empty++;
    });
    return { start: () => worker.start(), stop: () => worker.stop(), close: async () => {} };
  }
  countNodePostgresClaims(CLAIMS[system].re, counts);
  const sys = await openAdapter(system, { url, schema, concurrency });
  let running = null;
  return {
    start: async () => void (running = await sys.startWorker(handler)),
    stop: async () => running?.stop(),
    close: () => sys.close(),
  };
}
