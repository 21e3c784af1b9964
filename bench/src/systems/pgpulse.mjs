// pgpulse with its defaults: createWorker with the shared concurrency, nothing else set.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import postgres from "postgres";
import { wrapPostgresJs } from "../instrument.mjs";

export async function loadPgpulse(dir) {
  if (!dir) return import("pgpulse");
  const entry = join(dir, "dist", "index.js");
  if (!existsSync(entry)) throw new Error(`${entry} does not exist: build pgpulse there first (npm run build)`);
  return import(pathToFileURL(entry).href);
}

export const open = opener({ keyed: false });

// keyed: every enqueue carries a key of its own (an idempotency key that never
// collides), which takes the keyed path (enqueue_many()) instead of the plain insert.
export function opener({ keyed }) {
  let n = 0;
  const key = () => (keyed ? { key: `bench-${process.pid}-${n++}` } : undefined);
  return (options) => openWith(options, key);
}

async function openWith({ url, schema, concurrency, pgpulseDir }, key) {
  const pp = await loadPgpulse(pgpulseDir);
  await pp.migrate({ connection: url, schema });
  const queue = pp.createQueue({ connection: url, schema });
  const sql = queue.sql;
  return {
    schemas: [schema],
    // The claim statement (claim.ts): a call of the schema's claim_rows()
    // function (since migration 8), claim_json() (since migration 5), claim()
    // (since the flow-control migration), before that an UPDATE ... SKIP LOCKED.
    claimMatcher: /\.claim(_json|_rows)?\(|skip locked/i,
    enqueue: (payload) => queue.enqueue("noop", payload, key()),
    enqueueBulk: (payloads) => queue.enqueueMany(payloads.map((payload) => ({ task: "noop", payload, ...key() }))),
    async startWorker(handler, { instrument = false } = {}) {
      // Instrumented runs pass a pool built exactly as pgpulse builds its own
      // (openSql: max 4 for a worker), so its claim statements can be timed.
      const pool = instrument
        ? wrapPostgresJs(postgres(url, { max: 4, onnotice: () => {}, connection: { application_name: "pgpulse bench worker" } }))
        : null;
      const worker = pp.createWorker({
        connection: pool ?? url,
        schema,
        concurrency,
        logger: "warn",
        tasks: { noop: async (payload) => void (await handler(payload)) },
      });
      await worker.start();
      return {
        async stop() {
          await worker.stop();
          if (pool) await pool.end({ timeout: 5 });
        },
      };
    },
    async remaining() {
      const [row] = await sql.unsafe(`select count(*)::int as n from "${schema}".jobs where status in ('queued', 'running')`);
      return row.n;
    },
    close: () => queue.close(),
  };
}
