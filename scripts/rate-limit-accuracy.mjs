// Measures how closely a queue's rate limit is kept across several workers:
// 3 workers, a limit of 10 starts per second, a backlog that never runs dry,
// starts counted over a steady minute. Usage: node scripts/rate-limit-accuracy.mjs [seconds]
// Needs the build (npm run build) and DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
import postgres from "postgres";
import { createQueue, createWorker, migrate } from "../dist/index.js";

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const seconds = Number(process.argv[2] ?? 60);
const schema = `rate_${Date.now().toString(36)}`;
const max = 10;
const intervalMs = 1000;

await migrate({ connection: url, schema });
const queue = createQueue({ connection: url, schema });
const sql = postgres(url, { onnotice: () => {} });
try {
  await queue.configureQueue("api", { rateLimit: { max, intervalMs } });
  await queue.enqueueMany(Array.from({ length: max * (seconds + 20) }, () => ({ task: "call", queue: "api" })));
  const workers = [1, 2, 3].map(() => createWorker({ connection: url, schema, queues: ["api"], concurrency: 8, logger: "warn", tasks: { call: async () => null } }));
  await Promise.all(workers.map((w) => w.start()));
  // the first seconds fill the window; measure the minute after
  await new Promise((r) => setTimeout(r, 5000));
  const [{ from }] = await sql`select now() as from`;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const [{ to }] = await sql`select now() as to`;
  await Promise.all(workers.map((w) => w.stop()));
  const starts = (await sql.unsafe(`select started_at from "${schema}".jobs where started_at >= $1 and started_at < $2 order by started_at`, [from, to]))
    .map((r) => r.started_at.getTime());
  let worst = 0;
  for (let i = 0, j = 0; i < starts.length; i++) {
    while (starts[i] - starts[j] >= intervalMs) j++;
    worst = Math.max(worst, i - j + 1);
  }
  const expected = (max * (to - from)) / intervalMs;
  console.log(
    `limit ${max}/${intervalMs}ms, 3 workers, ${((to - from) / 1000).toFixed(1)} s: ${starts.length} starts, ` +
      `expected ${expected.toFixed(0)} (${((100 * (starts.length - expected)) / expected).toFixed(1)}%), ` +
      `most in any ${intervalMs} ms window: ${worst}`,
  );
} finally {
  await sql.unsafe(`drop schema "${schema}" cascade`);
  await sql.end();
  await queue.close();
}
