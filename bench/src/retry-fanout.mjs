// A retry of a parent whose failure ended many children: a flow of one parent
// and --children children, the parent failed (its children fail with it), then
// `queue.retry(parent)`, which puts every child back to pending. Prints how long
// the failure's settling and the retry took, per build (--pgpulse-dir
// name=DIR,...), --rounds rounds interleaved; medians.
//   npm --prefix bench run retry-fanout -- --pgpulse-dir before=/tmp/a,after=/tmp/b --children 5000 --rounds 3
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { parseBuilds, runInterleaved } from "./builds.mjs";
import { ensureDatabase } from "./db.mjs";
import { median } from "./stats.mjs";
import { loadPgpulse } from "./systems/pgpulse.mjs";

const { values } = parseArgs({
  options: {
    "pgpulse-dir": { type: "string" },
    children: { type: "string", default: "5000" },
    rounds: { type: "string", default: "3" },
    "database-url": { type: "string", default: process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/pgpulse_bench" },
    child: { type: "string" },
  },
});
const url = values["database-url"];
const n = Number(values.children);

if (values.child !== undefined) {
  const pp = await loadPgpulse(values.child || null);
  const schema = `retry_fanout_${process.pid}`;
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  await pp.migrate({ connection: url, schema });
  const queue = pp.createQueue({ connection: url, schema });
  const flow = await queue.enqueueFlow([
    { name: "p", task: "t", delayMs: 3_600_000 },
    ...Array.from({ length: n }, (_, i) => ({ name: `c${i}`, task: "t", parents: ["p"] })),
  ]);
  const parent = flow[0].id;
  let t = performance.now();
  await sql.unsafe(`update "${schema}".jobs set status = 'failed', finished_at = now() where id = $1`, [parent]);
  const failMs = performance.now() - t;
  t = performance.now();
  await queue.retry(parent);
  const retryMs = performance.now() - t;
  const [{ pending }] = await sql.unsafe(`select count(*)::int as pending from "${schema}".jobs where status = 'pending'`);
  if (pending !== n) throw new Error(`after the retry ${pending} children are pending, not ${n}`);
  await sql.unsafe(`drop schema "${schema}" cascade`);
  await queue.close();
  await sql.end();
  console.log(JSON.stringify({ failMs: Math.round(failMs), retryMs: Math.round(retryMs) }));
  process.exit(0);
}

await ensureDatabase(url);
const runs = runInterleaved(parseBuilds(values["pgpulse-dir"]), Number(values.rounds), fileURLToPath(import.meta.url),
  ["--children", String(n), "--database-url", url],
  (round, b, r) => console.log(`[r${round}] ${b.name}: failure settled in ${r.failMs} ms, retry in ${r.retryMs} ms`));
console.log(`\none parent, ${n} children; medians of ${values.rounds} interleaved rounds\n`);
console.log("| build | the parent's failure, ms | its retry, ms |");
console.log("|---|---:|---:|");
for (const [name, rs] of runs) console.log(`| ${name} | ${Math.round(median(rs.map((r) => r.failMs)))} | ${Math.round(median(rs.map((r) => r.retryMs)))} |`);
